"""Delivers alert events to the notifiers from a background thread, each at most once.

Before sending, the dispatcher claims (alert, escalation step, notifier:event, recipient) in the
alert store (a unique key): an exceedance reaches each channel once per escalation step, also
when the engine restarts or the same event is submitted twice. Routing: a notifier may be limited
to factories or districts; officer notifiers go to the officers :class:`Router` names.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alerts.model import Alert, AlertEvent
from alerts.notifiers.base import Notifier, NotifyError, OfficerNotifier
from alerts.notifiers.routing import Router
from eit.supervise import Stage, Supervisor, Worker
from eit.timeutil import now_ns

log = logging.getLogger("eit.alerts.dispatch")

# Events officers are told about (the rest go to broadcast notifiers only).
OFFICER_EVENTS = frozenset({"opened", "escalated", "withdrawn", "resolved"})
# Events claimed once per (alert, step): everything but routine updates of an ongoing alert.
UNCLAIMED_EVENTS = frozenset({"updated"})


class Claims(Protocol):
    def claim_notification(
        self, alert_id: int, step: int, notifier: str, recipient: str, now_ns: int
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class Route:
    factories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()

    def admits(self, factory: str, district: str) -> bool:
        if not self.factories and not self.districts:
            return True
        return factory in self.factories or district in self.districts


class Dispatcher:
    def __init__(
        self,
        notifiers: Sequence[Any],
        router: Router | None = None,
        claims: Claims | None = None,
        routes: Sequence[Route] | None = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.notifiers = list(notifiers)
        self.routes = list(routes) if routes is not None else [Route() for _ in self.notifiers]
        self.router = router
        self.claims = claims
        self.sent = 0
        self.failed = 0
        self.skipped = 0
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue()
        # The event being delivered: a failed run of the thread, restarted by its supervisor,
        # delivers it again first (the claims keep a delivered notification from repeating).
        self._current: AlertEvent | None = None
        self.supervisor = supervisor or Supervisor()
        self.stage = Stage("notify", lambda: self._queue.qsize() + (self._current is not None))
        self._worker: Worker | None = None
        self._idle = threading.Event()
        self._idle.set()

    def start(self) -> None:
        self._worker = self.supervisor.run(self.stage, self._run)

    def submit(self, event: AlertEvent) -> None:
        self._idle.clear()
        self._queue.put(event)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._queue.put(None)
        if self._worker is not None:
            self._worker.stop(timeout_s)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every submitted event was handled (tests, `eit import`)."""
        return self._idle.wait(timeout_s)

    def has_recipients(self, alert: Alert, step: int) -> bool:
        return self.router is not None and bool(self.router.recipients(alert, step))

    def _claim(self, event: AlertEvent, notifier: str, recipient: str) -> bool:
        if self.claims is None or event.kind in UNCLAIMED_EVENTS:
            return True
        if event.kind == "reopened":
            recipient = f"{recipient}#{event.alert.flaps}"
        ok = self.claims.claim_notification(
            event.alert.id, event.step, f"{notifier}:{event.kind}", recipient, now_ns()
        )
        if not ok:
            self.skipped += 1
        return ok

    def deliver(self, event: AlertEvent) -> None:
        """Send one event to every notifier its routing admits (on the caller's thread)."""
        district = self.router.district(event.alert.factory) if self.router else ""
        for notifier, route in zip(self.notifiers, self.routes, strict=True):
            if not route.admits(event.alert.factory, district):
                continue
            if hasattr(notifier, "send_to"):
                self._to_officers(event, notifier)
            if hasattr(notifier, "send"):
                if not self._claim(event, notifier.name, "*"):
                    continue
                self._attempt(notifier.name, event, lambda n=notifier: n.send(event))

    def _to_officers(self, event: AlertEvent, notifier: OfficerNotifier) -> None:
        if self.router is None or event.kind not in OFFICER_EVENTS:
            return
        step = event.step if event.kind == "escalated" else 0
        officers = self.router.recipients(event.alert, step)
        if event.kind in ("resolved", "withdrawn") and event.alert.escalation_step:
            # Whoever was told of the alert is told it is over.
            for s in range(1, event.alert.escalation_step + 1):
                officers += [o for o in self.router.recipients(event.alert, s) if o not in officers]
        for officer in officers:
            if not notifier.reaches(officer) or not self._claim(event, notifier.name, officer.id):
                continue
            self._attempt(notifier.name, event, lambda o=officer: notifier.send_to(event, o))

    def _attempt(self, name: str, event: AlertEvent, action: Any) -> None:
        # Each delivery is progress: a notifier whose server is down ends its call after its own
        # timeouts and retries (under a minute with the defaults); one that never returns is stuck.
        self.stage.progress()
        try:
            action()
            self.sent += 1
        except NotifyError as exc:
            self.failed += 1
            log.error("notifier %s failed for alert #%d: %s", name, event.alert.id, exc)
        except Exception:
            self.failed += 1
            log.exception("notifier %s crashed for alert #%d", name, event.alert.id)

    def _run(self) -> None:
        while True:
            event = self._current
            if event is None:
                event = self._queue.get()
                if event is None:
                    self._idle.set()
                    return
                self._current = event
            self.stage.progress()
            self.deliver(event)
            self._current = None
            self.stage.progress()
            if self._queue.empty():
                self._idle.set()


__all__ = ["Dispatcher", "Notifier", "OfficerNotifier", "Route"]
