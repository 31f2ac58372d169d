"""`eit recompute` and the rules' I/O kept apart from their decisions.

- `eit recompute` reruns the rules over stored readings: points written by an older method (or
  damaged) are replaced with what the store's readings give, with the method's version; a second
  run changes nothing.
- A store whose reads take seconds delays the rules' verdicts (the tick), never ``on_readings``,
  which the ingest's acknowledgements wait for.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from alerts.effects import EffectWorker
from alerts.engine import AlertEngine
from alerts.notifiers.dispatch import Dispatcher
from alerts.recompute import recompute
from alerts.settings import RuleSettings
from alerts.state import open_alert_store
from eit.model import Reading
from eit.registry import load_registry
from eit.store import Point
from eit.storeschema import Aqi, Energy, Hourly
from ingest.store.sqlite import SqliteStore
from testbed.services import EIT, REPO
from tests.test_report import write_history

SITE = REPO / "tests" / "data" / "compliance-site.yaml"
S = 1_000_000_000
H = 3600 * S
T0 = 1795752000 * S  # 2026-11-27T04:00:00Z


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EIT, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_recompute_replaces_old_points_with_what_the_readings_give_and_is_idempotent(tmp_path: Path) -> None:
    csv_path = tmp_path / "history.csv"
    write_history(csv_path)
    data = tmp_path / "data"
    assert run("import", "--site", str(SITE), "--data-dir", str(data), str(csv_path)).returncode == 0
    store = SqliteStore(data / "readings.db")
    tags = {"factory": "biomass", "device": "boiler", "channel": "so2"}
    before = {p.ts_ns: dict(p.fields) for p in store.query_points(Hourly.NAME, tags, 0, 2**62)}
    assert len(before) == 21 and all(f[Hourly.METHOD] == "minute_means/2" for f in before.values())
    # A point as an older release wrote it: another average, no method.
    damaged = sorted(before)[3]
    store.write_points(
        Hourly.NAME, [Point(Hourly.NAME, tags, damaged, {Hourly.VALUE: 1.0, Hourly.VALID: False})]
    )
    store.close()

    args = [
        "recompute",
        "--site",
        str(SITE),
        "--data-dir",
        str(data),
        "--from",
        "2026-11-28",
        "--to",
        "2026-11-28",
    ]
    first = run(*args, "--factory", "biomass")
    assert first.returncode == 0, first.stderr
    assert "hours of" in first.stdout and "2026-11-28 to 2026-11-28 (Asia/Bangkok days)" in first.stdout
    store = SqliteStore(data / "readings.db")
    after = {p.ts_ns: dict(p.fields) for p in store.query_points(Hourly.NAME, tags, 0, 2**62)}
    assert after == before
    store.close()
    again = run(*args)
    assert again.returncode == 0, again.stderr
    store = SqliteStore(data / "readings.db")
    assert {p.ts_ns: dict(p.fields) for p in store.query_points(Hourly.NAME, tags, 0, 2**62)} == before
    store.close()


def test_recompute_after_upgrade_rounds_the_aqi_and_adds_co2_for_days_before_2026(tmp_path: Path) -> None:
    # What aqi pcd_bands/1 and energy counter_difference/1 left in the store: PM2.5 37.55 truncated
    # to 37.5 (AQI 100), and no energy point for 2025 (no grid factor was known before 2026).
    registry = load_registry(SITE)
    store = SqliteStore(tmp_path / "readings.db")
    try:
        pm25 = [Reading("petro", "fence", "pm25", T0 + m * 5 * 60 * S, 37.55) for m in range(24 * 12)]
        new_year_eve = 1767196800 * S  # 2025-12-31T16:00Z, 23:00 in Bangkok
        register = [
            Reading("biomass", "meter", "energy", new_year_eve - 24 * H + m * 60 * S, 100.0 + m)
            for m in range(60)
        ]
        store.write(pm25 + register)
        last_hour = T0 + 23 * H
        tags = {"factory": "petro", "device": "fence", "parameter": "pm25"}
        old: dict[str, float | int | bool | str] = {
            Aqi.VALUE: 100.0,
            Aqi.BAND: "moderate",
            Aqi.CONCENTRATION: 37.5,
            Aqi.METHOD: "pcd_bands/1",
        }
        store.write_points(Aqi.NAME, [Point(Aqi.NAME, tags, last_hour, old)])

        recompute(registry, store, T0, T0 + 24 * H)
        [aqi] = store.query_points(Aqi.NAME, tags, last_hour, last_hour + 1)
        assert aqi.fields == {
            Aqi.VALUE: 101.0,
            Aqi.BAND: "unhealthy_sensitive",
            Aqi.CONCENTRATION: 37.6,
            Aqi.METHOD: "pcd_bands/2",
        }

        recompute(registry, store, new_year_eve - 24 * H, new_year_eve)
        [energy] = store.query_points(Energy.NAME, {"factory": "biomass"}, 0, 2**62)
        assert (energy.ts_ns, energy.fields) == (
            new_year_eve - 24 * H,
            {
                Energy.KWH: 59.0,
                Energy.CO2_KG: pytest.approx(59.0 * 0.4999),
                Energy.GRID_FACTOR: 0.4999,
                Energy.METHOD: "counter_difference/2",
            },
        )
    finally:
        store.close()


def test_recompute_names_an_unknown_factory_and_a_bad_date(tmp_path: Path) -> None:
    base = ["recompute", "--site", str(SITE), "--data-dir", str(tmp_path)]
    bad_factory = run(*base, "--from", "2026-11-28", "--to", "2026-11-28", "--factory", "nowhere")
    assert bad_factory.returncode == 2 and "--factory nowhere: not in" in bad_factory.stderr
    bad_date = run(*base, "--from", "2026-11-31", "--to", "2026-12-01")
    assert bad_date.returncode == 2 and "--from/--to" in bad_date.stderr


class SlowStore(SqliteStore):
    """The embedded store with reads and derived writes that take ``delay_s`` (a store under load)."""

    def __init__(self, path: Path, delay_s: float) -> None:
        super().__init__(path)
        self.delay_s = delay_s

    def readings(
        self, factory: str, device: str, channel: str, start_ns: int, end_ns: int, limit: int | None = None
    ) -> list[Reading]:
        time.sleep(self.delay_s)
        return super().readings(factory, device, channel, start_ns, end_ns, limit)

    def query_points(
        self, measurement: str, tags: Mapping[str, str], start_ns: int, end_ns: int
    ) -> list[Point]:
        time.sleep(self.delay_s)
        return super().query_points(measurement, tags, start_ns, end_ns)

    def write_points(self, measurement: str, points: Sequence[Point]) -> None:
        time.sleep(self.delay_s)
        super().write_points(measurement, points)


def _scan(ts: int, so2: float) -> list[Reading]:
    return [Reading("biomass", "boiler", "so2", ts, so2), Reading("biomass", "boiler", "o2", ts, 7.0)]


def test_a_store_slowed_by_seconds_delays_the_verdicts_not_on_readings(tmp_path: Path) -> None:
    store = SlowStore(tmp_path / "readings.db", delay_s=3.0)
    alerts = open_alert_store(None, tmp_path / "state.db")
    now = [T0 + 30 * 60 * S]
    engine = AlertEngine(
        load_registry(SITE),
        alerts,
        Dispatcher([]),
        clock=lambda: now[0],
        settings=RuleSettings(stale_after_s=1e9, provisional_min_points=1),
        store=store,
    )
    worker = EffectWorker(engine.applier)
    engine.effects = worker
    worker.start()
    # The engine started at 11:30: the hour's first half must be read back from the (slow) store.
    first = _scan(T0 + 31 * 60 * S, 90.0)
    SqliteStore.write(store, first)
    engine.on_readings(first, now[0])
    ticking = threading.Thread(target=engine.tick, args=(now[0],))
    ticking.start()
    time.sleep(0.3)  # scenario time: the tick is now inside its first 3-second store read
    assert ticking.is_alive()
    slowest = 0.0
    for k in range(20):
        batch = _scan(T0 + (32 + k) * 60 * S, 90.0)
        SqliteStore.write(store, batch)
        started = time.perf_counter()
        engine.on_readings(batch, now[0])
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.1, f"on_readings waited {slowest:.2f} s behind the tick's store reads"
    ticking.join(30)
    assert not ticking.is_alive()
    # The verdict came, late: once the first half was read back, the running hour is screened.
    assert worker.drain(30)
    [alert] = alerts.list(state="active")
    assert alert.rule == "limit" and alert.provisional
    worker.stop()
    alerts.close()
    store.close()


def test_a_slow_alert_database_delays_alerts_not_on_readings(tmp_path: Path) -> None:
    delay_s = 3.0
    store = SqliteStore(tmp_path / "readings.db")
    alerts = open_alert_store(None, tmp_path / "state.db")
    original = alerts.start_condition

    def slow_open(*args: object, **kwargs: object) -> object:
        time.sleep(delay_s)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    alerts.start_condition = slow_open  # type: ignore[method-assign,assignment]
    now = [T0]
    engine = AlertEngine(
        load_registry(SITE),
        alerts,
        Dispatcher([]),
        clock=lambda: now[0],
        settings=RuleSettings(stale_after_s=1e9, provisional_min_points=1),
        store=store,
    )
    worker = EffectWorker(engine.applier)
    engine.effects = worker
    worker.start()
    timings = []
    for k in range(5):
        batch = _scan(T0 + k * 60 * S, 95.0)
        store.write(batch)
        started = time.perf_counter()
        engine.on_readings(batch, T0 + k * 60 * S)
        timings.append(time.perf_counter() - started)
    assert max(timings) < 0.1, timings  # the provisional alert's insert is on the worker's time
    assert engine.open_count() == 1  # decided at once, in memory
    assert alerts.list(state="active") == []  # not yet in the database
    assert worker.drain(delay_s + 10)
    assert [a.rule for a in alerts.list(state="active")] == ["limit"]
    worker.stop()
    alerts.close()
    store.close()
