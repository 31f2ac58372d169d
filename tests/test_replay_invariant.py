"""The replay invariant: every hourly, rolling and daily result equals what the store's contents
for its period give, whatever the delivery (docs/architecture.md, "The replay invariant").

Deliveries go through the same order as the ingest's (store the batch, then hand it to the
rules). Hypothesis draws the history: batches in time order and out of it (late), batches
delivered again (broker redelivery, agent resend), scans overwritten with another value, and
process restarts (a new engine on the same store, alert database and pending work) at any
point. The oracle recomputes every hour from the stored rows with NumPy, independently of the
engine's code. Golden hours computed by hand pin the method itself.

Stores: the property test runs on the embedded SQLite store (200 histories in `make test`); a fixed
history with every kind of step runs on a real InfluxDB (marked integration).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from alerts.engine import AlertEngine
from alerts.model import AlertEvent
from alerts.notifiers.dispatch import Dispatcher
from alerts.pending import MemoryPendingWork
from alerts.settings import RuleSettings
from alerts.state import open_alert_store
from eit.model import VALID_FLAGS, Reading
from eit.registry import Registry, load_registry
from eit.store import Store
from eit.storeschema import Daily, Hourly, Rolling
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from testbed.services import REPO, InfluxDB

S = 1_000_000_000
MIN = 60 * S
H = 3600 * S
T0 = 1795752000 * S  # 2026-11-27T04:00:00Z = 11:00 in Bangkok
SITE = REPO / "tests" / "data" / "compliance-site.yaml"
BOILER = ("biomass", "boiler")
FENCE = ("petro", "fence")
SO2_REFERENCE_O2 = 7.0  # th.stack.boiler.biomass
SPAN_HOURS = 3
# Histories drawn per run: `make test` draws 200 (EIT_PROPERTY_EXAMPLES), the inner loop fewer.
EXAMPLES = int(os.environ.get("EIT_PROPERTY_EXAMPLES", "50"))


@dataclass(frozen=True)
class Scan:
    device: tuple[str, str]
    ts_ns: int
    values: tuple[tuple[str, float, str], ...]  # (channel, value, flag)

    def readings(self) -> list[Reading]:
        return [Reading(self.device[0], self.device[1], c, self.ts_ns, v, f) for c, v, f in self.values]


class Town:
    """The store, the alert database and the pending work outlive engines; an engine is the
    process, restarted at will."""

    def __init__(self, registry: Registry, store: Store, folder: Path) -> None:
        self.registry = registry
        self.store = store
        self.alerts = open_alert_store(None, folder / "state.db")
        self.pending = MemoryPendingWork()
        self.now = T0
        self.events: list[AlertEvent] = []
        self.engine = self._engine()

    def _engine(self) -> AlertEngine:
        return AlertEngine(
            self.registry,
            self.alerts,
            Dispatcher([]),
            clock=lambda: self.now,
            on_event=self.events.append,
            settings=RuleSettings(stale_after_s=1e9, escalate_after_s=1e9),
            store=self.store,
            pending=self.pending,
        )

    def deliver(self, scans: list[Scan], now: int) -> None:
        self.now = max(self.now, now)
        readings = [r for scan in scans for r in scan.readings()]
        self.store.write(readings)  # the ingest stores first, then hands the batch to the rules
        self.engine.on_readings(readings, self.now)

    def tick(self, now: int) -> None:
        self.now = max(self.now, now)
        self.engine.tick(self.now)

    def restart(self) -> None:
        self.engine = self._engine()

    def settle(self) -> None:
        """Long after the last delivery: every hour and day is closed."""
        for later in (SPAN_HOURS * H + 10 * MIN, SPAN_HOURS * H + 30 * MIN, 24 * H):
            self.tick(T0 + later)


# -- the oracle: results from the stored rows, with NumPy ------------------------------------------
def oracle_hour(store: Store, key: tuple[str, str, str], h: int, o2_channel: str | None) -> dict[str, object]:
    rows = store.readings(*key, h, h + H)
    ts = np.array([r.ts_ns for r in rows], dtype=np.int64)
    value = np.array([r.value for r in rows], dtype=np.float64)
    valid = np.array([r.flag in VALID_FLAGS for r in rows], dtype=bool)
    corrected = value.copy()
    if o2_channel is not None:
        o2 = {r.ts_ns: r for r in store.readings(key[0], key[1], o2_channel, h, h + H)}
        o2_value = np.array([o2[t].value if t in o2 else np.nan for t in ts.tolist()])
        o2_ok = np.array([t in o2 and o2[t].flag in VALID_FLAGS for t in ts.tolist()], dtype=bool)
        usable = o2_ok & (o2_value < 21.0) & (o2_value >= 0.0)
        valid &= usable
        with np.errstate(divide="ignore", invalid="ignore"):  # unusable O2 rows are masked out
            corrected = np.where(usable, value * (21.0 - SO2_REFERENCE_O2) / (21.0 - o2_value), np.nan)
    minute = (ts - h) // MIN
    counts = np.bincount(minute[valid], minlength=60)
    minutes = counts > 0
    quadrants = int(sum(minutes[q * 15 : (q + 1) * 15].any() for q in range(4)))
    result: dict[str, object] = {
        Hourly.POINTS: int(valid.sum()),
        Hourly.MINUTES: int(minutes.sum()),
        Hourly.QUADRANTS: quadrants,
        Hourly.VALID: quadrants == 4,
    }
    if minutes.any():
        raw_means = np.bincount(minute[valid], weights=value[valid], minlength=60)[minutes] / counts[minutes]
        cor_means = (
            np.bincount(minute[valid], weights=corrected[valid], minlength=60)[minutes] / counts[minutes]
        )
        result[Hourly.VALUE] = float(raw_means.mean())
        result[Hourly.CORRECTED] = float(cor_means.mean())
    return result


def hours_with_rows(store: Store, key: tuple[str, str, str]) -> list[int]:
    return sorted({r.ts_ns - r.ts_ns % H for r in store.readings(*key, 0, 2**62)})


def check_invariant(town: Town) -> None:
    store = town.store
    for key, o2 in ((("biomass", "boiler", "so2"), "o2"), (("petro", "fence", "pm25"), None)):
        tags = dict(zip(("factory", "device", "channel"), key, strict=True))
        stored = {p.ts_ns: p.fields for p in store.query_points(Hourly.NAME, tags, 0, 2**62)}
        expected_hours = hours_with_rows(store, key)
        assert sorted(stored) == expected_hours, f"{key}: hours written {sorted(stored)}"
        oracle: dict[int, dict[str, object]] = {}
        for h in expected_hours:
            want = oracle_hour(store, key, h, o2)
            oracle[h] = want
            got = stored[h]
            for name, value in want.items():
                if isinstance(value, float):
                    assert got[name] == pytest.approx(value, rel=1e-9), (key, h, name)
                else:
                    assert got[name] == value, (key, h, name, got)
            assert (Hourly.VALUE in got) == (Hourly.VALUE in want)
        if key[2] == "pm25":  # 24-hour rolling averages of the valid hours, at each hour end
            for p in store.query_points(Rolling.NAME, {**tags, Rolling.WINDOW: "24h"}, 0, 2**62):
                window = [
                    float(v[Hourly.CORRECTED])  # type: ignore[arg-type]
                    for h, v in oracle.items()
                    if p.ts_ns - 24 * H <= h < p.ts_ns and v[Hourly.VALID]
                ]
                assert p.fields[Rolling.HOURS] == len(window)
                assert p.fields[Rolling.VALUE] == pytest.approx(sum(window) / len(window), rel=1e-9)
        days = store.query_points(Daily.NAME, tags, 0, 2**62)
        assert len(days) == 1  # the span lies inside one Bangkok day
        valid_hours = sum(1 for v in oracle.values() if v[Hourly.VALID])
        assert days[0].fields[Daily.VALID_HOURS] == valid_hours, (key, days[0].fields)


# -- histories ------------------------------------------------------------------------------------
@st.composite
def base_scans(draw: st.DrawFn) -> list[Scan]:
    """Scans of the boiler (SO2 with O2) and of the fence (PM2.5), at millisecond times."""
    scans: list[Scan] = []
    for device in (BOILER, FENCE):
        offsets = draw(
            st.lists(st.integers(0, SPAN_HOURS * 3600 * 1000 - 1), min_size=20, max_size=90, unique=True)
        )
        for offset in sorted(offsets):
            ts = T0 + offset * 1_000_000
            flag = draw(st.sampled_from("NNNNNNNNCS"))
            if device == BOILER:
                values: tuple[tuple[str, float, str], ...] = (
                    ("so2", draw(st.floats(0, 150, allow_nan=False)), flag),
                    ("o2", draw(st.floats(2, 22, allow_nan=False)), draw(st.sampled_from("NNNNNC"))),
                )
            else:
                values = (("pm25", draw(st.floats(0, 80, allow_nan=False)), flag),)
            scans.append(Scan(device, ts, values))
    return sorted(scans, key=lambda s: s.ts_ns)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Scan], list[tuple[str, list[Scan], int]]]:
    """The scans, then what happens: ("deliver", batch, now), ("tick", [], now), ("restart", [], 0)."""
    scans = draw(base_scans())
    batches: list[list[Scan]] = []
    i = 0
    while i < len(scans):
        size = draw(st.integers(1, 12))
        batches.append(scans[i : i + size])
        i += size
    # Late batches: some move towards the end (an edge backlog draining after an outage).
    late = draw(st.lists(st.integers(0, len(batches) - 1), max_size=3, unique=True))
    order = [b for k, b in enumerate(batches) if k not in late] + [batches[k] for k in late]
    steps: list[tuple[str, list[Scan], int]] = []
    latest = T0
    for batch in order:
        latest = max(latest, max(s.ts_ns for s in batch))
        now = latest + draw(st.integers(0, 5 * 60)) * S
        steps.append(("deliver", batch, now))
        if draw(st.integers(0, 4)) == 0:  # redelivered, now or a little later
            steps.append(("deliver", batch, now + draw(st.integers(0, 600)) * S))
        if draw(st.integers(0, 9)) == 0:  # a scan overwritten with another value (same key)
            scan = draw(st.sampled_from(batch))
            channel, _, flag = scan.values[0]
            changed = (channel, draw(st.floats(0, 150, allow_nan=False)), flag)
            steps.append(("deliver", [replace(scan, values=(changed, *scan.values[1:]))], now))
        if draw(st.integers(0, 3)) == 0:
            steps.append(("tick", [], now))
        if draw(st.integers(0, 14)) == 0:
            steps.append(("restart", [], 0))
    return scans, steps


def run_history(town: Town, steps: list[tuple[str, list[Scan], int]]) -> None:
    for kind, batch, now in steps:
        if kind == "deliver":
            town.deliver(batch, now)
        elif kind == "tick":
            town.tick(now)
        else:
            town.restart()
    town.settle()


@pytest.fixture
def sqlite_town_factory() -> Iterator[Callable[[], Town]]:
    registry = load_registry(SITE)
    folders: list[tempfile.TemporaryDirectory[str]] = []

    def make() -> Town:
        folder = tempfile.TemporaryDirectory()
        folders.append(folder)
        return Town(registry, SqliteStore(Path(folder.name) / "readings.db"), Path(folder.name))

    yield make
    for folder in folders:
        folder.cleanup()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_every_result_equals_the_stores_contents_whatever_the_delivery(
    sqlite_town_factory: Callable[[], Town], history: tuple[list[Scan], list[tuple[str, list[Scan], int]]]
) -> None:
    _, steps = history
    # Shown with a failing example: the history, step by step (device, seconds after T0, values).
    note(
        "\n".join(
            f"{k} {[(x.device[1], (x.ts_ns - T0) // S, x.values) for x in b]} at {n}" for k, b, n in steps
        )
    )
    town = sqlite_town_factory()
    run_history(town, steps)
    check_invariant(town)


# -- golden hours, computed by hand ---------------------------------------------------------------
def _so2_scan(minute: int, so2: float, o2: float = 11.0, second: int = 0) -> Scan:
    return Scan(BOILER, T0 + minute * MIN + second * S, (("so2", so2, "N"), ("o2", o2, "N")))


def test_a_redelivered_scan_counts_once_in_the_running_hour_and_in_the_hour(
    sqlite_town_factory: Callable[[], Town],
) -> None:
    # Eleven scans of 35 ppm and one of 80 ppm at 11 % O2, one per 5 minutes: corrected to 7 % O2
    # (x 14/10) they are 49 and 112 ppm; the mean of the minute means is (11 x 49 + 112) / 12 =
    # 54.25 ppm, under the 60 ppm limit. The 80 ppm scan delivered eight more times changes nothing.
    town = sqlite_town_factory()
    scans = [_so2_scan(5 * k, 80.0 if k == 6 else 35.0) for k in range(12)]
    for scan in scans:
        town.deliver([scan], scan.ts_ns)
    for _ in range(8):
        town.deliver([scans[6]], T0 + 58 * MIN)
        town.tick(T0 + 58 * MIN)
    assert [e for e in town.events if e.alert.rule == "limit"] == []
    town.settle()
    [hour] = town.store.query_points(Hourly.NAME, {"channel": "so2", "device": "boiler"}, 0, 2**62)
    assert hour.fields[Hourly.CORRECTED] == pytest.approx(54.25)
    assert hour.fields[Hourly.POINTS] == 12 and hour.fields[Hourly.MINUTES] == 12
    assert hour.fields[Hourly.EXCEEDED] is False
    assert [e for e in town.events if e.alert.rule == "limit"] == []


def test_an_overwritten_reading_counts_with_its_last_value_only(
    sqlite_town_factory: Callable[[], Town],
) -> None:
    # Four scans, one per quadrant, at 7 % O2 (no correction): 40, 40, 40 and 40 ppm; the last is
    # then overwritten with 80 ppm: the hour is (40 + 40 + 40 + 80) / 4 = 50 ppm, not the 240 / 5
    # = 48 a count of both values would give.
    town = sqlite_town_factory()
    scans = [_so2_scan(15 * q + 1, 40.0, o2=7.0) for q in range(4)]
    for scan in scans:
        town.deliver([scan], scan.ts_ns)
    town.deliver([_so2_scan(46, 80.0, o2=7.0)], T0 + 50 * MIN)
    town.settle()
    [hour] = town.store.query_points(Hourly.NAME, {"channel": "so2", "device": "boiler"}, 0, 2**62)
    assert hour.fields[Hourly.CORRECTED] == pytest.approx(50.0)
    assert hour.fields[Hourly.POINTS] == 4


def test_an_hour_weighs_its_minutes_not_its_points(sqlite_town_factory: Callable[[], Town]) -> None:
    # Minutes 0-29: one backlog point a minute at 100 ppm; minutes 30-59: one live point a second
    # at 50 ppm (7 % O2). By points the hour would be (30 x 100 + 1800 x 50) / 1830 = 50.8 ppm;
    # by minutes it is (30 x 100 + 30 x 50) / 60 = 75 ppm.
    town = sqlite_town_factory()
    live = [_so2_scan(m, 50.0, o2=7.0, second=s) for m in range(30, 60) for s in range(60)]
    backlog = [_so2_scan(m, 100.0, o2=7.0) for m in range(30)]
    town.deliver(live, T0 + H - S)
    town.deliver(backlog, T0 + H - S)
    town.settle()
    [hour] = town.store.query_points(Hourly.NAME, {"channel": "so2", "device": "boiler"}, 0, 2**62)
    assert hour.fields[Hourly.CORRECTED] == pytest.approx(75.0)
    assert hour.fields[Hourly.VALUE] == pytest.approx(75.0)
    assert (hour.fields[Hourly.POINTS], hour.fields[Hourly.MINUTES]) == (1830, 60)


def test_a_restart_mid_hour_closes_the_hour_from_the_store(sqlite_town_factory: Callable[[], Town]) -> None:
    # Half the hour before a restart, half after: the new process reads the first half back.
    town = sqlite_town_factory()
    for m in range(0, 60, 2):
        if m == 30:
            town.restart()
        town.deliver([_so2_scan(m, 20.0 + m, o2=7.0)], T0 + m * MIN)
    town.settle()
    [hour] = town.store.query_points(Hourly.NAME, {"channel": "so2", "device": "boiler"}, 0, 2**62)
    assert hour.fields[Hourly.CORRECTED] == pytest.approx(20.0 + 29.0)  # mean of 20 + 0, 2, ..., 58
    assert hour.fields[Hourly.POINTS] == 30


def test_an_hour_left_open_by_a_crash_is_closed_by_the_next_process(
    sqlite_town_factory: Callable[[], Town],
) -> None:
    # The whole hour arrives, then the process dies before closing it; the device falls silent.
    # The next process finds the hour in its pending work and closes it from the store.
    town = sqlite_town_factory()
    for q in range(4):
        town.deliver([_so2_scan(15 * q + 3, 30.0, o2=7.0)], T0 + (15 * q + 3) * MIN)
    town.restart()
    town.settle()
    [hour] = town.store.query_points(Hourly.NAME, {"channel": "so2", "device": "boiler"}, 0, 2**62)
    assert hour.fields[Hourly.VALID] is True and hour.fields[Hourly.CORRECTED] == pytest.approx(30.0)
    assert town.pending.items() == []


@pytest.mark.integration
def test_a_history_of_redeliveries_overwrites_late_batches_and_restarts_holds_on_influxdb(
    tmp_path: Path, influxdb: InfluxDB, influx_database: str
) -> None:
    """The same invariant on the production store: a fixed history drawn like the property
    test's (every kind of step in it), checked with the same oracle."""
    registry = load_registry(SITE)
    town = Town(registry, InfluxStore(influxdb.url, influx_database), tmp_path)
    scans = [
        Scan(BOILER, T0 + m * MIN + 7 * S, (("so2", 40.0 + m % 17, "N"), ("o2", 6.0 + m % 5, "N")))
        for m in range(0, SPAN_HOURS * 60, 2)
    ] + [
        Scan(FENCE, T0 + m * MIN + 11 * S, (("pm25", 20.0 + m % 23, "N"),))
        for m in range(0, SPAN_HOURS * 60, 3)
    ]
    scans.sort(key=lambda s: s.ts_ns)
    batches = [scans[i : i + 10] for i in range(0, len(scans), 10)]  # about 12 minutes each
    late = batches[1:3]  # an outage's backlog in the first hour: delivered at the end
    steps: list[tuple[str, list[Scan], int]] = []
    for k, batch in enumerate(b for b in batches if b not in late):
        now = max(s.ts_ns for s in batch)
        steps.append(("deliver", batch, now))
        if k == 2:
            steps.append(("restart", [], 0))  # the hours after it live in this process's memory
        if k % 3 == 1:
            steps.append(("deliver", batch, now + 30 * S))  # redelivered
        if k % 4 == 3:
            first = batch[0]
            steps.append(("deliver", [replace(first, values=(("so2", 99.0, "N"), *first.values[1:]))], now))
        if k % 5 == 0:
            steps.append(("tick", [], now))
    steps += [("deliver", batch, T0 + SPAN_HOURS * H) for batch in late]
    run_history(town, steps)
    check_invariant(town)
