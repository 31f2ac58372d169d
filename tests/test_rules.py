"""Golden tests of the compliance engine, one or more per rule kind, built from the regulatory
reference data with their sources (eit/standards/*.yaml): biomass boiler SO2 60 ppm at 7 % O2 (MOI B.E.
2549), NOx as NO2, effluent pH 5.5-9.0 (MOI B.E. 2560), ambient PM2.5 37.5 ug/m3 over 24 h and
O3 0.07 ppm over 8 h (NEB), Thai AQI (PCD B.E. 2566: breakpoints, half-up rounding, dated PM2.5
tables), TGO grid factors 0.4999 before 2026 and 0.4750 kgCO2e/kWh from 2026-01-01.

The engine runs on the embedded store and alert database with a clock the test moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.aqi import aqi_points, sub_index
from alerts.engine import AlertEngine
from alerts.model import AlertEvent
from alerts.notifiers.dispatch import Dispatcher
from alerts.settings import RuleSettings
from alerts.state import open_alert_store
from eit.confread import load_yaml
from eit.model import Reading
from eit.registry import load_registry
from eit.standards import default_standards
from eit.store import Point
from eit.timeutil import datetime_to_ns
from ingest.store.sqlite import SqliteStore
from testbed.services import REPO

S = 1_000_000_000
H = 3600 * S
T0 = 1795752000 * S  # 2026-11-27T04:00:00Z = 11:00 in Bangkok
SITE = REPO / "tests" / "data" / "compliance-site.yaml"
B = ("biomass", "boiler")


class Rig:
    def __init__(
        self, tmp: Path, settings: RuleSettings | None = None, start: int = T0, site: Path = SITE
    ) -> None:
        self.registry = load_registry(site)
        self.store = SqliteStore(tmp / "readings.db")
        self.alerts = open_alert_store(None, tmp / "state.db")
        self.events: list[AlertEvent] = []
        self.now = start
        self.engine = AlertEngine(
            self.registry,
            self.alerts,
            Dispatcher([]),
            clock=lambda: self.now,
            on_event=self.events.append,
            settings=settings or RuleSettings(stale_after_s=10 * 24 * 3600),
            store=self.store,
        )

    def feed(self, readings: list[Reading], now: int | None = None) -> None:
        self.now = max(self.now, now if now is not None else max(r.ts_ns for r in readings))
        self.store.write(readings)
        self.engine.on_readings(readings, self.now)

    def tick(self, now: int) -> None:
        self.now = now
        self.engine.tick(now)

    def kinds(self, rule: str | None = None) -> list[tuple[str, str]]:
        return [(e.kind, e.alert.rule) for e in self.events if rule is None or e.alert.rule == rule]

    def hourly(self, channel: str, device: str = "boiler", factory: str = "biomass") -> list[Point]:
        return self.store.query_points(
            "hourly", {"factory": factory, "device": device, "channel": channel}, 0, 2**62
        )

    def first(self, rule: str) -> AlertEvent:
        return next(e for e in self.events if e.alert.rule == rule)

    def close(self) -> None:
        self.store.close()
        self.alerts.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def stack_hour(
    start: int,
    so2: float,
    o2: float,
    every_s: int = 60,
    flag: str = "N",
    channel: str = "so2",
    minutes: range = range(60),
) -> list[Reading]:
    out = []
    for m in minutes:
        for k in range(60 // every_s if every_s < 60 else 1):
            ts = start + m * 60 * S + k * every_s * S
            out += [Reading(*B, channel, ts, so2, flag), Reading(*B, "o2", ts, o2)]
    return out


# -- clock-hour limit, corrections ----------------------------------------------------------------
def test_so2_is_corrected_to_7_percent_o2_before_the_60_ppm_biomass_limit(rig: Rig) -> None:
    # 50 ppm measured at 11 % O2 is 50 x (21 - 7) / (21 - 11) = 70 ppm at the reference O2.
    rig.feed(stack_hour(T0, 50.0, 11.0))
    rig.tick(T0 + H + 150 * S)
    [hour] = rig.hourly("so2")
    assert hour.fields["value"] == pytest.approx(50.0) and hour.fields["corrected"] == pytest.approx(70.0)
    assert hour.fields["valid"] is True and hour.fields["exceeded"] is True
    assert (hour.fields["limit"], hour.fields["limit_unit"], hour.fields["quadrants"]) == (60.0, "ppm", 4)
    limit_events = rig.kinds("limit")
    assert limit_events == [("opened", "limit"), ("confirmed", "limit")]  # provisional, then the legal hour
    alert = rig.alerts.active(("biomass", "boiler", "so2", "limit"))
    assert alert is not None and not alert.provisional and alert.value == pytest.approx(70.0)
    assert (
        "so2 70 ppm above the standard limit 60 ppm (clock-hour average 2026-11-27 11:00-11:59"
        in alert.message
    )


def test_the_same_so2_at_the_reference_o2_stays_within_the_limit(rig: Rig) -> None:
    rig.feed(stack_hour(T0, 50.0, 7.0))
    rig.tick(T0 + H + 150 * S)
    [hour] = rig.hourly("so2")
    assert hour.fields["corrected"] == pytest.approx(50.0) and hour.fields["exceeded"] is False
    assert rig.kinds("limit") == []


def test_o2_at_or_above_21_percent_is_rejected_and_the_hour_says_why(rig: Rig) -> None:
    rig.feed(stack_hour(T0, 500.0, 21.0))
    rig.tick(T0 + H + 150 * S)
    [hour] = rig.hourly("so2")
    assert hour.fields["valid"] is False and hour.fields["points"] == 0 and "value" not in hour.fields
    assert "60 O2 at or above 21 %" in str(hour.fields["reason"])
    assert rig.kinds("limit") == []


def test_a_mg_per_m3_channel_is_judged_against_the_ppm_limit_at_25_c(rig: Rig) -> None:
    # 60 ppm SO2 = 60 x 64.07 / 24.45 = 157.2 mg/m3; 170 mg/m3 (at 7 % O2) = 64.9 ppm: above.
    rig.feed(stack_hour(T0, 170.0, 7.0, channel="so2mg"))
    rig.tick(T0 + H + 150 * S)
    [hour] = rig.hourly("so2mg")
    assert hour.fields["exceeded"] is True and hour.fields["limit_unit"] == "ppm"
    alert = rig.alerts.active(("biomass", "boiler", "so2mg", "limit"))
    assert alert is not None and alert.value == pytest.approx(170.0 * 24.45 / 64.07)


def test_nox_in_mg_per_m3_is_converted_as_no2_against_200_ppm(rig: Rig) -> None:
    # 200 ppm NOx as NO2 = 200 x 46.01 / 24.45 = 376.4 mg/m3: 370 is within, 380 above.
    rig.feed(stack_hour(T0, 370.0, 7.0, channel="nox"))
    rig.feed(stack_hour(T0 + H, 380.0, 7.0, channel="nox"))
    rig.tick(T0 + 2 * H + 150 * S)
    first, second = rig.hourly("nox")
    assert first.fields["exceeded"] is False and second.fields["exceeded"] is True
    assert second.fields["limit"] == 200.0


def test_an_hour_without_a_valid_point_in_every_quadrant_is_invalid_and_never_an_exceedance(rig: Rig) -> None:
    # 45 minutes of 100 ppm: a quarter of the hour is missing, so there is no legal hour.
    rig.feed(stack_hour(T0, 100.0, 7.0, minutes=range(45)))
    rig.tick(T0 + H + 150 * S)
    [hour] = rig.hourly("so2")
    assert hour.fields["valid"] is False and hour.fields["quadrants"] == 3
    assert hour.fields["reason"] == "quadrant 4 has no valid point"
    assert hour.fields["exceeded"] is False
    # The provisional alert of the running hour is withdrawn: the hour is not valid.
    assert rig.kinds("limit") == [("opened", "limit"), ("withdrawn", "limit")]


@pytest.mark.parametrize("flag", list("CMDFTB"))
def test_calibration_and_fault_flagged_data_never_raises_an_exceedance(rig: Rig, flag: str) -> None:
    rig.feed(stack_hour(T0, 450.0, 7.0, flag=flag))
    rig.tick(T0 + H + 150 * S)
    [hour] = rig.hourly("so2")
    assert hour.fields["valid"] is False and hour.fields["exceeded"] is False
    assert f"60 {flag} " in str(hour.fields["reason"])
    assert [e for e in rig.events if e.alert.rule in ("limit", "early_warning")] == []


def test_calibration_points_are_left_out_of_a_valid_average(rig: Rig) -> None:
    # 55 ppm all hour, and a calibration gas of 450 ppm for the first 5 minutes of each quadrant.
    readings = stack_hour(T0, 55.0, 7.0)
    readings = [
        replace(r, value=450.0, flag="C") if r.channel == "so2" and (r.ts_ns - T0) // (60 * S) % 15 < 5 else r
        for r in readings
    ]
    rig.feed(readings)
    rig.tick(T0 + H + 150 * S)
    [hour] = rig.hourly("so2")
    assert hour.fields["valid"] is True and hour.fields["points"] == 40
    assert hour.fields["value"] == pytest.approx(55.0) and hour.fields["exceeded"] is False
    assert rig.kinds("limit") == []


def test_a_permit_overrides_the_preset_from_its_effective_date(tmp_path: Path) -> None:
    # PM of the boiler: preset 320 mg/m3; permit EIA-2019-044 120 mg/m3 from 2026-06-01.
    before = 1777593600 * S  # 2026-05-01T00:00:00Z
    for start, expected in ((before, 320.0), (T0, 120.0)):
        rig = Rig(tmp_path / str(start), start=start)
        rig.feed(
            [Reading(*B, "pm", start + m * 60 * S, 200.0) for m in range(60)]
            + [Reading(*B, "o2", start + m * 60 * S, 7.0) for m in range(60)]
        )
        rig.tick(start + H + 150 * S)
        [hour] = rig.hourly("pm")
        assert hour.fields["limit"] == expected
        assert hour.fields["exceeded"] is (expected < 200.0)
        rig.close()


# -- provisional, retroactive ---------------------------------------------------------------------
def test_a_provisional_exceedance_is_withdrawn_when_the_hour_average_is_within_the_limit(rig: Rig) -> None:
    # 90 ppm for 15 minutes, then 40 ppm: the running average is above 60 at first, the hour's
    # average is 52.5 ppm.
    rig.feed(stack_hour(T0, 90.0, 7.0, minutes=range(15)), T0 + 15 * 60 * S)
    assert rig.kinds("limit") == [("opened", "limit")]
    opened = rig.first("limit").alert
    assert (
        opened.provisional
        and "provisional: running average of 2026-11-27 11:00-11:59 so far" in opened.message
    )
    rig.feed(stack_hour(T0, 40.0, 7.0, minutes=range(15, 60)))
    rig.tick(T0 + H + 150 * S)
    assert rig.kinds("limit") == [("opened", "limit"), ("withdrawn", "limit")]
    assert rig.alerts.active(("biomass", "boiler", "so2", "limit")) is None
    audit = rig.alerts.audit(opened.id)
    assert audit[-1].action == "withdrawn" and audit[-1].detail.startswith(
        "withdrawn: the clock-hour average"
    )


def test_a_late_backlog_produces_a_retroactive_exceedance(rig: Rig) -> None:
    # The agent was cut off from 11:00 to 14:00; its outbox drains at 14:05 with the 11:00 hour.
    rig.tick(T0 + 3 * H + 5 * 60 * S)
    backlog = stack_hour(T0, 80.0, 7.0)
    for start in range(0, len(backlog), 40):  # in several messages, as an outbox drains
        rig.feed(backlog[start : start + 40], T0 + 3 * H + 5 * 60 * S)
    assert rig.kinds("limit") == []  # a closed hour is not screened as a running one
    rig.tick(T0 + 3 * H + 6 * 60 * S)
    [hour] = rig.hourly("so2")
    assert hour.fields["exceeded"] is True and hour.fields["retroactive"] is True
    assert rig.kinds("limit") == [("opened", "limit")]
    alert = rig.first("limit").alert
    assert alert.retroactive and alert.period_start_ns == T0
    assert alert.message.startswith("retroactive (late data): so2 80 ppm above the standard limit 60 ppm")


def test_late_data_for_a_closed_hour_rewrites_it_as_retroactive(rig: Rig) -> None:
    rig.feed(stack_hour(T0, 40.0, 7.0, minutes=range(45)))
    rig.tick(T0 + H + 150 * S)
    [first] = rig.hourly("so2")
    assert first.fields["valid"] is False and first.fields["retroactive"] is False
    rig.feed(stack_hour(T0, 40.0, 7.0, minutes=range(45, 60)), T0 + H + 300 * S)
    rig.tick(T0 + H + 310 * S)
    [again] = rig.hourly("so2")
    assert again.fields["valid"] is True and again.fields["retroactive"] is True
    assert again.fields["points"] == 60


# -- hysteresis, minimum duration, flapping --------------------------------------------------------
def test_hysteresis_keeps_an_exceedance_open_just_below_the_limit(rig: Rig) -> None:
    rig.feed(stack_hour(T0, 70.0, 7.0))
    rig.feed(stack_hour(T0 + H, 58.0, 7.0))  # below 60 but above 60 x 0.95 = 57
    rig.tick(T0 + 2 * H + 150 * S)
    assert rig.alerts.active(("biomass", "boiler", "so2", "limit")) is not None
    rig.feed(stack_hour(T0 + 2 * H, 50.0, 7.0))
    rig.tick(T0 + 3 * H + 150 * S)
    assert rig.alerts.active(("biomass", "boiler", "so2", "limit")) is None
    assert rig.kinds("limit")[-1] == ("resolved", "limit")


def test_minimum_duration_opens_only_after_consecutive_exceeded_hours(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RuleSettings(stale_after_s=1e9, open_after_hours=2))
    rig.feed(stack_hour(T0, 70.0, 7.0))
    rig.tick(T0 + H + 150 * S)
    assert rig.kinds("limit") == []  # no provisional alert either: one hour is not enough
    rig.feed(stack_hour(T0 + H, 70.0, 7.0))
    rig.tick(T0 + 2 * H + 150 * S)
    assert rig.kinds("limit") == [("opened", "limit")]
    rig.close()


def test_a_flapping_exceedance_reopens_the_same_alert_without_a_new_opening(rig: Rig) -> None:
    for k, so2 in enumerate([70.0, 40.0, 70.0, 40.0, 70.0]):
        rig.feed(stack_hour(T0 + k * H, so2, 7.0))
        rig.tick(T0 + (k + 1) * H + 150 * S)
    kinds = [k for k, _ in rig.kinds("limit")]
    assert kinds.count("opened") == 1
    assert kinds.count("reopened") == 2
    [alert] = [a for a in rig.alerts.list() if a.rule == "limit"]
    assert alert.flaps == 2 and alert.state == "open"


# -- effluent range, early warning, instantaneous --------------------------------------------------
def effluent_hour(start: int, ph: float) -> list[Reading]:
    return [Reading("starch", "outfall", "ph", start + m * 60 * S, ph + (m % 3) * 0.01) for m in range(60)]


@pytest.mark.parametrize(("ph", "side", "bound"), [(4.9, "below", 5.5), (9.4, "above", 9.0)])
def test_effluent_ph_outside_5_5_to_9_is_an_exceedance_of_the_range(
    rig: Rig, ph: float, side: str, bound: float
) -> None:
    rig.feed(effluent_hour(T0, ph))
    rig.tick(T0 + H + 150 * S)
    alert = rig.alerts.active(("starch", "outfall", "ph", "limit"))
    assert alert is not None and alert.limit == bound
    assert f"ph {ph + 0.01:g} pH {side} the standard limit {bound:g} pH" in alert.message
    assert "screening only" in alert.message  # online effluent data are screening, not legal


def site_variant(tmp: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    """The golden site with a change, written beside the test's other files."""
    data = load_yaml(SITE)
    mutate(data)
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def outfall_hour(start: int, channel: str, value: float) -> list[Reading]:
    return [Reading("starch", "outfall", channel, start + m * 60 * S, value) for m in range(60)]


def starch_outfall(data: dict[str, Any]) -> dict[str, Any]:
    outfall: dict[str, Any] = data["factories"][1]["devices"][0]
    return outfall


def test_an_ieat_central_plant_value_is_marked_unconfirmed_in_the_alert(tmp_path: Path) -> None:
    def to_central_plant(data: dict[str, Any]) -> None:
        starch_outfall(data)["standard"] = "th.effluent.ieat_cwwtp"

    rig = Rig(tmp_path, site=site_variant(tmp_path, to_central_plant))
    try:
        rig.feed(outfall_hour(T0, "cod", 800.0))
        rig.tick(T0 + H + 150 * S)
        alert = rig.alerts.active(("starch", "outfall", "cod", "limit"))
        assert alert is not None and alert.limit == 750.0
        assert (
            "preset th.effluent.ieat_cwwtp, value unconfirmed, averaging period unconfirmed" in alert.message
        )
    finally:
        rig.close()


def test_an_estates_own_value_replaces_the_central_plant_preset_for_its_factories(tmp_path: Path) -> None:
    def estate_value(data: dict[str, Any]) -> None:
        starch_outfall(data)["standard"] = "th.effluent.ieat_cwwtp"
        data["factories"][1]["estate"] = "Eastern Seaboard estate"
        data["estates"] = [
            {
                "name": "Eastern Seaboard estate",
                "presets": {
                    "th.effluent.ieat_cwwtp": {
                        "source": "Estate rules 2024, annex 2 (illustrative)",
                        "limits": [{"parameter": "cod", "max": 1000, "unit": "mg/L"}],
                    }
                },
            }
        ]

    rig = Rig(tmp_path, site=site_variant(tmp_path, estate_value))
    try:
        rig.feed(outfall_hour(T0, "cod", 800.0))
        rig.tick(T0 + H + 150 * S)
        [hour] = rig.hourly("cod", "outfall", "starch")
        assert (hour.fields["limit"], hour.fields["exceeded"]) == (1000.0, False)
        assert rig.kinds("limit") == []
    finally:
        rig.close()


def test_tds_of_an_outfall_to_the_sea_is_judged_against_the_receiving_water_plus_5000(tmp_path: Path) -> None:
    # MOI B.E. 2560: to brackish water or the sea, effluent TDS may exceed the receiving water's
    # by at most 5,000 mg/L. Receiving water 33,000 mg/L: the rules judge against 38,000 mg/L.
    def to_the_sea(data: dict[str, Any]) -> None:
        outfall = starch_outfall(data)
        outfall["receiving_water_tds_mg_l"] = 33000
        outfall["channels"].append({"id": "tds", "unit": "mg/L", "range": [0, 60000]})

    rig = Rig(tmp_path, site=site_variant(tmp_path, to_the_sea))
    try:
        rig.feed(outfall_hour(T0, "tds", 37000.0))
        rig.feed(outfall_hour(T0 + H, "tds", 39000.0))
        rig.tick(T0 + 2 * H + 150 * S)
        hours = rig.hourly("tds", "outfall", "starch")
        assert [(h.fields["limit"], h.fields["exceeded"]) for h in hours] == [
            (38000.0, False),
            (38000.0, True),
        ]
        alert = rig.alerts.active(("starch", "outfall", "tds", "limit"))
        assert alert is not None
        assert "preset th.effluent.general, receiving_water_tds_mg_l 33000 + 5000" in alert.message
    finally:
        rig.close()


def test_effluent_ph_inside_the_range_raises_nothing(rig: Rig) -> None:
    rig.feed(effluent_hour(T0, 7.2))
    rig.tick(T0 + H + 150 * S)
    assert rig.events == []


def test_early_warning_at_80_percent_of_the_limit(rig: Rig) -> None:
    rig.feed(stack_hour(T0, 50.0, 7.0))  # 50 / 60 = 83 %
    rig.tick(T0 + H + 150 * S)
    assert rig.kinds("early_warning") == [("opened", "early_warning")]
    alert = rig.first("early_warning").alert
    assert alert.message.startswith("so2 50 ppm has reached 83 % of the standard limit 60 ppm")
    rig.feed(stack_hour(T0 + H, 30.0, 7.0))
    rig.tick(T0 + 2 * H + 150 * S)
    assert rig.kinds("early_warning")[-1] == ("resolved", "early_warning")


# -- ambient: rolling averages, completeness, AQI -------------------------------------------------
def ambient_hours(
    start: int, hours: int, channel: str, value: float, skip: set[int] | None = None
) -> list[Reading]:
    out = []
    for k in range(hours):
        if skip and k in skip:
            continue
        out += [Reading("petro", "fence", channel, start + k * H + m * 5 * 60 * S, value) for m in range(12)]
    return out


def live(rig: Rig, readings: list[Reading]) -> None:
    """Feed readings hour by hour as they would arrive, closing each hour after it ends."""
    hours = sorted({r.ts_ns - r.ts_ns % H for r in readings})
    for h in hours:
        rig.feed([r for r in readings if h <= r.ts_ns < h + H], h + H - S)
        rig.tick(h + H + 150 * S)


def test_pm25_over_37_5_as_a_24_hour_rolling_average_is_an_exceedance(rig: Rig) -> None:
    live(rig, ambient_hours(T0, 24, "pm25", 40.0))
    rolling = rig.store.query_points(
        "rolling", {"factory": "petro", "channel": "pm25", "window": "24h"}, T0 + 24 * H, T0 + 24 * H + 1
    )
    assert [
        (p.fields["value"], p.fields["hours"], p.fields["valid"], p.fields["exceeded"]) for p in rolling
    ] == [(40.0, 24, True, True)]
    # The 24-h window is valid from its 20th hour (80 %): opened then, updated each hour after.
    assert [k for k, _ in rig.kinds("limit_24h")] == ["opened"] + ["updated"] * 4
    message = rig.first("limit_24h").alert.message
    assert message.startswith(
        "pm25 40 ug/m3 above the standard limit 37.5 ug/m3"
        " (24h rolling average ending 2026-11-28 07:00, 20 valid hours"
    )


def test_a_24_hour_window_below_80_percent_complete_is_not_judged(rig: Rig) -> None:
    # 19 of 24 hours (79 %): too few for a valid 24-h average.
    live(rig, ambient_hours(T0, 24, "pm25", 60.0, skip={1, 5, 9, 13, 17}))
    [last] = rig.store.query_points(
        "rolling", {"factory": "petro", "channel": "pm25", "window": "24h"}, T0 + 24 * H, T0 + 24 * H + 1
    )
    assert (last.fields["hours"], last.fields["valid"], last.fields["exceeded"]) == (19, False, False)
    assert rig.kinds("limit_24h") == []


def test_o3_over_0_07_ppm_as_an_8_hour_average_is_an_exceedance_while_each_hour_is_within_0_1(
    rig: Rig,
) -> None:
    live(rig, ambient_hours(T0, 8, "o3", 0.08))
    assert rig.kinds("limit") == []  # 0.08 is within the 1-hour standard of 0.10 ppm
    assert ("opened", "limit_8h") in rig.kinds("limit_8h")


def test_thai_aqi_of_pm25_at_the_standard_is_100_and_overall_is_the_highest(rig: Rig) -> None:
    live(rig, ambient_hours(T0, 24, "pm25", 37.5) + ambient_hours(T0, 24, "pm10", 80.0))
    last_hour = T0 + 23 * H
    points = rig.store.query_points("aqi", {"factory": "petro"}, last_hour, last_hour + 1)
    got = {p.tags["parameter"]: (p.fields["value"], p.fields["band"]) for p in points}
    # PM10 80 ug/m3 tops the 51-80 band (AQI 26-50).
    assert got == {"pm25": (100.0, "moderate"), "pm10": (50.0, "good"), "overall": (100.0, "moderate")}


def test_pm25_37_55_rounds_half_up_to_37_6_and_is_the_first_index_of_the_orange_band(rig: Rig) -> None:
    # PCD B.E. 2566, clause 4.1: 37.55 rounds to 37.6 (band 37.6-75.0 -> AQI 101-200), so the
    # sub-index is 101; truncated (method version 1) it was 37.5 -> 100. Float rounding would
    # take it down too: the float nearest 37.55 is 37.54999...
    assert round(37.55, 1) == 37.5
    live(rig, ambient_hours(T0, 24, "pm25", 37.55))
    last_hour = T0 + 23 * H
    points = rig.store.query_points("aqi", {"factory": "petro"}, last_hour, last_hour + 1)
    got = {
        p.tags["parameter"]: (p.fields["value"], p.fields["band"], p.fields.get("concentration"))
        for p in points
    }
    assert got == {
        "pm25": (101.0, "unhealthy_sensitive", 37.6),
        "overall": (101.0, "unhealthy_sensitive", None),
    }
    assert {p.fields["method"] for p in points} == {"pcd_bands/2"}


def test_o3_0_0705_ppm_is_70_5_ppb_and_rounds_to_71(rig: Rig) -> None:
    # The station measures O3 in ppm: 0.0705 ppm x 1000 = 70.5 ppb (70.50000000000001 in floats),
    # rounded half up to 71 ppb: band 71-120 -> AQI 101. Truncated it was 70 -> 100.
    live(rig, ambient_hours(T0, 8, "o3", 0.0705))
    last_hour = T0 + 7 * H
    [o3] = rig.store.query_points("aqi", {"factory": "petro", "parameter": "o3"}, last_hour, last_hour + 1)
    assert (o3.fields["value"], o3.fields["band"], o3.fields["concentration"]) == (
        101.0,
        "unhealthy_sensitive",
        71.0,
    )


def test_pm25_aqi_uses_the_bands_in_force_on_the_hours_bangkok_day(tmp_path: Path) -> None:
    # Until 31 May 2023 (unconfirmed bands, AQI 100 = the 24-h standard of 50 ug/m3): 37.55 rounds
    # to 38, the bottom of 38-50 -> AQI 51. From 1 Jun 2023: 37.6 -> 101.
    start = datetime_to_ns(datetime(2023, 5, 30, 17, tzinfo=UTC))  # 2023-05-31 00:00 in Bangkok
    rig = Rig(tmp_path, start=start)
    try:
        live(rig, ambient_hours(start, 25, "pm25", 37.55))
        last_of_may = start + 23 * H  # 23:00 on 31 May in Bangkok
        points = rig.store.query_points(
            "aqi", {"factory": "petro", "parameter": "pm25"}, last_of_may, last_of_may + H + 1
        )
        assert [
            (p.ts_ns, p.fields["value"], p.fields["band"], p.fields["concentration"]) for p in points
        ] == [
            (last_of_may, 51.0, "moderate", 38.0),
            (last_of_may + H, 101.0, "unhealthy_sensitive", 37.6),
        ]
    finally:
        rig.close()


JUNE_2026 = date(2026, 6, 1)
MAY_2023 = date(2023, 5, 31)


@pytest.mark.parametrize(
    ("pollutant", "concentration", "day", "index", "band", "rounded"),
    [
        # Each expected index by hand: I = I_lo + (I_hi - I_lo) x (C - C_lo) / (C_hi - C_lo) on the
        # rounded C; at a band's low edge that is I_lo, at its high edge I_hi.
        ("pm25", 15.0, JUNE_2026, 25.0, "very_good", "15.0"),  # top of 0-15.0
        ("pm25", 15.04, JUNE_2026, 25.0, "very_good", "15.0"),  # rounds down
        ("pm25", 15.05, JUNE_2026, 26.0, "good", "15.1"),  # half up: bottom of 15.1-25.0
        ("pm25", 25.05, JUNE_2026, 51.0, "moderate", "25.1"),
        ("pm25", 37.5, JUNE_2026, 100.0, "moderate", "37.5"),  # the 24-h standard
        ("pm25", 37.55, JUNE_2026, 101.0, "unhealthy_sensitive", "37.6"),
        ("pm25", 56.3, JUNE_2026, 150.5, "unhealthy_sensitive", "56.3"),  # 101 + 99 x 18.7 / 37.4
        ("pm25", 75.0, JUNE_2026, 200.0, "unhealthy_sensitive", "75.0"),
        ("pm25", 75.05, JUNE_2026, 201.0, "unhealthy", "75.1"),
        ("pm10", 50.49, JUNE_2026, 25.0, "very_good", "50"),
        ("pm10", 50.5, JUNE_2026, 26.0, "good", "51"),
        ("pm10", 120.5, JUNE_2026, 101.0, "unhealthy_sensitive", "121"),
        ("pm10", 180.5, JUNE_2026, 201.0, "unhealthy", "181"),
        ("o3", 35.5, JUNE_2026, 26.0, "good", "36"),
        ("o3", 70.49, JUNE_2026, 100.0, "moderate", "70"),
        ("o3", 70.5, JUNE_2026, 101.0, "unhealthy_sensitive", "71"),
        ("co", 4.45, JUNE_2026, 26.0, "good", "4.5"),
        ("co", 9.04, JUNE_2026, 100.0, "moderate", "9.0"),
        ("co", 9.05, JUNE_2026, 101.0, "unhealthy_sensitive", "9.1"),
        ("co", 30.05, JUNE_2026, 201.0, "unhealthy", "30.1"),
        ("no2", 60.5, JUNE_2026, 26.0, "good", "61"),
        ("no2", 170.5, JUNE_2026, 101.0, "unhealthy_sensitive", "171"),
        ("so2", 300.5, JUNE_2026, 101.0, "unhealthy_sensitive", "301"),
        ("so2", 400.5, JUNE_2026, 201.0, "unhealthy", "401"),
        # Before 1 Jun 2023: 0-25 | 26-37 | 38-50 | 51-90 | 91- (only 91 confirmed), whole numbers.
        ("pm25", 37.55, MAY_2023, 51.0, "moderate", "38"),
        ("pm25", 50.4, MAY_2023, 100.0, "moderate", "50"),
        ("pm25", 50.5, MAY_2023, 101.0, "unhealthy_sensitive", "51"),
        ("pm25", 90.5, MAY_2023, 201.0, "unhealthy", "91"),
    ],
)
def test_thai_aqi_sub_index_rounds_half_up_before_the_band_lookup(
    pollutant: str, concentration: float, day: date, index: float, band: str, rounded: str
) -> None:
    found = sub_index(pollutant, concentration, day)
    assert found is not None
    assert (found.value, found.band, found.concentration) == (index, band, Decimal(rounded))


def test_co_9_05_ppm_rounds_to_9_1_and_sets_the_overall_index() -> None:
    # CO 9.05 -> 9.1 (band 9.1-30.0 -> 101); PM10 80 tops 51-80 (50); overall = the highest.
    points = aqi_points(
        "petro", "fence", T0, JUNE_2026, {"co": (9.05, "ppm"), "pm10": (80.0, "ug/m3")}, default_standards()
    )
    got = {p.tags["parameter"]: (p.fields["value"], p.fields["band"]) for p in points}
    assert got == {
        "co": (101.0, "unhealthy_sensitive"),
        "pm10": (50.0, "good"),
        "overall": (101.0, "unhealthy_sensitive"),
    }


def test_daily_completeness_follows_the_bangkok_day(rig: Rig) -> None:
    # The Bangkok day 2026-11-28 runs from 2026-11-27T17:00Z; 20 of its 24 hours hold data.
    day_start = T0 + 13 * H
    live(rig, ambient_hours(day_start, 24, "pm10", 30.0, skip={0, 1, 2, 3}))
    [daily] = rig.store.query_points("daily", {"factory": "petro", "channel": "pm10"}, 0, 2**62)
    assert daily.ts_ns == day_start
    assert daily.fields == {
        "valid_hours": 20,
        "expected_hours": 24,
        "completeness": pytest.approx(20 / 24),
        "complete": True,
        "method": "valid_hours/1",
    }


def test_energy_co2_is_kwh_times_the_grid_factor_in_force(rig: Rig) -> None:
    readings = [Reading("biomass", "meter", "energy", T0 + m * 60 * S, 1000.0 + m * 10.0) for m in range(60)]
    rig.feed(readings)
    rig.tick(T0 + H + 150 * S)
    [point] = rig.store.query_points("energy", {"factory": "biomass"}, 0, 2**62)
    assert point.fields == {
        "kwh": 590.0,
        "co2_kg": pytest.approx(590.0 * 0.4750),
        "grid_factor": 0.4750,
        "method": "counter_difference/2",
    }


def test_the_grid_factor_changes_from_0_4999_to_0_4750_at_bangkok_midnight_on_2026_01_01(
    tmp_path: Path,
) -> None:
    # 2025-12-31T16:00Z is 23:00 on 31 Dec in Bangkok: the last hour of 0.4999 (TGO, before 2026,
    # unconfirmed); the next hour is the first of 0.4750. Version 1 wrote no point for 2025.
    start = datetime_to_ns(datetime(2025, 12, 31, 16, tzinfo=UTC))
    rig = Rig(tmp_path, start=start)
    try:
        register = [
            Reading("biomass", "meter", "energy", start + m * 60 * S, 1000.0 + m * 10.0) for m in range(120)
        ]
        rig.feed(register)
        rig.tick(start + 2 * H + 150 * S)
        points = rig.store.query_points("energy", {"factory": "biomass"}, 0, 2**62)
        # Hour 1: the register from its first reading (1000) to its last (1590): 590 kWh.
        # Hour 2: from hour 1's last reading (1590) to its own last (1000 + 119 x 10 = 2190): 600 kWh.
        assert [(p.ts_ns, p.fields["kwh"], p.fields["grid_factor"]) for p in points] == [
            (start, 590.0, 0.4999),
            (start + H, 600.0, 0.4750),
        ]
        assert [p.fields["co2_kg"] for p in points] == [pytest.approx(294.941), pytest.approx(285.0)]
    finally:
        rig.close()


# -- stale, sensor faults ------------------------------------------------------------------------
def test_a_silent_device_goes_stale_and_the_offline_status_opens_it_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RuleSettings(stale_after_s=60))
    rig.feed([Reading(*B, "o2", T0, 9.0)], T0)
    rig.tick(T0 + 30 * S)
    assert rig.kinds("stale") == []
    rig.tick(T0 + 61 * S)
    rig.tick(T0 + 70 * S)
    assert ("opened", "stale") in rig.kinds("stale") and rig.kinds("stale").count(("opened", "stale")) == 4
    boiler = [e for e in rig.events if e.alert.device == "boiler" and e.alert.rule == "stale"]
    assert "no data from biomass/boiler for 61 s (limit 60 s)" in boiler[0].alert.message
    rig.feed([Reading(*B, "o2", T0 + 71 * S, 9.0)], T0 + 71 * S)
    assert [e.kind for e in rig.events if e.alert.device == "boiler" and e.alert.rule == "stale"] == [
        "opened",
        "resolved",
    ]
    rig.engine.on_status("starch", "outfall", "offline", T0 + 72 * S)  # already stale: no second alert
    rig.engine.on_status("biomass", "boiler", "offline", T0 + 73 * S)
    assert [e.kind for e in rig.events if e.alert.device == "boiler" and e.alert.rule == "stale"] == [
        "opened",
        "resolved",
        "reopened",
    ]
    rig.close()


def test_a_flatlined_analyzer_raises_a_flatline_fault(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RuleSettings(stale_after_s=1e9, flatline_s=600))
    rig.feed([Reading(*B, "o2", T0 + k * 10 * S, 9.0 + (k % 3) * 0.1) for k in range(10)])
    rig.feed([Reading(*B, "o2", T0 + k * 10 * S, 9.3) for k in range(10, 80)])
    assert rig.kinds("flatline") == [("opened", "flatline")]
    assert "o2 has not changed from 9.3 % for 600 s" in rig.first("flatline").alert.message
    rig.feed([Reading(*B, "o2", T0 + 81 * 10 * S, 9.1)])
    assert rig.kinds("flatline") == [("opened", "flatline"), ("resolved", "flatline")]
    rig.close()


def test_a_spike_is_found_by_its_robust_z_score_and_calibration_gas_is_not(rig: Rig) -> None:
    noise = [0.0, 0.4, -0.3, 0.2, -0.1, 0.3, -0.4, 0.1]
    base = [Reading(*B, "o2", T0 + k * 10 * S, 9.0 + noise[k % 8]) for k in range(60)]
    rig.feed(base)
    rig.feed([Reading(*B, "o2", T0 + 600 * S, 18.0, "C")])  # calibration gas: not a spike
    assert rig.kinds("spike") == []
    rig.feed([Reading(*B, "o2", T0 + 610 * S, 18.0)])
    assert rig.kinds("spike") == [("opened", "spike")]
    assert "o2 spike: 18 % against a median of 9.05 %" in rig.first("spike").alert.message


def test_a_value_stuck_at_the_end_of_the_measuring_range_is_a_fault(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RuleSettings(stale_after_s=1e9, stuck_s=300))
    rig.feed([Reading(*B, "so2", T0 + k * 10 * S, 500.0, "T") for k in range(40)])
    assert rig.kinds("stuck") == [("opened", "stuck")]
    assert (
        "so2 has stayed at the end of its measuring range (500 ppm) for 300 s"
        in rig.first("stuck").alert.message
    )
    assert rig.kinds("limit") == []  # over range is not a measured exceedance
    rig.close()


def test_a_change_faster_than_the_configured_rate_is_a_fault(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RuleSettings(stale_after_s=1e9, rate_of_change={"so2": 30.0}))
    rig.feed([Reading(*B, "so2", T0 + k * 60 * S, 20.0 + k) for k in range(5)])
    assert rig.kinds("rate") == []
    rig.feed([Reading(*B, "so2", T0 + 5 * 60 * S, 120.0)])
    assert rig.kinds("rate") == [("opened", "rate")]
    assert "so2 changed by 96 ppm per minute (limit 30 ppm per minute)" in rig.first("rate").alert.message
    rig.close()


def test_open_alerts_survive_a_restart_without_a_second_notification(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(stack_hour(T0, 80.0, 7.0, minutes=range(20)))
    assert rig.kinds("limit") == [("opened", "limit")]
    again = AlertEngine(
        rig.registry,
        rig.alerts,
        Dispatcher([]),
        clock=lambda: rig.now,
        on_event=rig.events.append,
        store=rig.store,
    )
    again.on_readings(stack_hour(T0, 80.0, 7.0, minutes=range(20, 30)), T0 + 30 * 60 * S)
    assert rig.kinds("limit") == [("opened", "limit")]
    rig.close()


def test_a_redelivered_scan_does_not_end_a_devices_silence(tmp_path: Path) -> None:
    # At least once: the broker may deliver a scan again (the ingest reconnected before its
    # acknowledgement). Nothing newer came from the device: it stays stale; a new scan ends it.
    rig = Rig(tmp_path, RuleSettings(stale_after_s=60))
    scan = [Reading(*B, "o2", T0, 9.0), Reading(*B, "so2", T0, 20.0)]
    rig.feed(scan, T0)
    rig.tick(T0 + 61 * S)

    def boiler() -> list[str]:
        return [e.kind for e in rig.events if e.alert.device == "boiler" and e.alert.rule == "stale"]

    assert boiler() == ["opened"]
    rig.feed(scan, T0 + 62 * S)  # the same scan again
    rig.tick(T0 + 63 * S)
    assert boiler() == ["opened"]
    rig.feed([Reading(*B, "o2", T0 + 64 * S, 9.0), Reading(*B, "so2", T0 + 64 * S, 20.0)], T0 + 64 * S)
    assert boiler() == ["opened", "resolved"]
    rig.close()


def test_a_retained_offline_delivered_with_fresh_data_does_not_open_a_stale_alert(rig: Rig) -> None:
    # On reconnecting, the ingest receives the retained last will `offline` in the same batch as
    # the device's new data: the data is the newer news.
    rig.feed([Reading(*B, "o2", T0, 9.0)], T0)
    rig.engine.on_status("biomass", "boiler", "offline", T0)
    assert rig.kinds("stale") == []
    rig.engine.on_status("biomass", "boiler", "offline", T0 + S)
    assert rig.kinds("stale") == [("opened", "stale")]


def test_an_hour_begun_before_the_engine_is_read_back_from_the_store_within_a_tick_budget(
    tmp_path: Path,
) -> None:
    # The engine starts at 11:30 (a restart): the store has 11:00-11:29 from before. The hour's
    # average needs those points, read back from the store; when a tick's store reads are used up,
    # the hour waits for a later tick instead of holding up the rules.
    rig = Rig(tmp_path, start=T0 + 30 * 60 * S)
    rig.store.write(stack_hour(T0, 80.0, 7.0, minutes=range(30)))
    rig.feed(stack_hour(T0, 40.0, 7.0, minutes=range(30, 60)), T0 + 60 * 60 * S)
    rig.engine.read_budget_s = -1.0
    rig.tick(T0 + H + 150 * S)
    assert rig.hourly("so2") == []
    rig.engine.read_budget_s = 0.5
    rig.tick(T0 + H + 155 * S)
    [hour] = rig.hourly("so2")
    assert hour.fields["points"] == 60
    assert hour.fields["value"] == pytest.approx(60.0)
    rig.close()
