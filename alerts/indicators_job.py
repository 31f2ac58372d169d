"""The town indicators' job inside `eit serve`: every ``rules.indicators_interval_s`` it
recomputes the indicators of the running month, the month before (late data reaches back) and
their years from the store (alerts/indicators.py), on a supervised thread (stage ``indicators``).
Once a local day (its first run of the day, and at start) it recomputes every month since the
start of the previous month's year, so late data of an older month of the year is counted within
a day. Older periods, changed by an import or a recompute, are recomputed by `eit import`,
`eit recompute` and `eit indicators`.

On the RabbitMQ cluster one worker runs it, the holder of the town-wide jobs' lease
(server/town_jobs.py): given ``leader``, the job runs only while that says yes, and looks again
every ``leader_poll_s`` while it says no (a worker that becomes the leader runs at once)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from zoneinfo import ZoneInfo

from alerts.compliance import local_day
from alerts.indicators import IndicatorRun, compute_indicators
from eit.registry import Registry
from eit.store import Store
from eit.supervise import Stage, SupervisedLoop, Supervisor
from eit.timeutil import now_ns

log = logging.getLogger("alerts.indicators")


def recent_span(today: date) -> tuple[date, date]:
    """From the first day of the month before ``today``'s to ``today``."""
    year, month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    return date(year, month, 1), today


def daily_span(today: date) -> tuple[date, date]:
    """From the first day of the year of the month before ``today``'s to ``today``."""
    first, _ = recent_span(today)
    return date(first.year, 1, 1), today


class IndicatorJob(SupervisedLoop):
    leader_poll_s = 1.0

    def __init__(
        self,
        registry: Registry,
        store: Store,
        interval_s: float,
        supervisor: Supervisor | None = None,
        clock: Callable[[], int] = now_ns,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(supervisor or Supervisor(), Stage("indicators"))
        self.registry = registry
        self.store = store
        self.interval_s = interval_s
        self.clock = clock
        self.leader = leader  # whether this worker runs the town-wide jobs now (None: always)
        self.runs = 0
        self.last: IndicatorRun | None = None
        self.ran = threading.Event()  # set after each run, failed or not
        self._whole_year_on: date | None = None  # the local day of the last run over the year

    def run_once(self) -> IndicatorRun:
        today = local_day(self.clock(), ZoneInfo(self.registry.timezone))
        whole_year = self._whole_year_on != today
        first, last = daily_span(today) if whole_year else recent_span(today)
        run, _ = compute_indicators(self.registry, self.store, first, last)
        if whole_year:
            self._whole_year_on = today
        self.runs += 1
        self.last = run
        return run

    def _run(self) -> None:
        # At start (the periods may have changed while the server was down), then every interval.
        while not self._stop.is_set():
            if self.leader is not None and not self.leader():
                self.stage.progress()  # another worker runs the job: waiting is the work here
                if self._stop.wait(min(self.interval_s, self.leader_poll_s)):
                    return
                continue
            with self.stage.working():
                try:
                    run = self.run_once()
                    log.info(
                        "indicators: %d contribution(s) for %d period(s) stored",
                        run.contributions,
                        run.periods,
                    )
                except Exception:
                    log.exception("computing the town indicators failed")
                finally:
                    self.ran.set()
            if self._stop.wait(self.interval_s):
                return
