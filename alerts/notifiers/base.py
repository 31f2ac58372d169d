"""The notifier protocols, and the idempotency key every notification carries.

- A broadcast notifier (log, webhook, MQTT, Apprise ``urls``) gets each alert event once and
  carries both languages: ``send(event)``.
- An officer notifier (e-mail, Apprise ``officers``) is sent to each officer the routing names
  for the event's escalation step, in that officer's language: ``send_to(event, officer)`` and
  ``reaches(officer)``.

Notifications go through the delivery queue (alerts/notifiers/queue.py), which sends a
notification until the receiver answered, so sometimes twice. A kind that also has
``render(event, officer, key)`` and ``deliver(parts, key)`` (:class:`RendersDeliveries`, as
every kind of the project has) is rendered once, when the event is queued, and each attempt
sends those same parts with the notification's idempotency key, which the kind passes on where
its receiver can read it (a webhook's ``Idempotency-Key``, an e-mail's ``Message-ID``). A kind with
only ``send``/``send_to`` is sent the event again at each attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

import tenacity

from alerts.model import AlertEvent
from eit.registry import Officer

MAX_BACKOFF_S = 30.0
# JSON: what a notifier renders for one notification, kept in the queue until delivered.
Parts = dict[str, Any]
BROADCAST = "*"  # the recipient of a broadcast notifier's notifications
# Idempotency keys are UUIDs (version 5) in this namespace: the same notification, the same key.
KEY_NAMESPACE = uuid.UUID("5d0f6a8e-3c4b-5b7e-9a51-0e1c7f2d4a63")


class NotifyError(Exception):
    """A notification could not be delivered (after the notifier's own retries)."""


def retrying(retries: int, backoff_s: float, retry_on: Callable[[BaseException], bool]) -> tenacity.Retrying:
    """A notifier's retries: up to ``retries`` more tries after the first, for the failures
    ``retry_on`` accepts, waiting ``backoff_s``, then twice as long each time up to 30 s, each wait
    plus up to ``backoff_s`` of jitter (so that notifiers failing together do not retry in step).
    The last failure is raised as it was."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential_jitter(multiplier=backoff_s, max=MAX_BACKOFF_S, jitter=backoff_s),
        retry=tenacity.retry_if_exception(retry_on),
        reraise=True,
    )


class Notifier(Protocol):
    name: str

    def send(self, event: AlertEvent) -> None:
        """Deliver the event or raise NotifyError."""
        ...


class OfficerNotifier(Protocol):
    name: str

    def send_to(self, event: AlertEvent, officer: Officer) -> None:
        """Deliver the event to ``officer`` or raise NotifyError."""
        ...

    def reaches(self, officer: Officer) -> bool:
        """Whether this notifier has an address for ``officer``."""
        ...


class RendersDeliveries(Protocol):
    def render(self, event: AlertEvent, officer: Officer | None, key: str) -> Parts:
        """What to send for the event (to ``officer``, or to everyone when None), as JSON; it
        must hold no secret (it is kept in the state database)."""
        ...

    def deliver(self, parts: Parts, key: str) -> None:
        """Send what :meth:`render` made; return only once the receiver took it (an HTTP 2xx,
        SMTP 250, an MQTT PUBACK), else raise NotifyError."""
        ...


def idempotency_key(town: str, event: AlertEvent, recipient: str) -> str:
    """The key of the notification of ``event`` to ``recipient`` (an officer's id, or ``*``):
    the same for every attempt and every time the event is submitted again, different for
    another alert, escalation step, event, recipient or town. A reopened alert's events differ by
    its flap count, routine updates by their time."""
    alert = event.alert
    instance = ""
    if event.kind == "reopened":
        instance = str(alert.flaps)
    elif event.kind == "updated":
        instance = str(alert.updated_ns)
    name = "\x1f".join((town, str(alert.id), str(event.step), event.kind, instance, recipient))
    return str(uuid.uuid5(KEY_NAMESPACE, name))
