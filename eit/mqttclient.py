"""Building paho-mqtt clients from :class:`eit.mqttconf.MqttSettings` (edge and server alike)."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from eit.mqttconf import Broker, MqttSettings

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


class BrokerRotation:
    """Which broker each connection attempt of one client goes to, round robin over a list.

    The first attempt goes to the broker at ``first``; every later one (after an attempt that
    failed, a login the broker refused or a connection that dropped) to the next in the list, so
    a client whose broker is down tries the others in turn instead of waiting for it. Agents
    start at a random entry (:func:`random_first`) so that a fleet spreads over a cluster's nodes.
    Messages paho holds unacknowledged are sent again to whichever broker answers next.
    """

    def __init__(self, brokers: Sequence[Broker], first: int = 0) -> None:
        if not brokers:
            raise ValueError("a rotation needs at least one broker")
        self.brokers = tuple(brokers)
        self._next = first % len(self.brokers)
        self._lock = threading.Lock()
        # The broker of the latest attempt (the one connected to, once connected).
        self.current = self.brokers[self._next]
        self.attempts = 0

    def next_broker(self) -> Broker:
        """The broker for the attempt about to start; it becomes :attr:`current`."""
        with self._lock:
            self.current = self.brokers[self._next]
            self._next = (self._next + 1) % len(self.brokers)
            self.attempts += 1
            return self.current

    def attach(self, client: mqtt.Client) -> None:
        """Send every connection attempt of ``client`` (the first and paho's reconnects) to the
        rotation's next broker. With TLS the certificate is checked against that broker's name
        (paho uses the host of the attempt as the TLS server name)."""

        def before_attempt(c: mqtt.Client, userdata: Any) -> None:
            broker = self.next_broker()
            # paho's public host/port setters refuse while a (re)connection is under way, which is
            # exactly when paho calls this; reconnect() reads these two right after it.
            c._host, c._port = broker.host, broker.port

        client.on_pre_connect = before_attempt


def random_first(brokers: Sequence[Broker]) -> int:
    """A random starting entry, so that a fleet's connections spread over a cluster's nodes."""
    return random.randrange(len(brokers)) if brokers else 0


def connect_async(
    client: mqtt.Client,
    settings: MqttSettings,
    *,
    persistent: bool = False,
    receive_maximum: int | None = None,
    rotation: BrokerRotation | None = None,
) -> None:
    """Start connecting in the background; paho's loop thread retries until a broker answers.

    Without ``rotation`` every attempt goes to the first of ``settings.brokers`` (``mqtt.host``);
    with one, each attempt goes to the rotation's next broker (:class:`BrokerRotation`).
    """
    first = settings.brokers[0]
    if rotation is not None:
        rotation.attach(client)
        first = rotation.current
    if settings.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            props.SessionExpiryInterval = SESSION_EXPIRY_S
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        client.connect_async(
            first.host,
            first.port,
            keepalive=settings.keepalive_s,
            clean_start=not persistent,
            properties=props,
        )
    else:
        client.connect_async(first.host, first.port, keepalive=settings.keepalive_s)
