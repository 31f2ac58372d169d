"""The notifier protocols.

- A broadcast notifier (log, webhook, MQTT, Apprise ``urls``) gets each alert event once and
  carries both languages.
- An officer notifier (e-mail, Apprise ``officers``) is sent to each officer the routing names
  for the event's escalation step, in that officer's language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import tenacity

from alerts.model import AlertEvent
from eit.registry import Officer

MAX_BACKOFF_S = 30.0


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
