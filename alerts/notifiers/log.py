"""Writes alert events to the log."""

from __future__ import annotations

import logging
from typing import Literal

from alerts.model import AlertEvent
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from eit.plugins import Kind

log = logging.getLogger("eit.alerts")


class LogSettings(NotifierSettings):
    """``{kind: log}``: nothing else to set."""

    kind: Literal["log"] = "log"


class LogNotifier:
    name = "log"

    def send(self, event: AlertEvent) -> None:
        a = event.alert
        log.warning(
            "ALERT %s #%d %s/%s %s [%s]: %s",
            event.kind.upper(),
            a.id,
            a.factory,
            a.device,
            a.parameter,
            a.rule,
            a.message,
        )


def build(settings: LogSettings, context: NotifierContext) -> LogNotifier:
    return LogNotifier()


KIND = Kind(LogSettings, build)
