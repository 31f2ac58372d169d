"""POSTs alert events as JSON to a URL, HMAC-signed, retrying with backoff.

Each notification carries its idempotency key, the same at every attempt: in the header
``Idempotency-Key`` and in the body (``idempotency_key``), so a receiver drops a notification it
has already taken (one is sent again when ``eit serve`` stopped between the receiver's answer and
marking it delivered). Any 2xx answer is taken as delivered; nothing is sent again after one.

Signature: ``X-EIT-Signature: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>``
and ``X-EIT-Timestamp`` (Unix seconds, also part of the signed message:
``<timestamp>.<body>``), so a receiver can refuse forged and replayed calls.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Literal

import requests
from pydantic import Field, SecretStr, field_validator

from alerts.messages import alert_text
from alerts.model import AlertEvent
from alerts.notifiers.base import BROADCAST, NotifyError, Parts, idempotency_key, retrying
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from eit.plugins import Kind
from eit.registry import Officer


class WebhookSettings(NotifierSettings):
    """``{kind: webhook, url, secret (or secret_file, secret_env), timeout_s, retries}``."""

    kind: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr | None = None
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(5, ge=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"'{url}' is not an http(s) URL")
        return url


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def event_json(event: AlertEvent, key: str | None = None) -> dict[str, object]:
    """The event as webhooks and MQTT carry it: the alert, its text in both languages and, when
    given, the notification's idempotency key."""
    data = event.to_json()
    data["message"] = {"en": alert_text(event.alert, "en"), "th": alert_text(event.alert, "th")}
    if key is not None:
        data["idempotency_key"] = key
    return data


class WebhookNotifier:
    name = "webhook"

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        secret: str | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.secret = secret
        self._session = requests.Session()

    def render(self, event: AlertEvent, officer: Officer | None, key: str) -> Parts:
        return {"body": json.dumps(event_json(event, key), ensure_ascii=False)}

    def send(self, event: AlertEvent) -> None:
        key = idempotency_key("", event, BROADCAST)
        self.deliver(self.render(event, None, key), key)

    def deliver(self, parts: Parts, key: str) -> None:
        body = str(parts["body"]).encode()
        try:
            for attempt in retrying(self.retries, self.backoff_s, lambda exc: isinstance(exc, _Retryable)):
                with attempt:
                    self._post(body, key)
        except _Failed as exc:
            raise NotifyError(f"webhook {self.url}: {exc}") from None

    def _post(self, body: bytes, key: str) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "eit-monitor", "Idempotency-Key": key}
        if self.secret is not None:
            stamp = str(int(time.time()))  # signed afresh for each try: a receiver refuses stale stamps
            headers["X-EIT-Timestamp"] = stamp
            headers["X-EIT-Signature"] = signature(self.secret, stamp, body)
        try:
            resp = self._session.post(self.url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise _Retryable(str(exc)) from exc
        if resp.status_code < 300:
            return
        if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
            # The receiver refuses this request: retrying will not help.
            raise _Failed(f"HTTP {resp.status_code}")
        raise _Retryable(f"HTTP {resp.status_code}")


class _Failed(Exception):
    """One try failed; the message says how."""


class _Retryable(_Failed):
    """One try failed in a way another try may not (a network error, 408, 429, 5xx)."""


def build(settings: WebhookSettings, context: NotifierContext) -> WebhookNotifier:
    return WebhookNotifier(
        settings.url,
        timeout_s=settings.timeout_s,
        retries=settings.retries,
        secret=settings.secret.get_secret_value() if settings.secret else None,
    )


KIND = Kind(WebhookSettings, build)
