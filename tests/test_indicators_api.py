"""The town indicators and the open-data package over the HTTP API, on the example town (and a
variant where the biomass plant does not publish): the public figures, the officers' whole town,
the CSV and HTML forms, the package (validated by frictionless), and bad parameters."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alerts.indicators import scoreboard
from testbed.town import EXAMPLE_STORY, TownApp, build_town

K = "kaeng-khoi-biomass"


@pytest.fixture(scope="module")
def town_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    app = TownApp(build_town(tmp_path_factory.mktemp("indicators-api")))
    yield app
    app.close()


@pytest.fixture(scope="module")
def private_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    spec = replace(EXAMPLE_STORY, private=(K,))
    app = TownApp(build_town(tmp_path_factory.mktemp("indicators-private"), spec))
    yield app
    app.close()


def month_values(board: dict[str, Any], label: str) -> dict[str, Any]:
    return {
        i["id"]: next((p["value"] for p in i["periods"] if p["period"] == label), None)
        for i in board["indicators"]
    }


def month_total(board: dict[str, Any], indicator: str) -> float:
    ind = next(i for i in board["indicators"] if i["id"] == indicator)
    return sum(p["value"] or 0.0 for p in ind["periods"] if p["kind"] == "month")


def test_the_public_gets_the_public_figures_as_the_command_line_computes_them(town_app: TownApp) -> None:
    r = town_app.client.get("/api/v1/indicators")
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["scope"] == "public" and board["factories_total"] == 3
    first, last = date.fromisoformat(board["from"]), date.fromisoformat(board["to"])
    assert board == scoreboard(town_app.town.registry, town_app.store, first, last, public_only=True)
    # The story's boiler SO2 is above its limit for the last 5.5 hours: at least 4 closed hours
    # above, in this month or (just after a month starts) the month before.
    assert month_total(board, "stack_hours_above_limit") >= 4
    assert month_values(board, f"{last:%Y-%m}")["factories_publishing"] == 100.0
    assert {i["owner"] for i in board["indicators"]} <= set(board["agencies"])
    co2 = next(i for i in board["indicators"] if i["id"] == "town_co2_grid")
    assert co2["target"]["illustrative"] is True


def test_officers_see_the_whole_town_and_the_public_may_not_ask_for_it(private_app: TownApp) -> None:
    public = private_app.client.get("/api/v1/indicators").json()
    town = private_app.client.get("/api/v1/indicators", headers=private_app.headers("olivia")).json()
    assert (public["scope"], town["scope"]) == ("public", "town")
    label = public["to"][:7]
    # The biomass plant is the story's only factory above a limit, and it does not publish.
    assert month_total(public, "stack_hours_above_limit") == 0
    assert month_total(town, "stack_hours_above_limit") >= 4
    assert month_values(public, label)["factories_publishing"] == pytest.approx(200 / 3)
    refused = private_app.client.get("/api/v1/indicators?scope=town")
    assert refused.status_code == 403 and "officers" in refused.json()["detail"]


def test_csv_and_html_forms_and_the_agency_filter(town_app: TownApp) -> None:
    r = town_app.client.get("/api/v1/indicators?format=csv&agency=diw")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and {row["owner"] for row in rows} == {"diw"}
    html = town_app.client.get("/api/v1/indicators?format=html&agency=deqp").text
    assert "Town CO2 from grid electricity" in html and "Stack hours above a limit" not in html


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("agency=nobody", "agency"),
        ("from=2026-05-01&to=2026-04-01", "to"),
        ("from=2020-01-01&to=2026-01-01", "to"),
        ("from=1999-01-01&to=1999-02-01", "from"),
    ],
)
def test_a_bad_parameter_is_a_422_naming_it(town_app: TownApp, query: str, parameter: str) -> None:
    r = town_app.client.get(f"/api/v1/indicators?{query}")
    assert r.status_code == 422 and f"'{parameter}'" in r.json()["detail"], r.text


def test_the_open_data_zip_validates_and_holds_nothing_of_a_factory_that_does_not_publish(
    private_app: TownApp, tmp_path: Path
) -> None:
    from frictionless import validate

    r = private_app.client.get("/api/v1/open-data.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert "attachment" in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        z.extractall(tmp_path)
    report = validate(str(tmp_path / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    package = json.loads((tmp_path / "datapackage.json").read_text(encoding="utf-8"))
    assert "2 of 3 factories" in package["description"]
    for resource in package["resources"]:
        text = (tmp_path / resource["path"]).read_text(encoding="utf-8")
        assert K not in text, resource["name"]
    hourly = list(csv.DictReader(io.StringIO((tmp_path / "hourly-averages.csv").read_text(encoding="utf-8"))))
    assert {row["factory"] for row in hourly} == {"siam-cassava-starch", "eastern-petrochem"}


def test_the_descriptor_links_each_resource_to_its_csv_here(town_app: TownApp) -> None:
    r = town_app.client.get("/api/v1/open-data/datapackage.json")
    assert r.status_code == 200
    package = r.json()
    assert package["licenses"][0]["name"] == "CC-BY-4.0"
    for resource in package["resources"]:
        assert resource["path"].startswith("http://testserver/api/v1/open-data/")
        got = town_app.client.get(resource["path"])
        assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
        header = next(csv.reader(io.StringIO(got.text)))
        assert header == [f["name"] for f in resource["schema"]["fields"]]
    missing = town_app.client.get("/api/v1/open-data/secrets.csv")
    assert missing.status_code == 404 and "hourly-averages" in missing.json()["detail"]
