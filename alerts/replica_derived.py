"""The derived points of a storage replica (docs/scale-out.md, "Replicated storage").

A replica's workers store the readings of their queue set into their own store and run no rules:
no alert, case or notification is made twice. Its derived points (hourly, rolling, daily, aqi,
energy) are made here instead, from the replica's own readings, by the recomputation `eit
recompute` runs (alerts/recompute.py): each is a function of the stored readings (the replay
invariant), so the replica holds the numbers the primary set's rules wrote, without a protocol
between the two.

- :class:`TouchedHours` is a sink of the replica's ingest: it remembers each (factory, clock
  hour) a stored batch touched.
- :class:`ReplicaDerivedJob` (stage ``replica-derived``) recomputes, every ``interval_s``, the
  touched hours that are closed (their end plus the rules' ``close_delay_s`` has passed) of the
  factories whose partitions this worker holds; an hour touched again later (late data) is
  recomputed again. A failed run keeps its hours for the next.

What a restart forgets (hours touched but not yet recomputed) is recomputed at start for the
hours within ``catch_up_hours`` before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence

from alerts.recompute import recompute
from alerts.settings import RuleSettings
from alerts.windows import HOUR_NS
from eit.model import Reading
from eit.registry import Registry
from eit.store import Store
from eit.supervise import Stage, SupervisedLoop, Supervisor
from eit.timeutil import NS_PER_S, now_ns

log = logging.getLogger("eit.alerts.replica")

CATCH_UP_HOURS = 3


class TouchedHours:
    """The (factory, hour start) that stored batches touched, until taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hours: set[tuple[str, int]] = set()

    def on_readings(self, readings: Sequence[Reading], now_ns: int) -> None:
        touched = {(r.factory, r.ts_ns - r.ts_ns % HOUR_NS) for r in readings}
        with self._lock:
            self._hours |= touched

    def on_status(self, factory: str, device: str, state: str, now_ns: int) -> None:
        return None

    def add(self, hours: Collection[tuple[str, int]]) -> None:
        with self._lock:
            self._hours |= set(hours)

    def take_closed(self, closed_before: int) -> set[tuple[str, int]]:
        """Remove and return the hours that ended before ``closed_before``."""
        with self._lock:
            done = {(f, h) for f, h in self._hours if h + HOUR_NS <= closed_before}
            self._hours -= done
        return done

    def __len__(self) -> int:
        return len(self._hours)


class ReplicaDerivedJob(SupervisedLoop):
    def __init__(
        self,
        registry: Registry,
        store: Store,
        touched: TouchedHours,
        settings: RuleSettings,
        owned: Callable[[], Collection[str]],
        interval_s: float = 30.0,
        supervisor: Supervisor | None = None,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        super().__init__(supervisor or Supervisor(), Stage("replica-derived", lambda: len(touched)))
        self.registry = registry
        self.store = store
        self.touched = touched
        self.settings = settings
        self.owned = owned
        self.interval_s = interval_s
        self.clock = clock

    def run_once(self) -> int:
        """Recompute the closed touched hours of the owned factories; returns how many
        (factory, hour) were recomputed. Hours of factories not owned now are dropped: their
        holder recomputes them."""
        now = self.clock()
        closed_before = now - int(self.settings.close_delay_s * NS_PER_S)
        due = self.touched.take_closed(closed_before)
        owned = set(self.owned())
        mine = sorted((h, f) for f, h in due if f in owned)
        done = 0
        try:
            for h, factory in mine:
                recompute(self.registry, self.store, h, h + HOUR_NS, [factory], self.settings)
                done += 1
        except Exception:
            self.touched.add([(f, h) for h, f in mine[done:]])  # tried again next run
            raise
        return done

    def catch_up(self, factories: Collection[str] | None = None) -> None:
        """The recent hours of ``factories`` (default: all), which an earlier process or the
        partition's previous holder may have touched without recomputing them (those owned are
        recomputed by the next runs)."""
        end = self.clock()
        first = end - end % HOUR_NS - CATCH_UP_HOURS * HOUR_NS
        names = self.registry.factories if factories is None else factories
        self.touched.add([(f, h) for f in names for h in range(first, end, HOUR_NS)])

    def taken_over(self, factories: frozenset[str], at_ns: int) -> None:
        """This worker took these factories' partition (ingest/amqp.py's ``on_partition_taken``)."""
        self.catch_up(factories)

    def _run(self) -> None:
        self.catch_up()
        while not self._stop.wait(self.interval_s):
            with self.stage.working():
                try:
                    self.run_once()
                except Exception:
                    log.exception("recomputing the replica's derived points failed (tried again)")
