"""The example town's data for the API and browser tests: its own simulated meters (the edge
agents' sim drivers and settings from examples/town/edge/*.yaml), run on a virtual clock over the
last hours, stored through the store interface and judged by the real compliance engine, so the
hourly averages, rolling averages, AQI and alerts are the ones `eit serve` would have made.

The story: the biomass boiler runs normally, then its SO2 climbs past the 60 ppm limit
``exceed_hours`` before the end (a critical clock-hour exceedance opens); the starch factory's
effluent analyzer goes silent ``silent_minutes`` before the end (a stale-data warning); the
fence-line ambient station reports throughout (AQI).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.engine import AlertEngine
from alerts.notifiers.dispatch import Dispatcher
from alerts.state import AlertStore
from edge.config import parse_edge_config
from edge.drivers.sim import SimDriver
from eit.config import RuleSettings
from eit.model import Reading
from eit.registry import Registry
from eit.timeutil import NS_PER_S, now_ns
from ingest.store.base import Store
from tests.services import REPO

EDGE_DIR = REPO / "examples" / "town" / "edge"
HOUR_S = 3600


@dataclass(slots=True)
class TownData:
    start_ns: int
    end_ns: int
    readings: int = 0
    scans: int = 0
    events: list[Any] = field(default_factory=list)


def example_drivers(clock: Any) -> list[tuple[str, str, SimDriver]]:
    """(factory, device, driver) of every simulated meter of the example town, on ``clock``."""
    out = []
    for path in sorted(EDGE_DIR.glob("*.yaml")):
        import yaml

        data = yaml.safe_load(path.read_text())
        data["outbox"] = {"path": "/nonexistent/outbox.db"}  # parsed, never opened
        config = parse_edge_config(data, str(path), path.parent)
        for device in config.devices:
            driver = device.driver
            assert isinstance(driver, SimDriver), f"{path}: {device.id} is not a simulated meter"
            driver.clock = clock
            out.append((config.factory, device.id, driver))
    return out


def load_example_town(
    registry: Registry,
    store: Store,
    alerts: AlertStore,
    *,
    hours: float = 30,
    end_ns: int | None = None,
    scan_s: int = 60,
    exceed_hours: float = 5.5,
    silent_minutes: float = 20,
    settings: RuleSettings | None = None,
) -> TownData:
    end_ns = end_ns if end_ns is not None else now_ns()
    end_s = end_ns // NS_PER_S
    start_s = end_s - int(hours * HOUR_S)
    start_s -= start_s % scan_s
    exceed_from_s = end_s - int(exceed_hours * HOUR_S)
    silent_from_s = end_s - int(silent_minutes * 60)
    virtual = [float(start_s)]
    drivers = example_drivers(lambda: virtual[0])
    exceeding = {}
    for _, device, driver in drivers:
        driver.connect()
        if driver.profile == "exceeding":
            exceeding[device] = driver
            driver.profile = "normal"  # until exceed_from_s
    clock = [start_s * NS_PER_S]
    rules = settings or RuleSettings(stale_after_s=300, check_interval_s=60)
    events: list[Any] = []
    engine = AlertEngine(
        registry,
        alerts,
        Dispatcher([]),
        clock=lambda: clock[0],
        on_event=events.append,
        settings=rules,
        store=store,
    )
    result = TownData(start_s * NS_PER_S, end_ns)
    seqs: dict[tuple[str, str], int] = {}
    pending: list[list[Reading]] = []

    def flush() -> None:
        batch = [r for scan in pending for r in scan]
        if batch:
            store.write(batch)
        for scan in pending:
            if scan:
                engine.on_readings(scan, scan[0].ts_ns)
        pending.clear()

    t = start_s
    while t < end_s:
        virtual[0] = float(t)
        for factory, device, driver in drivers:
            if device in exceeding and t >= exceed_from_s and exceeding[device].profile == "normal":
                exceeding[device].profile = "exceeding"
                exceeding[device].connect()  # the ramp starts now
            if factory == "siam-cassava-starch" and t >= silent_from_s:
                continue
            values = driver.read().values
            seq = seqs[(factory, device)] = seqs.get((factory, device), 0) + 1
            scan = _scan(registry, factory, device, t * NS_PER_S, values, seq)
            pending.append(scan)
            result.scans += 1
            result.readings += len(scan)
        t += scan_s
        if t % 300 == 0 or t >= end_s:
            flush()
            clock[0] = t * NS_PER_S
            engine.tick(clock[0])
    flush()
    clock[0] = end_ns
    engine.tick(end_ns)
    result.events = events
    return result


def _scan(
    registry: Registry, factory: str, device: str, ts_ns: int, values: dict[str, float], seq: int
) -> list[Reading]:
    out = []
    for channel, value in values.items():
        ch = registry.channel(factory, device, channel)
        if ch is None:
            continue
        flag = "T" if (value > ch.range_max or value < ch.range_min) else "N"
        out.append(Reading(factory, device, channel, ts_ns, value, flag, seq))
    return out


def event_kinds(events: Sequence[Any]) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.alert.factory, e.alert.parameter, e.alert.rule) for e in events]


def write_site_variant(path: Path, private: Sequence[str]) -> Path:
    """The example site with the factories ``private`` marked ``public: false``."""
    import yaml

    data = yaml.safe_load((REPO / "examples" / "town" / "site.yaml").read_text())
    for f in data["factories"]:
        if f["id"] in private:
            f["public"] = False
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path
