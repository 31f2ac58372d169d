"""The "Town indicators" dashboard's queries on a real InfluxDB holding the example town's scripted
day (testbed/town.py) and its indicators: each panel gives the town's value that
alerts/indicators.py gives for the public factories, the hand-computed values of the day, and
nothing of a factory that is not public."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.indicators import scoreboard
from dashboards.build import build_dashboards
from dashboards.indicators import TOWN_INDICATORS_UID
from eit.indicators import period_bounds
from eit.registry import Registry, load_registry
from ingest.store.influx import InfluxStore
from testbed.services import REPO, InfluxDB
from testbed.town import DAY, TownSpec, town_site, write_town_day
from tests.test_dashboards import render, targets

pytestmark = pytest.mark.integration

REGISTRY = load_registry(REPO / "examples" / "town" / "site.yaml")
K = "kaeng-khoi-biomass"
NOVEMBER = date(2026, 11, 1)
MONTH_START, MONTH_END = period_bounds("month", NOVEMBER, ZoneInfo(REGISTRY.timezone))
# Hand-computed from the scripted day (testbed/town.py): the boiler's SO2 is above 60 ppm at 7 % O2
# from 13:00 to 16:59 (85 ppm at 9.5 % O2 is 103 ppm at 7 %); every effluent value is within the
# general standard; the fence-line station's 24-hour PM2.5 (28 ug/m3) and PM10 (55) are below AQI
# 100; every stack and effluent channel has at least 80 % of the day's hours valid (the COD has
# 23); the boiler plant has hours above a limit and the fence-line station's 8-hour ozone windows
# are above 0.07 ppm in the afternoon (1 of 3 factories compliant); all 3 factories publish.
HAND = {
    "stack_hours_above_limit": 4.0,
    "effluent_screening_exceedances": 0.0,
    "aqi_good_days": 1.0,
    "channels_complete": 100.0,
    "factories_compliant": 1 / 3 * 100,
    "factories_publishing": 100.0,
}


def panel_values(store: InfluxStore, registry: Registry) -> dict[str, float | None]:
    """{indicator title: the value the panel shows for November 2026}."""
    spec = next(s for s in build_dashboards(registry) if s.uid == TOWN_INDICATORS_UID)
    out: dict[str, float | None] = {}
    for title, _, query in targets(spec):
        series = store.query(render(query, {}, MONTH_START, MONTH_END - 1))
        rows = [row for s in series for row in s["values"] if row[1] is not None]
        assert len(rows) <= 1, (title, rows)
        out[title] = rows[0][1] if rows else None
    return out


def by_title(board: dict[str, object], registry: Registry) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for ind in board["indicators"]:  # type: ignore[attr-defined]
        november = next(p for p in ind["periods"] if p["period"] == "2026-11")
        out[f"{ind['name']['en']} ({ind['unit']})"] = november["value"]
    return out


@pytest.fixture(scope="module")
def town(influxdb: InfluxDB) -> Iterator[InfluxStore]:
    store = InfluxStore(influxdb.url, "t_indicators_" + uuid.uuid4().hex[:8])
    write_town_day(store, REGISTRY, platform=False)
    yield store
    store.close()


def test_each_panel_shows_the_public_town_value_and_the_hand_computed_day(town: InfluxStore) -> None:
    assert DAY.date().replace(day=1) == NOVEMBER
    shown = panel_values(town, REGISTRY)
    oracle = by_title(scoreboard(REGISTRY, town, NOVEMBER, date(2026, 11, 30), public_only=True), REGISTRY)
    assert set(shown) == set(oracle) and len(shown) == 8
    for title, value in oracle.items():
        assert value is not None, title
        assert shown[title] == pytest.approx(value), title
    ids = {i["id"]: f"{i['name']['en']} ({i['unit']})" for i in scoreboard(
        REGISTRY, town, NOVEMBER, NOVEMBER, public_only=True)["indicators"]}  # fmt: skip
    for iid, value in HAND.items():
        assert shown[ids[iid]] == pytest.approx(value), iid
    co2 = shown[ids["town_co2_grid"]]
    kwh = shown[ids["energy_per_factory"]]
    assert co2 is not None and kwh is not None and co2 == pytest.approx(kwh * 0.4750)


def test_a_factory_that_is_not_public_adds_nothing_to_the_panels(
    town: InfluxStore, influxdb: InfluxDB, tmp_path: Path
) -> None:
    private = load_registry(town_site(tmp_path / "site.yaml", TownSpec(private=(K,))))
    without = InfluxStore(influxdb.url, "t_indicators_without_" + uuid.uuid4().hex[:8])
    try:
        write_town_day(without, private, set(REGISTRY.factories) - {K}, platform=False)
        hidden = panel_values(town, private)
        assert hidden == panel_values(without, private)
        assert hidden != panel_values(town, REGISTRY)
        oracle = by_title(scoreboard(private, town, NOVEMBER, date(2026, 11, 30), public_only=True), private)
        for title, value in oracle.items():
            assert hidden[title] == pytest.approx(value) if value is not None else hidden[title] is None, (
                title
            )
    finally:
        without.close()
