"""The notifier protocol."""

from __future__ import annotations

from typing import Protocol

from alerts.model import AlertEvent


class NotifyError(Exception):
    """A notification could not be delivered (after the notifier's own retries)."""


class Notifier(Protocol):
    name: str

    def send(self, event: AlertEvent) -> None:
        """Deliver the event or raise NotifyError."""
        ...
