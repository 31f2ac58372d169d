"""Publishes alert events on ``eit/alerts/<factory>`` (QoS 1) for anyone who would rather
subscribe than poll.

The payload is the webhook's JSON, with the notification's idempotency key (``idempotency_key``;
on MQTT 5 also the user property ``Idempotency-Key``). The broker's PUBACK is the answer that
makes it delivered.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field

from alerts.model import AlertEvent
from alerts.notifiers.base import BROADCAST, NotifyError, Parts, idempotency_key
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from alerts.notifiers.webhook import event_json
from eit.mqttclient import connect_async, make_client
from eit.mqttconf import MqttSettings
from eit.plugins import Kind
from eit.registry import Officer


class MqttNotifierSettings(NotifierSettings):
    """``{kind: mqtt, qos}``: publishes on the server's own broker (section ``mqtt``)."""

    kind: Literal["mqtt"] = "mqtt"
    qos: int = Field(1, ge=0, le=2)


def alert_topic(factory: str) -> str:
    return f"eit/alerts/{factory}"


class MqttNotifier:
    name = "mqtt"

    def __init__(self, settings: MqttSettings, qos: int = 1, timeout_s: float = 10.0) -> None:
        self.qos = qos
        self.timeout_s = timeout_s
        self.settings = settings
        self._connected = threading.Event()
        self.client = make_client(settings, persistent=False, manual_ack=False)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self._connected.clear()
        connect_async(self.client, settings, persistent=False)
        self.client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if not getattr(reason, "is_failure", False):
            self._connected.set()

    def render(self, event: AlertEvent, officer: Officer | None, key: str) -> Parts:
        return {
            "topic": alert_topic(event.alert.factory),
            "payload": json.dumps(event_json(event, key), ensure_ascii=False),
        }

    def send(self, event: AlertEvent) -> None:
        key = idempotency_key("", event, BROADCAST)
        self.deliver(self.render(event, None, key), key)

    def deliver(self, parts: Parts, key: str) -> None:
        topic = str(parts["topic"])
        if not self._connected.wait(self.timeout_s):
            raise NotifyError(f"MQTT broker {self.settings.host}:{self.settings.port} not connected")
        props = None
        if self.settings.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = [("Idempotency-Key", key)]
        info = self.client.publish(topic, str(parts["payload"]), qos=self.qos, properties=props)
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise NotifyError(f"MQTT publish on {topic}: {exc}") from exc
        if not info.is_published():
            raise NotifyError(f"MQTT publish on {topic} not acknowledged")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def build(settings: MqttNotifierSettings, context: NotifierContext) -> MqttNotifier:
    if context.mqtt is None:
        raise ValueError("the mqtt notifier needs the broker settings")
    broker = replace(context.mqtt, client_id=context.mqtt.client_id + "-alerts")
    return MqttNotifier(broker, qos=settings.qos)


KIND = Kind(MqttNotifierSettings, build)
