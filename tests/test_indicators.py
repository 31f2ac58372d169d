"""Town indicators: the catalogue's worked examples, golden values from an imported month of a
small town (hand-computed, including the month changed by late data), the public scope (a
non-public factory adds nothing), replay safety, and the catalogue's and registry's errors."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.indicators import DeviceInfo, _Reader, contributions, town_value
from eit.errors import ConfigError
from eit.indicators import Indicator, load_catalogue, period_bounds
from eit.registry import load_registry
from eit.store import Point
from eit.storeschema import CHANNEL, DEVICE, FACTORY, Aqi
from ingest.store.sqlite import SqliteSettings, SqliteStore, build
from testbed.services import EIT, REPO

SITE = REPO / "tests" / "data" / "indicators-site.yaml"
BANGKOK = ZoneInfo("Asia/Bangkok")
CATALOGUE = load_catalogue()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = build(SqliteSettings(path=tmp_path / "readings.db"))
    yield s
    s.close()


# -- the catalogue's worked examples --------------------------------------------------------------
def _example_devices(indicator: Indicator) -> tuple[list[DeviceInfo], dict[str, bool]]:
    ex = indicator.example
    if ex.registry:
        devices = [DeviceInfo(d.factory, d.device, d.kind) for d in ex.registry]
        return devices, {d.factory: d.public for d in ex.registry}
    kind = {"energy": "energy"}
    found = {(p.tags[FACTORY], p.tags[DEVICE], kind.get(p.measurement, "stack")) for p in ex.points}
    return [DeviceInfo(*d) for d in sorted(found)], {f: True for f, _, _ in found}


@pytest.mark.parametrize("indicator_id", sorted(CATALOGUE.indicators))
def test_each_catalogue_entry_gives_its_worked_example(indicator_id: str, store: SqliteStore) -> None:
    indicator = CATALOGUE.indicators[indicator_id]
    ex = indicator.example
    by_measurement: dict[str, list[Point]] = {}
    for p in ex.points:
        by_measurement.setdefault(p.measurement, []).append(Point(p.measurement, p.tags, p.ts_ns, p.fields))
    for measurement, points in by_measurement.items():
        store.write_points(measurement, points)
    devices, public = _example_devices(indicator)
    found = contributions(indicator, "month", ex.period, devices, public, _Reader(store), BANGKOK)
    result = town_value(indicator, found, set(public), len(public))
    assert result.value == pytest.approx(ex.value), ex.text
    assert ex.text and indicator.source


def test_the_aqi_day_is_the_window_ending_at_local_midnight_and_a_day_without_one_is_not_counted(
    store: SqliteStore,
) -> None:
    indicator = CATALOGUE.indicators["aqi_good_days"]
    # 2026-03-01 23:00 Bangkok = 16:00 UTC; the 22:00 hour (a partial window) and an O3 8-hour
    # sub-index are not the day's 24-hour mean.
    day_end_hour = datetime(2026, 3, 1, 16, tzinfo=UTC)
    points = [
        _aqi("pm25", day_end_hour, 99.0),
        _aqi("pm25", day_end_hour - timedelta(hours=1), 300.0),
        _aqi("o3", day_end_hour, 180.0),
        _aqi("pm25", day_end_hour + timedelta(days=1), 100.0),  # 2 Mar: at the threshold, good
        _aqi("pm10", day_end_hour + timedelta(days=2), 100.5),  # 3 Mar: above
    ]
    store.write_points(Aqi.NAME, points)
    devices = [DeviceInfo("a", "fence", "ambient")]
    found = contributions(indicator, "month", date(2026, 3, 1), devices, {"a": True}, _Reader(store), BANGKOK)
    assert [(c.device, c.numerator, c.denominator) for c in found] == [("fence", 2.0, 3.0)]


def _aqi(parameter: str, at: datetime, value: float) -> Point:
    ts = int(at.timestamp()) * 1_000_000_000
    return Point(Aqi.NAME, {FACTORY: "a", DEVICE: "fence", Aqi.PARAMETER: parameter}, ts, {Aqi.VALUE: value})


# -- golden values from an imported month -----------------------------------------------------------
def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EIT, *args], capture_output=True, text=True, cwd=REPO, timeout=240)


def _utc(day: date, hour: int, minute: int) -> str:
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BANGKOK)
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _steps(days: list[date]) -> Iterator[tuple[int, date, int, int]]:
    """(index, local day, hour, minute) every 15 minutes of the local days, in order."""
    k = 0
    for day in days:
        for hour in range(24):
            for minute in (0, 15, 30, 45):
                yield k, day, hour, minute
                k += 1


JAN = [date(2026, 1, 10), date(2026, 1, 11), date(2026, 1, 12)]
PM25_BY_DAY = {JAN[0]: 20.0, JAN[1]: 80.0, JAN[2]: 30.0}  # AQI about 40, above 200, about 75


def write_month(path: Path) -> None:
    """Three Bangkok days of January 2026 and one of December 2025, every 15 minutes:
    - biomass: energy register +25 kWh each 15 min (10 Jan-12 Jan; and 30 Dec 2025 from 0), SO2
      40 ppm at 7 % O2 (the reference) except 80 ppm on 11 Jan 10:00-11:59 (2 hours above 60 ppm);
    - hidden (not public): register +50 kWh each 15 min, SO2 90 ppm on 10 Jan 08:00-12:59 (5 hours);
    - starch: COD 50 mg/L, none after 12 Jan 11:59 (12 Jan has 12 valid hours of 24);
    - petro: PM2.5 20, 80, then 30 ug/m3, one value a day."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "factory", "device", "channel", "value", "flag"])
        for k, day, hour, minute in _steps([date(2025, 12, 30)]):
            w.writerow([_utc(day, hour, minute), "biomass", "meter", "energy", 25.0 * k, ""])
        for k, day, hour, minute in _steps(JAN):
            t = _utc(day, hour, minute)
            w.writerow([t, "biomass", "meter", "energy", 10000.0 + 25.0 * k, ""])
            w.writerow([t, "hidden", "meter", "energy", 50.0 * k, ""])
            so2 = 80.0 if (day, hour) in ((JAN[1], 10), (JAN[1], 11)) else 40.0
            w.writerow([t, "biomass", "boiler", "so2", so2, ""])
            w.writerow([t, "biomass", "boiler", "o2", 7.0, ""])
            hidden_so2 = 90.0 if day == JAN[0] and 8 <= hour <= 12 else 40.0
            w.writerow([t, "hidden", "boiler", "so2", hidden_so2, ""])
            w.writerow([t, "hidden", "boiler", "o2", 7.0, ""])
            if not (day == JAN[2] and hour >= 12):
                w.writerow([t, "starch", "outfall", "cod", 50.0, ""])
            w.writerow([t, "petro", "fence", "pm25", PM25_BY_DAY[day], ""])


def write_late(path: Path) -> None:
    """Late data for 20 Jan 2026: starch's COD at 200 mg/L (above 120) from 10:00 to 10:59."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "factory", "device", "channel", "value", "flag"])
        for minute in (0, 15, 30, 45):
            w.writerow([_utc(date(2026, 1, 20), 10, minute), "starch", "outfall", "cod", 200.0, ""])


def values(board: dict[str, Any], period: str) -> dict[str, float | None]:
    return {
        ind["id"]: next(p["value"] for p in ind["periods"] if p["period"] == period)
        for ind in board["indicators"]
    }


def indicators(data: Path, *extra: str) -> dict[str, Any]:
    done = run(
        "indicators", "--site", str(SITE), "--data-dir", str(data), "--from", "2025-12-01", "--to",
        "2026-01-31", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    board: dict[str, Any] = json.loads(done.stdout)
    return board


# Hand computation (see write_month): kWh of a register = the first hour's rise (3 steps), then
# 4 steps an hour; CO2 = kWh x 0.4750 in 2026 and 0.4999 in 2025 (eit/standards/th_grid.yaml).
BIOMASS_KWH = 3 * 25 + 71 * 4 * 25  # 72 hours: 7175
HIDDEN_KWH = 3 * 50 + 71 * 4 * 50  # 14350
DEC_KWH = 3 * 25 + 23 * 4 * 25  # 24 hours: 2375
GOLDEN_PUBLIC = {
    "town_co2_grid": BIOMASS_KWH * 0.4750,  # 3408.125
    "energy_per_factory": float(BIOMASS_KWH),
    # starch of biomass, starch, petro (petro's 24-hour PM2.5 windows of 11 Jan are above 37.5)
    "factories_compliant": 1 / 3 * 100,
    "channels_complete": 8 / 9 * 100,  # biomass so2, o2 x 3 days; starch 2 of 3 days
    "stack_hours_above_limit": 2.0,
    "aqi_good_days": 2.0,  # 10 and 12 Jan of 3 days with a value
    "effluent_screening_exceedances": 0.0,
    "factories_publishing": 75.0,  # 3 of 4
}
GOLDEN_TOWN = {
    "town_co2_grid": (BIOMASS_KWH + HIDDEN_KWH) * 0.4750,  # 10224.375
    "energy_per_factory": (BIOMASS_KWH + HIDDEN_KWH) / 2,
    "factories_compliant": 1 / 4 * 100,
    "channels_complete": 14 / 15 * 100,
    "stack_hours_above_limit": 7.0,
    "aqi_good_days": 2.0,
    "effluent_screening_exceedances": 0.0,
    "factories_publishing": 75.0,
}


@pytest.mark.integration  # runs `eit` processes
def test_an_imported_month_gives_the_hand_computed_indicators_and_late_data_changes_them(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    month, late = tmp_path / "month.csv", tmp_path / "late.csv"
    write_month(month)
    write_late(late)
    imported = run("import", "--site", str(SITE), "--data-dir", str(data), str(month))
    assert imported.returncode == 0, imported.stderr

    town = indicators(data)
    public = indicators(data, "--public", "--no-compute")
    assert town["scope"] == "town" and public["scope"] == "public"
    assert (public["factories_in_scope"], public["factories_total"]) == (3, 4)
    assert values(public, "2026-01") == pytest.approx(GOLDEN_PUBLIC)
    assert values(town, "2026-01") == pytest.approx(GOLDEN_TOWN)
    # The year holds January only; December 2025 used the 2025 grid factor.
    assert values(town, "2026") == pytest.approx(GOLDEN_TOWN)
    assert values(public, "2025-12")["town_co2_grid"] == pytest.approx(DEC_KWH * 0.4999)
    assert values(public, "2025")["town_co2_grid"] == pytest.approx(DEC_KWH * 0.4999)
    co2 = next(i for i in public["indicators"] if i["id"] == "town_co2_grid")
    assert co2["target"]["illustrative"] is True
    assert next(p for p in co2["periods"] if p["period"] == "2026")["trajectory"] == pytest.approx(45000.0)
    compliant = next(i for i in public["indicators"] if i["id"] == "factories_compliant")
    january = next(p for p in compliant["periods"] if p["period"] == "2026-01")
    assert (january["trajectory"], january["on_track"]) == (pytest.approx(75.0), False)
    assert (january["numerator"], january["denominator"], january["factories"]) == (1.0, 3.0, 3)

    # Late data for 20 Jan: an effluent hour above the standard; the import recomputes the month
    # (shown without computing anything here).
    imported = run("import", "--site", str(SITE), "--data-dir", str(data), str(late))
    assert imported.returncode == 0, imported.stderr
    after = indicators(data, "--public", "--no-compute")
    assert values(after, "2026-01") == pytest.approx(
        GOLDEN_PUBLIC
        | {
            "effluent_screening_exceedances": 1.0,
            "factories_compliant": 0.0,  # starch is no longer compliant
            "channels_complete": 8 / 10 * 100,  # 20 Jan: 1 valid hour of 24
        }
    )
    # Replay-safe: computing again from the same store changes nothing.
    again = indicators(data, "--public")
    assert again == after

    # CSV and HTML carry the same figures.
    done = run(
        "indicators", "--site", str(SITE), "--data-dir", str(data), "--from", "2026-01-01", "--to",
        "2026-01-31", "--public", "--no-compute", "--format", "csv",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    by_key = {(r["indicator"], r["period"]): r for r in csv.DictReader(done.stdout.splitlines())}
    assert float(by_key[("town_co2_grid", "2026-01")]["value"]) == pytest.approx(BIOMASS_KWH * 0.475)
    assert by_key[("factories_publishing", "2026-01")]["factories_total"] == "4"
    done = run(
        "indicators", "--site", str(SITE), "--data-dir", str(data), "--from", "2026-01-01", "--to",
        "2026-01-31", "--public", "--no-compute", "--format", "html",
    )  # fmt: skip
    assert "Town CO2 from grid electricity" in done.stdout and "3408.12" in done.stdout
    assert "Target (illustrative)" in done.stdout


def test_a_non_public_factory_adds_nothing_to_any_public_indicator(store: SqliteStore) -> None:
    from alerts.indicators import compute_indicators, scoreboard

    registry = load_registry(SITE)
    start, _ = period_bounds("month", date(2026, 2, 1), BANGKOK)
    hour = start + 5 * 3600 * 1_000_000_000

    def hourly(factory: str, exceeded: bool) -> Point:
        tags = {FACTORY: factory, DEVICE: "boiler", CHANNEL: "so2"}
        return Point("hourly", tags, hour, {"exceeded": exceeded, "valid": True})

    store.write_points("hourly", [hourly("biomass", False)])
    compute_indicators(registry, store, date(2026, 2, 1), date(2026, 2, 28))
    before = scoreboard(registry, store, date(2026, 2, 1), date(2026, 2, 28), public_only=True)
    store.write_points("hourly", [hourly("hidden", True)])
    store.write_points(
        "energy", [Point("energy", {FACTORY: "hidden", DEVICE: "meter"}, hour, {"kwh": 9e6, "co2_kg": 4e6})]
    )
    compute_indicators(registry, store, date(2026, 2, 1), date(2026, 2, 28))
    after_public = scoreboard(registry, store, date(2026, 2, 1), date(2026, 2, 28), public_only=True)
    after_town = scoreboard(registry, store, date(2026, 2, 1), date(2026, 2, 28), public_only=False)
    assert after_public == before
    assert values(after_town, "2026-02")["stack_hours_above_limit"] == 1.0
    assert values(after_town, "2026-02")["town_co2_grid"] == 4e6
    assert values(after_public, "2026-02")["town_co2_grid"] is None


# -- errors ------------------------------------------------------------------------------------------
def test_a_town_adds_its_own_indicator_and_a_bad_one_is_named_with_file_and_key(tmp_path: Path) -> None:
    own = tmp_path / "own.yaml"
    own.write_text(
        """
indicators:
  - id: stack_valid_hours
    version: 1
    name: {en: Valid stack hours, th: ชั่วโมงที่ใช้ได้ของปล่อง}
    owner: local
    unit: h
    direction: higher
    periods: [month]
    formula: {measurement: hourly, field: valid, filters: {device_kind: [stack]}, aggregation: count_true,
              combine: sum}
    source: The town's own.
    example:
      text: One valid hour.
      period: 2026-01
      points:
        - {measurement: hourly, factory: a, device: b, channel: so2, time: "2026-01-10T03:00:00Z",
           valid: true}
      value: 1
""",
        encoding="utf-8",
    )
    catalogue = load_catalogue((own,))
    assert "stack_valid_hours" in catalogue.indicators and "town_co2_grid" in catalogue.indicators

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        own.read_text(encoding="utf-8")
        .replace("owner: local", "owner: nobody")
        .replace("aggregation: count_true", "aggregation: eval"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_catalogue((bad,))
    text = str(caught.value)
    assert f"{bad}:" in text and "indicators[stack_valid_hours].owner: unknown agency 'nobody'" in text
    assert "indicators[stack_valid_hours].formula.aggregation: 'eval' is not one of" in text


def test_registry_targets_and_licence_errors_name_the_file_and_key(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        SITE.read_text(encoding="utf-8")
        .replace("  targets:\n    town_co2_grid:", "  targets:\n    town_co2:")
        .replace("licence: CC-BY-4.0", "licence: All-rights-reserved"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_registry(site)
    text = str(caught.value)
    assert "indicators.targets.town_co2: no indicator 'town_co2' in the catalogue" in text
    assert "open_data.licence: 'All-rights-reserved' is not a licence of eit/licenses.yaml" in text
    assert str(site) in text


def test_the_example_town_marks_its_targets_illustrative_and_defaults_to_cc_by() -> None:
    registry = load_registry(REPO / "examples" / "town" / "site.yaml")
    assert registry.indicators.targets and all(t.illustrative for t in registry.indicators.targets.values())
    assert registry.open_data is not None and registry.open_data.licence.id == "CC-BY-4.0"
    minimal = load_registry(REPO / "tests" / "data" / "compliance-site.yaml")
    assert minimal.open_data is not None and minimal.open_data.licence.id == "CC-BY-4.0"


def test_the_serve_job_computes_the_running_and_previous_month_from_the_store(store: SqliteStore) -> None:
    from alerts.indicators import read_contributions
    from alerts.indicators_job import IndicatorJob, daily_span, recent_span
    from eit.supervise import Supervisor
    from eit.timeutil import datetime_to_ns

    assert recent_span(date(2026, 1, 5)) == (date(2025, 12, 1), date(2026, 1, 5))
    assert daily_span(date(2026, 1, 5)) == (date(2025, 1, 1), date(2026, 1, 5))
    registry = load_registry(SITE)
    now = datetime_to_ns(datetime(2026, 3, 3, 5, tzinfo=UTC))
    feb_start, _ = period_bounds("month", date(2026, 2, 1), BANGKOK)
    meter = {FACTORY: "biomass", DEVICE: "meter"}
    store.write_points(
        "energy", [Point("energy", meter, feb_start + 3600 * 10**9, {"kwh": 10.0, "co2_kg": 4.75})]
    )
    jan = period_bounds("month", date(2026, 1, 1), BANGKOK)[0] + 3600 * 10**9
    store.write_points("energy", [Point("energy", meter, jan, {"kwh": 2.0, "co2_kg": 1.0})])
    job = IndicatorJob(registry, store, interval_s=3600.0, supervisor=Supervisor(), clock=lambda: now)
    job.start()
    try:
        assert job.ran.wait(30), "the job runs at start"
    finally:
        job.stop()
    assert job.runs == 1 and job.last is not None and job.last.contributions > 0
    # The first run of a day covers every month since the start of the year: January's late data.
    jan_start, _ = period_bounds("month", date(2026, 1, 1), BANGKOK)
    assert [
        c.value for c in read_contributions(store, "town_co2_grid", "month", jan_start, jan_start + 1)
    ] == [1.0]
    # Later runs of the day: the running and the previous month only.
    store.write_points(
        "energy", [Point("energy", meter, jan_start + 7200 * 10**9, {"kwh": 2.0, "co2_kg": 2.0})]
    )
    whole_year = job.last.periods
    assert job.run_once().periods < whole_year  # 2 months and a year, not 3 months and a year
    assert [
        c.value for c in read_contributions(store, "town_co2_grid", "month", jan_start, jan_start + 1)
    ] == [1.0]
    feb = read_contributions(store, "town_co2_grid", "month", feb_start, feb_start + 1)
    assert [(c.factory, c.value) for c in feb] == [("biomass", 4.75)]
    year_start, _ = period_bounds("year", date(2026, 1, 1), BANGKOK)
    assert [
        c.value for c in read_contributions(store, "town_co2_grid", "year", year_start, year_start + 1)
    ] == [5.75]


@pytest.mark.parametrize("indicator_id", sorted(CATALOGUE.indicators))
def test_a_year_made_from_its_months_equals_the_year_computed_from_the_points(
    indicator_id: str, store: SqliteStore
) -> None:
    from alerts.indicators import _year_from_months

    indicator = CATALOGUE.indicators[indicator_id]
    ex = indicator.example
    shift = 35 * 86400 * 1_000_000_000  # into February, the same local hours
    points: dict[str, list[Point]] = {}
    for i, p in enumerate(ex.points):
        points.setdefault(p.measurement, []).append(Point(p.measurement, p.tags, p.ts_ns, p.fields))
        fields = {k: (not v if isinstance(v, bool) and i == 0 else v) for k, v in p.fields.items()}
        if "value" in fields and i == 0:
            fields["value"] = 150.0  # February's first AQI day above 100
        points[p.measurement].append(Point(p.measurement, p.tags, p.ts_ns + shift, fields))
    for measurement, pts in points.items():
        store.write_points(measurement, pts)
    devices, public = _example_devices(indicator)
    reader = _Reader(store)
    january = contributions(indicator, "month", date(2026, 1, 1), devices, public, reader, BANGKOK)
    store.write_points("indicator", [c.point(indicator.method) for c in january])
    february = contributions(indicator, "month", date(2026, 2, 1), devices, public, reader, BANGKOK)
    feb_start, _ = period_bounds("month", date(2026, 2, 1), BANGKOK)
    made = _year_from_months(
        indicator,
        date(2026, 1, 1),
        {feb_start: february},
        store,
        BANGKOK,
    )
    direct = contributions(indicator, "year", date(2026, 1, 1), devices, public, reader, BANGKOK)

    def key(found: list[Any]) -> list[tuple[str, str, float, float, float]]:
        return sorted((c.factory, c.device, round(c.value, 9), c.numerator, c.denominator) for c in found)

    assert key(made) == key(direct) and made


def test_the_registry_names_the_towns_own_catalogue_and_a_missing_file_is_named(tmp_path: Path) -> None:
    from alerts.indicators import catalogue_of

    own = tmp_path / "town-indicators.yaml"
    own.write_text(
        """
indicators:
  - id: valid_stack_hours
    version: 1
    name: {en: Valid stack hours, th: ชั่วโมงที่ใช้ได้ของปล่อง}
    owner: local
    unit: h
    direction: higher
    periods: [month, year]
    formula: {measurement: hourly, field: valid, filters: {device_kind: [stack]}, aggregation: count_true,
              combine: sum}
    source: The town's own.
    example:
      text: One valid hour.
      period: 2026-01
      points:
        - {measurement: hourly, factory: a, device: b, channel: so2, time: "2026-01-10T03:00:00Z",
           valid: true}
      value: 1
""",
        encoding="utf-8",
    )
    text = SITE.read_text(encoding="utf-8").replace(
        "indicators:\n  targets:", "indicators:\n  catalogue_files: [town-indicators.yaml]\n  targets:"
    )
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    registry = load_registry(site)
    assert "valid_stack_hours" in catalogue_of(registry).indicators

    site.write_text(text.replace("town-indicators.yaml", "missing.yaml"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_registry(site)
    assert f"indicators.catalogue_files: item 0: file {tmp_path / 'missing.yaml'} not found" in str(
        caught.value
    )


@pytest.mark.integration  # runs `eit` processes
def test_eit_indicators_names_a_bad_period_or_indicator(tmp_path: Path) -> None:
    common = ["indicators", "--site", str(SITE), "--data-dir", str(tmp_path / "data")]
    done = run(*common, "--from", "2026-13-01", "--to", "2026-12-31")
    assert done.returncode == 2 and "--from/--to" in done.stderr
    done = run(*common, "--from", "2026-02-01", "--to", "2026-01-01")
    assert done.returncode == 2 and "--to 2026-01-01 is before --from 2026-02-01" in done.stderr
    done = run(*common, "--from", "2026-01-01", "--to", "2026-01-31", "--indicator", "nope")
    assert done.returncode == 2 and "no indicator nope in the catalogue" in done.stderr
