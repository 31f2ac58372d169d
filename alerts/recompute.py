"""`eit recompute`: the rules rerun over stored readings, for a period and some factories.

Every derived point (hourly, rolling, daily, aqi, energy) records the method that made it
(eit/standards/methods.yaml); a change of method or of the regulatory data a method uses ships
with a recompute of the history it changes. The recomputation is the live engine's own read-back
path: each hour that holds readings is reopened, read back from the store minute by minute and
closed in time order, exactly as an hour reopened by late data is, so the numbers are the ones
the store's contents give (the replay invariant). It is idempotent: a point replaces the point
with its key. No alert is raised or notified: this is history, not news.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from alerts.engine import AlertEngine
from alerts.notifiers.dispatch import Dispatcher
from alerts.settings import RuleSettings
from alerts.state import open_alert_store
from alerts.windows import HOUR_NS
from eit.registry import Registry
from eit.store import Store
from eit.timeutil import NS_PER_S

# Hours of one series' readings counted per store query when looking for the hours that hold any.
COUNT_CHUNK_HOURS = 24 * 31


@dataclass(slots=True)
class RecomputeResult:
    hours: int = 0  # series-hours recomputed
    series: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


def hours_with_readings(store: Store, key: tuple[str, str, str], start_ns: int, end_ns: int) -> list[int]:
    found: list[int] = []
    chunk = COUNT_CHUNK_HOURS * HOUR_NS
    for lo in range(start_ns, end_ns, chunk):
        hi = min(end_ns, lo + chunk)
        found.extend(b.start_ns for b in store.aggregate(*key, lo, hi, 3600, "count") if b.value > 0)
    return found


def recompute(
    registry: Registry,
    store: Store,
    start_ns: int,
    end_ns: int,
    factories: Iterable[str] | None = None,
    settings: RuleSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RecomputeResult:
    """Recompute every derived point of the hours in [start_ns, end_ns) (widened to whole hours)
    of ``factories`` (default: all) that hold readings."""
    settings = settings or RuleSettings()
    start = start_ns - start_ns % HOUR_NS
    end = -(-end_ns // HOUR_NS) * HOUR_NS
    wanted = set(factories) if factories is not None else set(registry.factories)
    keys = [
        (f.id, d.id, c.id)
        for f in registry.factories.values()
        if f.id in wanted
        for d in f.devices.values()
        for c in d.channels.values()
    ]
    by_hour: dict[int, list[tuple[str, str, str]]] = {}
    result = RecomputeResult()
    for key in keys:
        hours = hours_with_readings(store, key, start, end)
        if hours:
            result.series += 1
        for h in hours:
            by_hour.setdefault(h, []).append(key)
    if not by_hour:
        return result
    quiet = settings.model_copy(update={"stale_after_s": 1e12, "escalate_after_s": 1e12})
    delay = int(settings.close_delay_s * NS_PER_S)
    clock = [min(by_hour)]
    alerts = open_alert_store(None, Path(":memory:"))  # the alerts of history are not kept
    try:
        engine = AlertEngine(
            registry, alerts, Dispatcher([]), clock=lambda: clock[0], settings=quiet, store=store
        )
        engine.read_budget_s = math.inf
        ordered = sorted(by_hour)
        for done, h in enumerate(ordered, 1):
            engine.reopen([(key, h) for key in by_hour[h]])
            clock[0] = h + HOUR_NS + delay
            engine.tick(clock[0])
            if progress is not None:
                progress(done, len(ordered))
        # Past the last day's end, so its completeness is written too.
        clock[0] = ordered[-1] + 25 * HOUR_NS + delay
        engine.tick(clock[0])
    finally:
        alerts.close()
    result.hours = sum(len(v) for v in by_hour.values())
    result.first_ns, result.last_ns = min(by_hour), max(by_hour) + HOUR_NS
    return result
