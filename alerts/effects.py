"""What the rules' decisions do to the world, applied apart from the decisions.

The engine decides in memory, under its lock, and describes each consequence as an *effect*:
derived points to write to the store, an alert to raise, update or resolve. Effects are applied
outside the rules' lock, by :class:`EffectWorker` on its own thread in ``eit serve`` (so a slow
store or alert database delays alerts, never the ingest's acknowledgements), or at once by
:class:`InlineEffects` where nothing runs concurrently (``eit import``, ``eit recompute``, tests).

An effect that cannot be applied because the store or the alert database is unavailable is
retried with backoff until it is; effects are applied in the order they were decided.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from alerts.messages import render
from alerts.model import Alert, AlertEvent, AlertKey
from alerts.pending import Numbered, PendingWork
from alerts.state import AlertStore
from eit.errors import EitError
from eit.store import Point, Store, StoreError
from eit.supervise import Stage, Supervisor, Worker
from eit.timeutil import NS_PER_S

log = logging.getLogger("eit.alerts.effects")


@dataclass(frozen=True, slots=True)
class WritePoints:
    """Derived points of one measurement (idempotent: a point replaces one with its key)."""

    measurement: str
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    key: AlertKey
    severity: str
    template: str
    params: dict[str, str]
    now_ns: int
    value: float | None
    bound: float | None
    unit: str
    provisional: bool = False
    retroactive: bool = False
    period_start_ns: int | None = None


@dataclass(frozen=True, slots=True)
class UpdateAlert:
    """``confirmed`` (a provisional exceedance the closed hour confirms) or ``updated``."""

    key: AlertKey
    action: str
    now_ns: int
    template: str
    params: dict[str, str]
    value: float
    bound: float
    period_start_ns: int
    provisional: bool | None = None  # None: unchanged


@dataclass(frozen=True, slots=True)
class ResolveAlert:
    """The key's condition ended (its case is resolved unless an officer resolved it first)."""

    key: AlertKey
    now_ns: int
    note: str
    withdrawn: bool = False  # a provisional exceedance the closed hour does not confirm


@dataclass(frozen=True, slots=True)
class CurrentValue:
    """The latest value of an ongoing condition (a running hour's average climbing), for the
    officers' cards; no event, no audit entry."""

    key: AlertKey
    value: float
    now_ns: int


@dataclass(frozen=True, slots=True)
class RecordExceedance:
    """A legal period above a limit (or a provisional one: the running hour), for the key's case."""

    key: AlertKey
    averaging: str
    period_start_ns: int
    period_end_ns: int
    average: float
    limit: float
    unit: str
    basis: str
    method: str
    origin: str
    now_ns: int
    retroactive: bool = False
    provisional: bool = False


@dataclass(frozen=True, slots=True)
class DecideProvisional:
    """The closed hour decides the provisional exceedance of its period: confirmed or withdrawn."""

    key: AlertKey
    period_start_ns: int
    outcome: str
    now_ns: int


@dataclass(frozen=True, slots=True)
class SettleWork:
    """Hours and days whose results are written: no longer pending (alerts/pending.py)."""

    items: tuple[Numbered, ...]


Effect = (
    WritePoints
    | RaiseAlert
    | UpdateAlert
    | ResolveAlert
    | CurrentValue
    | RecordExceedance
    | DecideProvisional
    | SettleWork
)

MAX_DEFECT_ATTEMPTS = 5


class Dispatch(Protocol):
    def submit(self, event: AlertEvent) -> None: ...


class EffectSink(Protocol):
    def submit(self, effects: Sequence[Effect]) -> None: ...


class EffectApplier:
    """Applies one effect to the store and the alert database, and tells the notifiers."""

    def __init__(
        self,
        alerts: AlertStore,
        store: Store | None,
        dispatcher: Dispatch,
        on_event: Callable[[AlertEvent], None] | None = None,
        flap_window_s: float = 3600.0,
        pending: PendingWork | None = None,
    ) -> None:
        self.alerts = alerts
        self.pending = pending
        self.store = store
        self.dispatcher = dispatcher
        self.on_event = on_event
        self.flap_window_ns = int(flap_window_s * NS_PER_S)
        self.counters: dict[str, int] = {"points_written": 0, "points_refused": 0, "alert_changes": 0}

    def apply(self, effect: Effect) -> None:
        """Raises StoreUnavailable (or another EitError of an unavailable database) when the
        effect must be tried again."""
        if isinstance(effect, WritePoints):
            self._write(effect)
            return
        if isinstance(effect, SettleWork):
            if self.pending is not None:
                self.pending.settle(effect.items)
            return
        if isinstance(effect, RaiseAlert):
            self._raise(effect)
        elif isinstance(effect, UpdateAlert):
            self._update(effect)
        elif isinstance(effect, ResolveAlert):
            self._resolve(effect)
        elif isinstance(effect, CurrentValue):
            self.alerts.set_current(effect.key, effect.value, effect.now_ns)
        elif isinstance(effect, RecordExceedance):
            e = effect
            self.alerts.record_exceedance(
                e.key,
                e.averaging,
                e.period_start_ns,
                e.period_end_ns,
                e.average,
                e.limit,
                e.unit,
                e.basis,
                e.method,
                e.origin,
                e.now_ns,
                retroactive=e.retroactive,
                provisional=e.provisional,
            )
        else:
            self.alerts.decide_provisional(effect.key, effect.period_start_ns, effect.outcome, effect.now_ns)
        self.counters["alert_changes"] += 1

    def _write(self, effect: WritePoints) -> None:
        if self.store is None:
            return
        try:
            self.store.write_points(effect.measurement, list(effect.points))
        except StoreError as exc:
            # The store refuses points the rules made: a defect, not an outage. Kept in the log
            # and counted; the readings they come from are stored, so `eit recompute` redoes them.
            self.counters["points_refused"] += len(effect.points)
            log.error("store refused %d %s points: %s", len(effect.points), effect.measurement, exc)
            return
        self.counters["points_written"] += len(effect.points)

    def _raise(self, e: RaiseAlert) -> None:
        message = render(e.template, e.params, "en")
        started = self.alerts.start_condition(
            e.key,
            e.severity,
            message,
            e.now_ns,
            e.value,
            e.bound,
            e.unit,
            provisional=e.provisional,
            retroactive=e.retroactive,
            period_start_ns=e.period_start_ns,
            template=e.template,
            params=e.params,
            flap_window_ns=self.flap_window_ns,
        )
        if started is not None:  # None: ongoing already (another process, or before a restart)
            kind, case = started
            self.emit(AlertEvent(kind, case, case.escalation_step if kind == "reopened" else 0))

    def _update(self, e: UpdateAlert) -> None:
        active = self.alerts.active(e.key)
        if active is None:
            return  # resolved by hand meanwhile: the next verdict raises it again if it persists
        message = render(e.template, e.params, "en")
        extra: dict[str, object] = {}
        if e.provisional is not None:
            extra["provisional"] = e.provisional
        updated: Alert = self.alerts.update(
            active.id,
            e.now_ns,
            e.action,
            message,
            message=message,
            value=e.value,
            current_value=e.value,
            current_ns=e.now_ns,
            limit_value=e.bound,
            template=e.template,
            params=e.params,
            period_start_ns=e.period_start_ns,
            severity="critical",
            **extra,
        )
        self.emit(AlertEvent(e.action, updated, updated.escalation_step))

    def _resolve(self, e: ResolveAlert) -> None:
        note = f"withdrawn: {e.note}" if e.withdrawn else e.note
        before = self.alerts.active(e.key)
        ended = self.alerts.end_condition(e.key, e.now_ns, note, withdrawn=e.withdrawn)
        if ended is None or before is None:
            return
        if e.withdrawn:
            kind = "withdrawn"
        elif before.state != ended.state:
            kind = "resolved"
        else:
            kind = "ended"  # an officer had resolved it: now its condition has ended too
        self.emit(AlertEvent(kind, ended, 0))

    def emit(self, event: AlertEvent) -> None:
        self.dispatcher.submit(event)
        if self.on_event is not None:
            self.on_event(event)


class InlineEffects:
    """Applies effects at once, in the caller's thread (after the caller released the rules'
    lock). An unavailable store or database raises to the caller."""

    def __init__(self, applier: EffectApplier) -> None:
        self.applier = applier

    def submit(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            self.applier.apply(effect)


@dataclass(slots=True)
class WorkerState:
    applied: int = 0
    retries: int = 0
    given_up: int = 0
    last_error: str = ""
    last_progress: float = field(default_factory=time.monotonic)


class EffectWorker:
    """Applies effects on its own thread, in order, retrying what cannot be applied yet.

    The thread runs under a supervisor (:mod:`eit.supervise`, stage ``rules-effects``): the effect
    under way is kept on the worker, so a failed run that is restarted applies it again first."""

    def __init__(
        self, applier: EffectApplier, retry_max_s: float = 30.0, supervisor: Supervisor | None = None
    ) -> None:
        self.applier = applier
        self.retry_max_s = retry_max_s
        self.supervisor = supervisor or Supervisor()
        self._queue: queue.SimpleQueue[Effect | None] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._idle = threading.Condition(self._pending_lock)
        self._stop = threading.Event()
        self._current: Effect | None = None
        self._current_applied = False
        self.stage = Stage("rules-effects", lambda: self._pending)
        self._worker: Worker | None = None
        self.state = WorkerState()

    def submit(self, effects: Sequence[Effect]) -> None:
        if not effects:
            return
        with self._pending_lock:
            self._pending += len(effects)
        for effect in effects:
            self._queue.put(effect)

    @property
    def backlog(self) -> int:
        return self._pending

    @property
    def alive(self) -> bool:
        return self.stage.running

    def start(self) -> None:
        self._worker = self.supervisor.run(self.stage, self._run)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.stop(timeout_s)

    def drain(self, timeout_s: float) -> bool:
        """Wait until every submitted effect is applied; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self) -> None:
        while True:
            effect = self._current  # an effect a failed run left under way
            if effect is None:
                effect = self._queue.get()
                if effect is None:
                    return
                self._current, self._current_applied = effect, False
            self.stage.progress()
            if not self._current_applied:
                self._apply_until_done(effect)
                self._current_applied = True
            self._current = None
            with self._idle:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()
            self.state.applied += 1
            self.state.last_progress = time.monotonic()
            self.stage.progress()

    def _apply_until_done(self, effect: Effect) -> None:
        """Unavailable store or database: retried until it is back. Any other failure is a
        defect: retried a few times, then given up (logged and counted) rather than holding
        every later alert behind it."""
        delay = 0.2
        defects = 0
        while True:
            try:
                self.applier.apply(effect)
                return
            except EitError as exc:
                self.state.retries += 1
                self.state.last_error = str(exc)
                log.error("rule effect not applied, retrying in %.1f s: %s", delay, exc)
            except Exception as exc:
                defects += 1
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                if defects >= MAX_DEFECT_ATTEMPTS:
                    self.state.given_up += 1
                    log.exception("rule effect %s given up after %d attempts", type(effect).__name__, defects)
                    return
                log.warning("rule effect failed (%s), retrying", self.state.last_error)
            wait = delay * (0.5 + random.random())
            self.stage.rest(wait)
            if self._stop.wait(wait):
                return
            delay = min(delay * 2, self.retry_max_s)
