"""Writes alert events to the log."""

from __future__ import annotations

import logging

from alerts.model import AlertEvent

log = logging.getLogger("eit.alerts")


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
