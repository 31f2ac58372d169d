"""Notifiers: each one small class chosen by name from configuration (``kind``).

Broadcast notifiers have ``send(event)``; officer notifiers ``send_to(event, officer)``. Sending
happens on a dispatcher thread (:class:`alerts.notifiers.dispatch.Dispatcher`), so a slow
webhook or mail server never holds up the ingest.
"""

from __future__ import annotations

from typing import Any

from alerts.notifiers.settings import NotifierSettings
from eit.mqttconf import MqttSettings


def build_notifier(settings: NotifierSettings, mqtt: MqttSettings | None = None) -> Any:
    o = settings.options
    if settings.kind == "log":
        from alerts.notifiers.log import LogNotifier

        return LogNotifier()
    if settings.kind == "webhook":
        from alerts.notifiers.webhook import WebhookNotifier

        return WebhookNotifier(
            o["url"], timeout_s=o.get("timeout_s", 5.0), retries=o.get("retries", 5), secret=o.get("secret")
        )
    if settings.kind == "email":
        from alerts.notifiers.email import EmailNotifier

        return EmailNotifier(
            o["host"],
            o["port"],
            o["sender"],
            starttls=o["starttls"],
            use_ssl=o["ssl"],
            username=o["username"],
            password=o["password"],
            timeout_s=o["timeout_s"],
            retries=o["retries"],
        )
    if settings.kind == "mqtt":
        from dataclasses import replace

        from alerts.notifiers.mqtt import MqttNotifier

        if mqtt is None:
            raise ValueError("the mqtt notifier needs the broker settings")
        return MqttNotifier(replace(mqtt, client_id=mqtt.client_id + "-alerts"), qos=o.get("qos", 1))
    if settings.kind == "apprise":
        from alerts.notifiers.apprise_notifier import AppriseNotifier

        return AppriseNotifier(o["urls"], o["officers"])
    raise ValueError(f"unknown notifier kind {settings.kind!r}")
