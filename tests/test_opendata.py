"""`eit export open-data`: a Frictionless Data Package of what the public is shown, validated by
the `frictionless` library; a factory that does not publish is in no resource."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from eit.indicators import licences
from tests.test_indicators import SITE, run, write_month

pytestmark = pytest.mark.integration  # runs `eit import`, `eit indicators`, `eit export open-data`


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("opendata")
    data, month = tmp / "data", tmp / "month.csv"
    write_month(month)
    done = run("import", "--site", str(SITE), "--data-dir", str(data), str(month))
    assert done.returncode == 0, done.stderr
    common = ["--site", str(SITE), "--data-dir", str(data), "--from", "2026-01-01", "--to", "2026-01-31"]
    done = run("indicators", *common)
    assert done.returncode == 0, done.stderr
    out = tmp / "package"
    done = run("export", "open-data", *common, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "4 resource(s)" in done.stdout
    return out


def _descriptor(package: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    return loaded


def test_the_package_validates_with_frictionless(package: Path) -> None:
    from frictionless import validate

    report = validate(str(package / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    assert [task.name for task in report.tasks] == [
        "hourly-averages",
        "aqi",
        "daily-completeness",
        "indicators",
    ]
    assert all(task.stats["rows"] > 0 for task in report.tasks)


def test_the_metadata_names_licence_sources_contributors_and_each_resources_format(package: Path) -> None:
    d = _descriptor(package)
    # CKAN's dataset name rule: 2-100 characters, lower-case letters, digits, - and _.
    assert re.fullmatch(r"[a-z0-9_-]{2,100}", d["name"]) and d["title"]
    assert [lic["name"] for lic in d["licenses"]] == ["CC-BY-4.0"]
    assert d["licenses"][0]["name"] in licences() and d["licenses"][0]["path"].startswith("https://")
    assert d["sources"] and all(s["title"] for s in d["sources"])
    assert d["contributors"] == [
        {"title": "Indicator test town eco-center", "role": "publisher", "email": "opendata@example.org"}
    ]
    assert "3 of 4 factories" in d["description"]
    for r in d["resources"]:
        assert (r["format"], r["mediatype"], r["encoding"]) == ("csv", "text/csv", "utf-8")
        assert (package / r["path"]).is_file()


def test_a_factory_that_does_not_publish_is_in_no_resource(package: Path) -> None:
    factories: set[str] = set()
    for r in _descriptor(package)["resources"]:
        with (package / r["path"]).open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        factories |= {row["factory"] for row in rows if "factory" in row}
        assert "hidden" not in (package / r["path"]).read_text(encoding="utf-8")
    assert factories == {"biomass", "starch", "petro"}
    with (package / "indicators.csv").open(encoding="utf-8") as fh:
        by_key = {(row["indicator"], row["period"]): row for row in csv.DictReader(fh)}
    # The public CO2: the biomass plant's 7175 kWh x 0.4750, not the hidden factory's.
    assert float(by_key[("town_co2_grid", "2026-01")]["value"]) == pytest.approx(3408.125)


def test_the_licence_follows_the_registry_setting(tmp_path: Path, package: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE.read_text(encoding="utf-8").replace("licence: CC-BY-4.0", "licence: ODC-ODbL-1.0"))
    data = package.parent / "data"
    done = run(
        "export", "open-data", "--site", str(site), "--data-dir", str(data), "--from", "2026-01-10", "--to",
        "2026-01-10", "--out", str(tmp_path / "p"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    d = json.loads((tmp_path / "p" / "datapackage.json").read_text(encoding="utf-8"))
    assert d["licenses"][0]["name"] == "ODC-ODbL-1.0"
    assert all(r["licenses"][0]["name"] == "ODC-ODbL-1.0" for r in d["resources"])
