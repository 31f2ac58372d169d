"""Notifiers: each one small class with ``send(event)``, chosen by name from configuration.

Sending happens on a dispatcher thread (:class:`alerts.notifiers.dispatch.Dispatcher`), so a slow
webhook never holds up the ingest.
"""

from __future__ import annotations

from alerts.notifiers.base import Notifier
from eit.config import NotifierSettings


def build_notifier(settings: NotifierSettings) -> Notifier:
    if settings.kind == "log":
        from alerts.notifiers.log import LogNotifier

        return LogNotifier()
    if settings.kind == "webhook":
        from alerts.notifiers.webhook import WebhookNotifier

        return WebhookNotifier(
            settings.options["url"],
            timeout_s=settings.options.get("timeout_s", 5.0),
            retries=settings.options.get("retries", 5),
        )
    raise ValueError(f"unknown notifier kind {settings.kind!r}")
