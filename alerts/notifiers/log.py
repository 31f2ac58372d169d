"""Writes alert events to the log."""

from __future__ import annotations

import logging
from typing import Literal

from alerts.model import AlertEvent
from alerts.notifiers.base import Parts
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from eit.plugins import Kind
from eit.registry import Officer

log = logging.getLogger("eit.alerts")


class LogSettings(NotifierSettings):
    """``{kind: log}``: nothing else to set."""

    kind: Literal["log"] = "log"


class LogNotifier:
    name = "log"

    def render(self, event: AlertEvent, officer: Officer | None, key: str) -> Parts:
        a = event.alert
        line = (
            f"ALERT {event.kind.upper()} #{a.id} {a.factory}/{a.device} {a.parameter} [{a.rule}]: {a.message}"
        )
        return {"line": line}

    def send(self, event: AlertEvent) -> None:
        self.deliver(self.render(event, None, ""), "")

    def deliver(self, parts: Parts, key: str) -> None:
        log.warning("%s", parts["line"])


def build(settings: LogSettings, context: NotifierContext) -> LogNotifier:
    return LogNotifier()


KIND = Kind(LogSettings, build)
