"""A town's meters run on a virtual clock: the readings they would have sent over a past period,
stored and judged as `eit serve` would have (`eit demo`'s first-run history, and the one town
builder of the tests and the benchmark, testbed/town.py, which builds on this module).

- A :class:`Meter` is one device of the town read through an edge driver that takes its time
  from a clock (the sim driver, or any driver with a ``clock``); it may go silent from a time,
  start its exceeding profile at a time, or have its scans reach the platform late.
- :func:`take_scans` reads every meter once every ``scan_s`` on the virtual clock, in time order.
- :func:`judge_live` stores the scans in the order they arrive and hands them to the compliance
  engine with their arrival time, the engine ticking every five minutes, as `eit serve` does.

Generating is lazy (scans come one tick at a time), so a month of a large town costs only the
readings it holds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge.drivers.base import DriverError, ScanValues
from edge.drivers.sim import SimDriver
from eit.confread import read_yaml
from eit.model import Reading
from eit.registry import Registry
from eit.store import Store
from eit.timeutil import NS_PER_S

ENGINE_TICK_NS = 5 * 60 * NS_PER_S  # the engine's checks, and the store's batches, on the virtual clock


class ClockedDriver(Protocol):
    """An edge driver that reads the time from its ``clock`` (seconds)."""

    clock: Callable[[], float]

    def connect(self) -> None: ...

    def read(self) -> ScanValues: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Meter:
    """One device of the town on the virtual clock."""

    factory: str
    device: str
    driver: ClockedDriver
    silent_from_ns: int | None = None  # stops answering at this time
    exceed_from_ns: int | None = None  # a sim meter's exceeding profile starts then (before: normal)
    late_s: float = 0.0  # its scans reach the platform this long after they were taken


@dataclass(frozen=True, slots=True)
class Scan:
    """One scan of one meter: its readings (one time, one seq) and when it reaches the platform."""

    arrives_ns: int
    readings: list[Reading]


@dataclass(slots=True)
class History:
    start_ns: int
    end_ns: int
    readings: int = 0  # taken (a scan in flight at the end included)
    scans: int = 0
    in_flight: int = 0  # scans taken but arriving only after the end (late data)
    events: list[Any] = field(default_factory=list)


class VirtualClock:
    """Seconds, as a driver's clock reads them, set by the one who runs the meters."""

    def __init__(self, ns: int = 0) -> None:
        self.ns = ns

    def __call__(self) -> float:
        return self.ns / NS_PER_S


def edge_meters(edge_dir: Path) -> list[Meter]:
    """The simulated meters of the agents' configurations in ``edge_dir`` (``*.yaml``, in name
    order), with their profiles and seeds."""
    from edge.config import parse_edge_config

    meters: list[Meter] = []
    for path in sorted(edge_dir.glob("*.yaml")):
        doc = read_yaml(path)
        data = doc.data
        data["outbox"] = {"path": str(path.parent / "unused-outbox.db")}  # parsed, never opened
        config = parse_edge_config(data, str(path), path.parent, lines=doc.lines)
        for dev in config.devices:
            if isinstance(dev.driver, SimDriver):
                meters.append(Meter(config.factory, dev.id, dev.driver))
    return meters


def take_scans(
    registry: Registry, meters: Sequence[Meter], start_ns: int, end_ns: int, scan_s: float = 60
) -> Iterator[Scan]:
    """Every meter read once every ``scan_s`` from ``start_ns`` (rounded down to a whole scan) to
    ``end_ns``, tick by tick, meters in their order. Seqs count each meter's scans from 1; a value
    outside its channel's measuring range is flagged T; channels the registry does not know are
    left out, as the ingest leaves them."""
    step_ns = int(scan_s * NS_PER_S)
    t = start_ns - start_ns % step_ns
    clock = VirtualClock(t)
    ramps: dict[int, tuple[SimDriver, int]] = {}  # meter index: (driver, when its exceedance starts)
    for i, meter in enumerate(meters):
        driver = meter.driver
        driver.clock = clock
        if isinstance(driver, SimDriver) and driver.profile == "exceeding":
            starts = meter.exceed_from_ns
            if starts is None or starts > t:
                driver.profile = "normal"  # until its exceedance starts (never when None)
                if starts is not None:
                    ramps[i] = (driver, starts)
        driver.connect()
    seqs = [0] * len(meters)
    while t < end_ns:
        clock.ns = t
        for i, meter in enumerate(meters):
            if i in ramps and t >= ramps[i][1]:
                ramps.pop(i)[0].profile = "exceeding"
                meter.driver.connect()  # the ramp starts now
            if meter.silent_from_ns is not None and t >= meter.silent_from_ns:
                continue
            try:
                scan = meter.driver.read()
            except DriverError:  # a dropout profile: the meter does not answer this scan
                continue
            seqs[i] += 1
            readings = []
            for channel, value in scan.values.items():
                ch = registry.channel(meter.factory, meter.device, channel)
                if ch is None:
                    continue
                flag = "T" if (value > ch.range_max or value < ch.range_min) else scan.flags.get(channel, "N")
                readings.append(Reading(meter.factory, meter.device, channel, t, value, flag, seqs[i]))
            if readings:
                yield Scan(t + int(meter.late_s * NS_PER_S), readings)
        t += step_ns


def judge_live(
    registry: Registry,
    store: Store,
    alerts: Any,
    scans: Iterable[Scan],
    end_ns: int,
    *,
    settings: Any = None,
    start_ns: int | None = None,
) -> History:
    """The scans as `eit serve` receives them: in the order they arrive, stored in batches and
    handed to the compliance engine with their arrival time (hourly, rolling, daily, AQI, energy;
    alerts into ``alerts``), the engine ticking every five minutes, up to ``end_ns``. Scans that
    would arrive after ``end_ns`` are not there yet: counted in ``History.in_flight``."""
    from alerts.engine import AlertEngine
    from alerts.notifiers.dispatch import Dispatcher
    from alerts.settings import RuleSettings

    history = History(start_ns if start_ns is not None else end_ns, end_ns)
    clock = [history.start_ns]
    engine = AlertEngine(
        registry,
        alerts,
        Dispatcher([]),
        clock=lambda: clock[0],
        on_event=history.events.append,
        settings=settings or RuleSettings(stale_after_s=300, check_interval_s=60),
        store=store,
    )
    waiting: list[tuple[int, int, Scan]] = []  # (arrival, order taken, scan): a heap
    order = itertools.count()

    def deliver(until_ns: int) -> None:
        batch: list[Scan] = []
        while waiting and waiting[0][0] <= until_ns:
            batch.append(heapq.heappop(waiting)[2])
        if batch:
            store.write([r for scan in batch for r in scan.readings])
        for scan in batch:
            engine.on_readings(scan.readings, scan.arrives_ns)

    next_tick = history.start_ns - history.start_ns % ENGINE_TICK_NS + ENGINE_TICK_NS

    def tick_until(now_ns: int) -> None:
        """Every tick the virtual time has passed: what has arrived by then is judged."""
        nonlocal next_tick
        while now_ns >= next_tick:
            deliver(next_tick - 1)
            clock[0] = next_tick
            engine.tick(next_tick)
            next_tick += ENGINE_TICK_NS

    for scan in scans:
        if history.scans == 0 and start_ns is None:
            history.start_ns = clock[0] = scan.readings[0].ts_ns
            next_tick = history.start_ns - history.start_ns % ENGINE_TICK_NS + ENGINE_TICK_NS
        history.scans += 1
        history.readings += len(scan.readings)
        tick_until(scan.readings[0].ts_ns)
        heapq.heappush(waiting, (scan.arrives_ns, next(order), scan))
    tick_until(end_ns - 1)  # the ticks before the end, even where no meter reported
    deliver(end_ns)
    clock[0] = end_ns
    engine.tick(end_ns)
    history.in_flight = len(waiting)  # late beyond the end: not there yet
    return history


def simulate_history(
    registry: Registry,
    store: Store,
    alerts: Any,
    meters: Sequence[Meter],
    start_ns: int,
    end_ns: int,
    *,
    scan_s: float = 60,
    settings: Any = None,
) -> History:
    """``meters`` run from ``start_ns`` to ``end_ns``, one scan every ``scan_s``, stored and
    judged as `eit serve` would have (:func:`take_scans`, then :func:`judge_live`)."""
    step_ns = int(scan_s * NS_PER_S)
    first = start_ns - start_ns % step_ns
    return judge_live(
        registry,
        store,
        alerts,
        take_scans(registry, meters, start_ns, end_ns, scan_s),
        end_ns,
        settings=settings,
        start_ns=first,
    )
