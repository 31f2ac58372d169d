"""Notifiers: each kind one module, chosen by name from configuration (``kind``).

Broadcast notifiers have ``send(event)``; officer notifiers ``send_to(event, officer)``. The
dispatcher (:class:`alerts.notifiers.dispatch.Dispatcher`) queues each notification in the state
database, and each notifier sends its own from a worker thread of its own, so a slow webhook or
mail server never holds up the ingest, the rules or another notifier.

A kind's module defines its settings class (a :class:`NotifierSettings`) and a factory, exported
as ``KIND = Kind(Settings, build)``; :data:`NOTIFIER_KINDS` names each module and imports it only
when a configuration uses it (docs/plugins.md: adding a kind).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alerts.notifiers.base import Notifier, OfficerNotifier
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from eit.plugins import Kinds

NotifierFactory = Callable[[Any, NotifierContext], Notifier | OfficerNotifier]

NOTIFIER_KINDS: Kinds[NotifierSettings, NotifierFactory] = Kinds(
    "notifier",
    NotifierSettings,
    {
        "log": "alerts.notifiers.log",
        "webhook": "alerts.notifiers.webhook",
        "email": "alerts.notifiers.email",
        "mqtt": "alerts.notifiers.mqtt",
        "apprise": "alerts.notifiers.apprise_notifier",
    },
)


def build_notifier(
    settings: NotifierSettings, context: NotifierContext | None = None
) -> Notifier | OfficerNotifier:
    """Build the notifier of ``settings.kind`` with its settings."""
    return NOTIFIER_KINDS.get(settings.kind).build(settings, context or NotifierContext())


__all__ = ["NOTIFIER_KINDS", "NotifierContext", "NotifierSettings", "build_notifier"]
