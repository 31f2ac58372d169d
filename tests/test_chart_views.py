"""The charts' API beyond the stored averages, on the example town at a fixed moment 40 minutes into
a clock hour: the running hour (provisional, the public sees it too) and the chart's view exported as
CSV and XLSX (every clock hour of the range, UTC and local times, unit and basis in the headers,
invalid and missing hours with their reason)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest

from eit.timeutil import NS_PER_S, now_ns, ns_to_iso
from testbed.town import EXAMPLE_STORY, TownApp, build_town

pytestmark = pytest.mark.integration

HOUR_NS = 3600 * NS_PER_S
# 40 minutes into the clock hour before the last: the town's data ends here, and so does the app's now.
END_NS = now_ns() // HOUR_NS * HOUR_NS - HOUR_NS + 40 * 60 * NS_PER_S
SO2 = "/api/v1/factories/kaeng-khoi-biomass/devices/boiler-1/channels/so2"


@pytest.fixture(scope="module")
def town_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    app = TownApp(
        build_town(tmp_path_factory.mktemp("views"), EXAMPLE_STORY.at(END_NS)), clock=lambda: END_NS
    )
    yield app
    app.close()


def test_the_public_sees_the_running_hour_as_provisional_against_the_hourly_limit(town_app: TownApp) -> None:
    r = town_app.client.get(f"{SO2}/running")  # no login: the public
    assert r.status_code == 200, r.text
    hour = r.json()
    assert hour["provisional"] is True
    assert (hour["start"], hour["as_of"]) == (ns_to_iso(END_NS - 40 * 60 * NS_PER_S), ns_to_iso(END_NS))
    assert (hour["basis"], hour["o2_reference_percent"], hour["limit_in_channel_unit"]) == (
        "corrected",
        7.0,
        60.0,
    )
    assert 35 <= hour["valid_minutes"] <= 41
    # The measured mean, recomputed here from the stored readings: the mean of the minute means.
    readings = town_app.store.readings(
        "kaeng-khoi-biomass", "boiler-1", "so2", END_NS - 40 * 60 * NS_PER_S, END_NS + 1
    )
    minutes: dict[int, list[float]] = {}
    for x in readings:
        if x.flag in ("N", "S"):
            minutes.setdefault(x.ts_ns // (60 * NS_PER_S), []).append(x.value)
    means = [sum(v) / len(v) for v in minutes.values()]
    assert hour["value"] == pytest.approx(sum(means) / len(means))
    # The example story's boiler has exceeded for the last 5.5 hours: the running hour is above too.
    assert hour["corrected"] > 60.0 and hour["above_limit"] is True
    # Nothing of a factory the public may not see.
    assert town_app.client.get("/api/v1/factories/nowhere/devices/x/channels/y/running").status_code == 404


def test_the_charts_view_exports_every_hour_with_basis_reasons_and_local_times(town_app: TownApp) -> None:
    start, end = END_NS - 40 * 60 * NS_PER_S - 36 * HOUR_NS, END_NS - 40 * 60 * NS_PER_S
    params = {"start": ns_to_iso(start), "end": ns_to_iso(end)}
    r = town_app.client.get(
        f"{SO2}/export", params={**params, "format": "csv"}, headers=town_app.headers("olivia")
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="kaeng-khoi-biomass-boiler-1-so2-1h-' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 36  # every clock hour of the range, stored or not
    assert list(rows[0]) == [
        "time_utc", "time_local", "average (ppm at 7 % O2)", "measured_average (ppm)", "valid", "reason",
        "limit (ppm)", "exceeded",
    ]  # fmt: skip
    assert all(row["time_local"].endswith("+07:00") for row in rows)
    # The town's 30 hours of data: the first six hours of the range have nothing stored.
    assert [row["reason"] for row in rows[:5]] == ["no data"] * 5 and rows[0]["valid"] == "False"
    hourly = town_app.client.get(f"{SO2}/hourly", params=params).json()["hours"]
    stored = {h["time"]: h for h in hourly}
    for row in rows:
        h = stored.get(row["time_utc"])
        if h is None:
            assert row["reason"] == "no data"
            continue
        assert row["exceeded"] == str(h["exceeded"]) and row["valid"] == str(h["valid"])
        assert row["reason"] == h["reason"]
        if h["corrected"] is not None:
            assert float(row["average (ppm at 7 % O2)"]) == pytest.approx(h["corrected"])
    exceeded = [row for row in rows if row["exceeded"] == "True"]
    assert len(exceeded) >= 4  # the story's last 5.5 hours above the limit

    x = town_app.client.get(f"{SO2}/export", params={**params, "format": "xlsx", "lang": "th"})
    assert x.status_code == 200  # published: the public may export what it may chart
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(x.content)).active
    assert sheet is not None
    assert sheet["A1"].value == "ppm ที่ O₂ 7 %"
    values = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
    assert len(values) == 36 and values[0][8] == "ไม่มีข้อมูล"
    red = [row for row in sheet.iter_rows(min_row=3) if row[7].value is True]
    assert red and all(row[2].font.color is not None and row[2].font.b for row in red)


def test_export_refuses_a_bad_window_and_format_naming_the_parameter(town_app: TownApp) -> None:
    for params, name in (({"format": "pdf"}, "format"), ({"window": "2h"}, "window")):
        r = town_app.client.get(f"{SO2}/export", params=params)
        assert r.status_code == 422 and name in r.text
