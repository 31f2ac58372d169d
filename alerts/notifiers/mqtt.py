"""Publishes alert events on ``eit/alerts/<factory>`` (QoS 1) for anyone who would rather
subscribe than poll."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Literal

import paho.mqtt.client as mqtt
from pydantic import Field

from alerts.model import AlertEvent
from alerts.notifiers.base import NotifyError
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from alerts.notifiers.webhook import event_json
from eit.mqttclient import connect_async, make_client
from eit.mqttconf import MqttSettings
from eit.plugins import Kind


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

    def send(self, event: AlertEvent) -> None:
        if not self._connected.wait(self.timeout_s):
            raise NotifyError(f"MQTT broker {self.settings.host}:{self.settings.port} not connected")
        payload = json.dumps(event_json(event), ensure_ascii=False)
        info = self.client.publish(alert_topic(event.alert.factory), payload, qos=self.qos)
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise NotifyError(f"MQTT publish on {alert_topic(event.alert.factory)}: {exc}") from exc
        if not info.is_published():
            raise NotifyError(f"MQTT publish on {alert_topic(event.alert.factory)} not acknowledged")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def build(settings: MqttNotifierSettings, context: NotifierContext) -> MqttNotifier:
    if context.mqtt is None:
        raise ValueError("the mqtt notifier needs the broker settings")
    broker = replace(context.mqtt, client_id=context.mqtt.client_id + "-alerts")
    return MqttNotifier(broker, qos=settings.qos)


KIND = Kind(MqttNotifierSettings, build)
