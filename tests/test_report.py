"""`eit import` and `eit report compliance` as an officer runs them, on imported history."""

from __future__ import annotations

import csv
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from testbed.services import EIT, REPO

SITE = REPO / "tests" / "data" / "compliance-site.yaml"
DAY_START = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 2026-11-28 00:00 in Bangkok


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EIT, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def write_history(path: Path) -> None:
    """One Bangkok day of a biomass boiler: SO2 80 ppm in the 10:00 hour (above 60 ppm at 7 % O2),
    calibration gas all through 14:00, nothing from 20:00 to 22:59, 40 ppm otherwise; and two
    rows nobody can use."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "factory", "device", "channel", "value", "flag"])
        for minute in range(24 * 60):
            ts = DAY_START + timedelta(minutes=minute)
            hour = minute // 60
            if hour in (20, 21, 22):
                continue
            stamp = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
            so2, flag = (80.0, "") if hour == 10 else (450.0, "C") if hour == 14 else (40.0 + minute % 3, "")
            w.writerow([stamp, "biomass", "boiler", "so2", so2, flag])
            w.writerow([stamp, "biomass", "boiler", "o2", 7.0 + (minute % 2) * 0.1, "N"])
        w.writerow(["2026-11-28T01:00:00Z", "biomass", "boiler", "co2", "1.0", ""])
        w.writerow(["2026-11-28T01:00:00Z", "biomass", "boiler", "so2", "high", ""])


def test_import_then_report_lists_valid_hours_exceedances_and_invalid_hours(tmp_path: Path) -> None:
    csv_path = tmp_path / "history.csv"
    write_history(csv_path)
    data = tmp_path / "data"
    imported = run("import", "--site", str(SITE), "--data-dir", str(data), str(csv_path))
    assert imported.returncode == 0, imported.stderr
    assert "line 2522: channel 'co2' is not registered for biomass/boiler" in imported.stderr
    assert "line 2523: value 'high' is not a number" in imported.stderr
    # The summary for people: counts, the period in Bangkok time, rejected rows by reason in words.
    assert imported.stdout.splitlines() == [
        f"{csv_path}: 2,520 of 2,522 rows imported",
        "  period     2026-11-28 00:00:00 to 2026-11-28 23:59:00 (Asia/Bangkok)",
        "  factory    biomass: 2,520 readings",
        "  rejected   2 rows: 1 unknown channel, 1 bad value; the first 2 above, by line",
        "  averaged   42 hours (hourly, rolling and daily results recomputed)",
    ]

    report = run(
        "report",
        "compliance",
        "--site",
        str(SITE),
        "--data-dir",
        str(data),
        "--from",
        "2026-11-28",
        "--to",
        "2026-11-28",
        "--factory",
        "biomass",
        "--format",
        "json",
    )
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert (body["from"], body["to"], body["period_start"]) == (
        "2026-11-28",
        "2026-11-28",
        "2026-11-27T17:00:00Z",
    )
    [factory] = body["factories"]
    so2 = next(c for c in factory["channels"] if c["channel"] == "so2")
    assert so2["expected_hours"] == 24 and so2["valid_hours"] == 20
    assert so2["completeness"] == round(20 / 24, 4) and so2["complete"] is True
    [exceedance] = so2["exceedances"]
    # Corrected to 7 % O2 point by point: O2 alternates 7.0 and 7.1 %.
    assert exceedance.pop("average") == pytest.approx((80.0 + 80.0 * 14 / 13.9) / 2, abs=0.01)
    assert exceedance == {
        "averaging": "1h",
        "start": "2026-11-28T03:00:00Z",
        "end": "2026-11-28T04:00:00Z",
        "local_start": "2026-11-28T10:00:00+07:00",
        "local_end": "2026-11-28T11:00:00+07:00",
        "average_basis": "corrected",
        "measured_average": 80.0,
        "limit": 60.0,
        "unit": "ppm",
        "retroactive": False,
    }
    assert body["version"] == 2
    assert (body["period_start_local"], body["period_end_local"]) == (
        "2026-11-28T00:00:00+07:00",
        "2026-11-29T00:00:00+07:00",
    )
    assert body["generated_at_local"].endswith("+07:00")
    assert (so2["basis"], so2["o2_reference_percent"]) == ("corrected", 7.0)
    assert so2["invalid_hours"][0]["local_start"].endswith("+07:00")
    reasons = {i["start"]: i["reason"] for i in so2["invalid_hours"]}
    assert reasons["2026-11-28T07:00:00Z"].startswith("no valid point (left out: 60 C calibration)")
    assert [reasons[f"2026-11-28T{h:02d}:00:00Z"] for h in (13, 14, 15)] == ["no data"] * 3
    o2 = next(c for c in factory["channels"] if c["channel"] == "o2")
    assert o2["valid_hours"] == 21 and o2["exceedances"] == []

    as_csv = run(
        "report",
        "compliance",
        "--site",
        str(SITE),
        "--data-dir",
        str(data),
        "--from",
        "2026-11-28",
        "--to",
        "2026-11-28",
        "--format",
        "csv",
    )
    rows = list(csv.DictReader(as_csv.stdout.splitlines()))
    [row] = [r for r in rows if r["row"] == "exceedance"]
    assert (row["factory"], row["channel"], row["average"], row["limit"], row["retroactive"]) == (
        "biomass",
        "so2",
        row["average"],
        "60.0",
        "no",
    )
    assert float(row["average"]) > 80.0
    assert (row["local_start"], row["average_basis"], row["measured_average"]) == (
        "2026-11-28T10:00:00+07:00",
        "corrected",
        "80.0",
    )
    as_html = run(
        "report",
        "compliance",
        "--site",
        str(SITE),
        "--data-dir",
        str(data),
        "--from",
        "2026-11-28",
        "--to",
        "2026-11-28",
        "--format",
        "html",
        "--output",
        str(tmp_path / "r.html"),
    )
    assert as_html.returncode == 0
    page = (tmp_path / "r.html").read_text()
    assert "<td>20 / 24</td>" in page and "80.29 ppm at 7 % O₂" in page and "80 ppm as measured" in page
    # Local times, the time zone named, the reason of an invalid hour.
    assert "28 Nov 2026 10:00" in page and "Bangkok time (UTC+7)" in page
    assert "no valid point (left out: 60 C calibration)" in page
    # The silent hours 20:00-22:59 are one run of three hours, not three rows.
    assert "<td>28 Nov 2026 20:00</td><td>28 Nov 2026 23:00</td><td>3</td><td>no data</td>" in page


def test_report_refuses_a_reversed_period_and_an_unknown_factory(tmp_path: Path) -> None:
    reversed_ = run(
        "report",
        "compliance",
        "--site",
        str(SITE),
        "--data-dir",
        str(tmp_path),
        "--from",
        "2026-11-30",
        "--to",
        "2026-11-01",
    )
    assert reversed_.returncode == 2 and "--to 2026-11-01 is before --from 2026-11-30" in reversed_.stderr
    unknown = run(
        "report",
        "compliance",
        "--site",
        str(SITE),
        "--data-dir",
        str(tmp_path),
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-01",
        "--factory",
        "nobody",
    )
    assert unknown.returncode == 2 and "factory 'nobody' is not in the site registry" in unknown.stderr


def test_import_names_a_missing_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,factory,device,value\n")
    result = run("import", "--site", str(SITE), "--data-dir", str(tmp_path / "d"), str(bad))
    assert result.returncode == 2 and "missing column(s) channel" in result.stderr


def test_import_holds_rows_to_the_contracts_time_bounds(tmp_path: Path) -> None:
    from alerts.importer import ImportResult, read_rows
    from eit.registry import load_registry

    rows = tmp_path / "bounds.csv"
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows.write_text(
        "time,factory,device,channel,value,flag\n"
        "2026-11-28T01:00:00Z,biomass,boiler,so2,40,\n"
        "1999-12-31T23:59:59Z,biomass,boiler,so2,40,\n"
        "9999-12-31T23:59:59-01:00,biomass,boiler,so2,40,\n"
        "0001-01-01T00:00:00Z,biomass,boiler,so2,40,\n"
        f"{future},biomass,boiler,so2,40,\n"
        "86400,biomass,boiler,so2,40,\n"
    )
    result = ImportResult()
    readings = list(read_rows(rows, load_registry(SITE), result))
    assert [r.value for r in readings] == [40.0]
    assert dict(result.rejected) == {"time_out_of_range": 4, "future_timestamp": 1}
    assert any("line 3" in e and "before 2000-01-01T00:00:00Z" in e for e in result.errors), result.errors
