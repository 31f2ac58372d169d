"""Delivers alert events to every notifier from a background thread."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from alerts.model import AlertEvent
from alerts.notifiers.base import Notifier, NotifyError

log = logging.getLogger("eit.alerts.dispatch")


class Dispatcher:
    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, event: AlertEvent) -> None:
        self._queue.put(event)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            for notifier in self.notifiers:
                try:
                    notifier.send(event)
                    self.sent += 1
                except NotifyError as exc:
                    self.failed += 1
                    log.error("notifier %s failed for alert #%d: %s", notifier.name, event.alert.id, exc)
                except Exception:
                    self.failed += 1
                    log.exception("notifier %s crashed for alert #%d", notifier.name, event.alert.id)
