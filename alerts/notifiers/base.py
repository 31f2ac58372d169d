"""The notifier protocols.

- A broadcast notifier (log, webhook, MQTT, Apprise ``urls``) gets each alert event once and
  carries both languages.
- An officer notifier (e-mail, Apprise ``officers``) is sent to each officer the routing names
  for the event's escalation step, in that officer's language.
"""

from __future__ import annotations

from typing import Protocol

from alerts.model import AlertEvent
from eit.registry import Officer


class NotifyError(Exception):
    """A notification could not be delivered (after the notifier's own retries)."""


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
