"""From alert events to notifications: routing, claims, the queue, and a worker per notifier.

:meth:`Dispatcher.submit` (called by the rules' effects, alerts/effects.py) works out who is told
of an event: each notifier its routing admits (factories, districts); a broadcast notifier once
(recipient ``*``), an officer notifier each officer :class:`Router` names for the event's
escalation step. It renders each notification and writes it to the delivery queue in the state
database (alerts/notifiers/queue.py), in one transaction with its claim: an alert reaches each
channel (notifier and recipient) once per escalation step, also when the engine restarts or the
same event is submitted twice; routine ``updated`` events are not claimed, only queued once.

Besides the officers, a factory hears of its own alerts (opened, withdrawn, resolved): the
contacts the site registry gives for it, and its operators' accounts on the channels they added.
An account's preferences (alerts/notifiers/preferences.py) add its channels and mute its
non-critical items; they never change who is on duty.

Each notifier has a :class:`~alerts.notifiers.worker.DeliveryWorker` of its own, a thread that
sends its notifications in order until each is delivered or expired, so a slow or dead receiver
delays only its own notifier's notifications. Delivery is at least once: a notification is
marked delivered right after the receiver's answer, and sent again only when the process stopped
between the two; its idempotency key lets the receiver drop the repeat.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alerts.model import Alert, AlertEvent
from alerts.notifiers.base import BROADCAST, NotifyError, Parts, idempotency_key
from alerts.notifiers.preferences import (
    PreferenceStore,
    account_recipient,
    contact_recipient,
    personal_recipients,
)
from alerts.notifiers.queue import Claim, DeliveryQueue, NewDelivery
from alerts.notifiers.routing import Router
from alerts.notifiers.webhook import event_json
from alerts.notifiers.worker import DeliveryPolicy, DeliveryWorker, WorkerStats
from eit.errors import EitError
from eit.registry import Officer
from eit.timeutil import NS_PER_S, now_ns
from statedb import StateDb

log = logging.getLogger("eit.alerts.dispatch")

# Events officers are told about (the rest go to broadcast notifiers only).
OFFICER_EVENTS = frozenset({"opened", "escalated", "withdrawn", "resolved"})
# Events the factory is told about (its contacts, its operators' channels): not escalations.
FACTORY_EVENTS = frozenset({"opened", "withdrawn", "resolved"})
# Events claimed once per (alert, step): everything but routine updates of an ongoing alert.
UNCLAIMED_EVENTS = frozenset({"updated"})
QUEUE_RETRY_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class Route:
    factories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()

    def admits(self, factory: str, district: str) -> bool:
        if not self.factories and not self.districts:
            return True
        return factory in self.factories or district in self.districts


@dataclass(frozen=True, slots=True)
class Channel:
    """One configured notifier: the notifier, its name (in the queue, the metrics and the console),
    its routing and how long its notifications are tried."""

    notifier: Any
    name: str
    route: Route = field(default_factory=Route)
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    @property
    def broadcasts(self) -> bool:
        return hasattr(self.notifier, "send") and bool(getattr(self.notifier, "broadcasts", True))

    @property
    def to_officers(self) -> bool:
        return hasattr(self.notifier, "send_to")


class Dispatcher:
    """``notifiers``: :class:`Channel` items, or bare notifiers (named by their ``name``, ``-2``,
    ``-3`` ... added where two share one, routed by ``routes``). ``db``: the state database that
    holds the queue; needed when there are notifiers."""

    def __init__(
        self,
        notifiers: Sequence[Any],
        router: Router | None = None,
        db: StateDb | None = None,
        routes: Sequence[Route] | None = None,
        *,
        lease_s: float = 120.0,
        poll_s: float = 5.0,
        preferences: PreferenceStore | None = None,
    ) -> None:
        self.channels = _channels(notifiers, routes)
        self.router = router
        self.queue = DeliveryQueue(db) if db is not None else None
        # The accounts' preferences: in the state database of the queue unless given.
        self.preferences = preferences or (PreferenceStore(db) if db is not None else None)
        for channel in self.channels:
            use = getattr(channel.notifier, "use_preferences", None)
            if use is not None and self.preferences is not None:
                use(self.preferences)  # e.g. Apprise: the accounts' URLs, read when delivering
        if self.channels and self.queue is None:
            raise ValueError("notifiers need the state database (their delivery queue)")
        self.town = router.registry.town_id if router is not None else ""
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self.workers: dict[str, DeliveryWorker] = {}
        if self.queue is not None:
            for channel in self.channels:
                self.workers[channel.name] = DeliveryWorker(
                    self.queue,
                    channel.name,
                    functools.partial(self._deliver, channel),
                    channel.policy,
                    self._idle,
                    lease_s=lease_s,
                    poll_s=poll_s,
                )

    @property
    def notifiers(self) -> list[Any]:
        return [c.notifier for c in self.channels]

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.join(timeout_s / max(1, len(self.workers)))

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every worker has sent what is due (delivered, or failed and waiting for its
        next attempt): tests, `eit import`."""
        with self._idle:
            return self._idle.wait_for(lambda: all(w.idle for w in self.workers.values()), timeout_s)

    def has_recipients(self, alert: Alert, step: int) -> bool:
        return self.router is not None and bool(self.router.recipients(alert, step))

    def stats(self) -> dict[str, WorkerStats]:
        return {name: worker.stats for name, worker in self.workers.items()}

    # -- submitting ------------------------------------------------------------------------------
    def submit(self, event: AlertEvent) -> None:
        """Queue the notifications of ``event`` (durably, before returning). While the state
        database cannot be reached this waits and tries again, until :meth:`stop`."""
        if self.queue is None or not self.channels:
            return
        delay = 0.2
        while True:
            try:
                items = self.notifications(event)  # reads the accounts' preferences
                if not items:
                    return
                queued = self.queue.enqueue(items, now_ns())
                break
            except EitError as exc:
                log.error("notifications of alert #%d not queued yet: %s", event.alert.id, exc)
                if self._stop.wait(delay):
                    log.error(
                        "stopping: notifications of alert #%d (%s) not queued", event.alert.id, event.kind
                    )
                    return
                delay = min(delay * 2, QUEUE_RETRY_MAX_S)
        for item in queued:
            self.workers[item.notifier].more()

    def notifications(self, event: AlertEvent) -> list[NewDelivery]:
        """The notifications of ``event``, rendered, with their claims (not yet queued)."""
        district = self.router.district(event.alert.factory) if self.router else ""
        out: list[NewDelivery] = []
        recipients: list[Officer] | None = None  # read once, for the first notifier that needs them
        for channel in self.channels:
            if not channel.route.admits(event.alert.factory, district):
                continue
            if channel.to_officers:
                if recipients is None:
                    recipients = self._recipients(event)
                out += self._officer_items(channel, event, recipients)
            if channel.broadcasts:
                item = self._item(channel, event, None)
                if item is not None:
                    out.append(item)
        return out

    def _officer_items(
        self, channel: Channel, event: AlertEvent, recipients: list[Officer]
    ) -> list[NewDelivery]:
        items = []
        for recipient in recipients:
            if channel.notifier.reaches(recipient):
                item = self._item(channel, event, recipient)
                if item is not None:
                    items.append(item)
        return items

    def _recipients(self, event: AlertEvent) -> list[Officer]:
        """Who hears of ``event`` on a notifier that reaches people: the officers the registry
        routes it to, each as their preferences say; for the factory's own events, its contacts
        and its operators' accounts."""
        if self.router is None:
            return []
        alert = event.alert
        out: list[Officer] = []
        if event.kind in OFFICER_EVENTS:
            step = event.step if event.kind == "escalated" else 0
            officers = self.router.recipients(alert, step)
            if event.kind in ("resolved", "withdrawn") and alert.escalation_step:
                # Whoever was told of the alert is told it is over.
                for s in range(1, alert.escalation_step + 1):
                    officers += [o for o in self.router.recipients(alert, s) if o not in officers]
            for officer in officers:
                prefs = self.preferences.for_officer(officer.id) if self.preferences is not None else None
                out += personal_recipients(officer, prefs, alert)
        if event.kind in FACTORY_EVENTS:
            factory = self.router.registry.factories.get(alert.factory)
            if factory is not None:
                out += [contact_recipient(factory.id, c) for c in factory.contacts]
                if self.preferences is not None:
                    for prefs in self.preferences.for_operators(factory.id):
                        out += personal_recipients(account_recipient(prefs, factory.id), prefs, alert)
        return out

    def _item(self, channel: Channel, event: AlertEvent, officer: Officer | None) -> NewDelivery | None:
        recipient = officer.id if officer is not None else BROADCAST
        key = idempotency_key(self.town, event, recipient)
        try:
            parts = self._render(channel, event, officer, key)
        except Exception:
            log.exception(
                "notifier %s cannot render alert #%d (%s)", channel.name, event.alert.id, event.kind
            )
            return None
        claim = None
        if event.kind not in UNCLAIMED_EVENTS:
            claimed_as = f"{recipient}#{event.alert.flaps}" if event.kind == "reopened" else recipient
            claim = Claim(f"{channel.name}:{event.kind}", claimed_as)
        return NewDelivery(
            notifier=channel.name,
            alert_id=event.alert.id,
            step=event.step,
            event=event.kind,
            recipient=recipient,
            key=key,
            event_json=event_json(event, key),
            parts=parts,
            expires_ns=now_ns() + int(channel.policy.expire_after_s * NS_PER_S),
            claim=claim,
        )

    # -- rendering and delivering ------------------------------------------------------------------
    @staticmethod
    def _render(channel: Channel, event: AlertEvent, officer: Officer | None, key: str) -> Parts:
        notifier = channel.notifier
        if hasattr(notifier, "render"):
            parts: Parts = notifier.render(event, officer, key)
            return parts
        # A kind with send/send_to only: the event is kept, and sent again at each attempt.
        return {"event": _event_record(event), "officer": officer.id if officer is not None else None}

    def _deliver(self, channel: Channel, parts: Parts, key: str) -> None:
        notifier = channel.notifier
        if hasattr(notifier, "render"):
            notifier.deliver(parts, key)
            return
        event = _event_from_record(parts["event"])
        officer_id = parts.get("officer")
        if officer_id is None:
            notifier.send(event)
            return
        officer = self.router.registry.officers.get(officer_id) if self.router is not None else None
        if officer is None:
            raise NotifyError(f"officer {officer_id} is no longer in the site registry")
        notifier.send_to(event, officer)


def _channels(notifiers: Sequence[Any], routes: Sequence[Route] | None) -> list[Channel]:
    if routes is not None and len(routes) != len(notifiers):
        raise ValueError(f"{len(notifiers)} notifiers but {len(routes)} routes")
    channels: list[Channel] = []
    names: set[str] = set()
    for index, item in enumerate(notifiers):
        if isinstance(item, Channel):
            channel = item
        else:
            base = str(item.name)
            name, n = base, 1
            while name in names:
                n += 1
                name = f"{base}-{n}"
            channel = Channel(item, name, routes[index] if routes is not None else Route())
        if channel.name in names:
            raise ValueError(f"two notifiers are named {channel.name}: give each its own name")
        names.add(channel.name)
        channels.append(channel)
    return channels


def _event_record(event: AlertEvent) -> dict[str, Any]:
    return {"kind": event.kind, "step": event.step, "alert": dataclasses.asdict(event.alert)}


def _event_from_record(record: dict[str, Any]) -> AlertEvent:
    return AlertEvent(str(record["kind"]), Alert(**record["alert"]), int(record["step"]))


__all__ = ["Channel", "Dispatcher", "Route"]
