"""POSTs alert events as JSON to a URL, retrying with backoff."""

from __future__ import annotations

import json
import time

import requests

from alerts.model import AlertEvent
from alerts.notifiers.base import NotifyError


class WebhookNotifier:
    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 5.0, retries: int = 5, backoff_s: float = 0.5) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._session = requests.Session()

    def send(self, event: AlertEvent) -> None:
        body = json.dumps(event.to_json(), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "eit-monitor"}
        delay = self.backoff_s
        last = ""
        for attempt in range(self.retries + 1):
            try:
                resp = self._session.post(self.url, data=body, headers=headers, timeout=self.timeout_s)
                if resp.status_code < 300:
                    return
                last = f"HTTP {resp.status_code}"
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                    break  # the receiver refuses this request: retrying will not help
            except requests.RequestException as exc:
                last = str(exc)
            if attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise NotifyError(f"webhook {self.url}: {last}")
