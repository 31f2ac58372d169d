"""Building paho-mqtt clients from :class:`eit.mqttconf.MqttSettings` (edge and server alike)."""

from __future__ import annotations

from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from eit.mqttconf import MqttSettings

# MQTT 5 session expiry for persistent sessions: queued QoS 1 messages survive a restart of the
# subscriber for this long.
SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def make_client(
    settings: MqttSettings,
    *,
    client_id: str | None = None,
    persistent: bool = False,
    manual_ack: bool = False,
    will: Will | None = None,
) -> mqtt.Client:
    """A paho client configured from settings; the caller connects it with :func:`connect_async`."""
    v5 = settings.protocol == "5"
    client_id = client_id or settings.client_id
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )
    username = settings.username_for(client_id)
    if username is not None:
        client.username_pw_set(username, settings.password)
    if settings.tls is not None:
        client.tls_set_context(settings.tls.context())
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


def connect_async(
    client: mqtt.Client,
    settings: MqttSettings,
    *,
    persistent: bool = False,
    receive_maximum: int | None = None,
) -> None:
    """Start connecting in the background; paho's loop thread retries until the broker answers."""
    if settings.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            props.SessionExpiryInterval = SESSION_EXPIRY_S
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        client.connect_async(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_s,
            clean_start=not persistent,
            properties=props,
        )
    else:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
