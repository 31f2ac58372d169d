"""Publishes one device's pending scans from the outbox and deletes them on PUBACK.

Each device has its own MQTT connection so that its retained ``online`` status and its
``offline`` last will live on the device's own status topic, as the wire contract says.

Flow control: at most ``max_inflight`` messages are unacknowledged at a time; each message
carries up to ``max_scans_per_message`` scans and at most the contract's largest message
(``eit.bounds.MAX_MESSAGE_BYTES``, 1 MiB: the server refuses a larger one whole), so a backlog
after an outage drains in large messages, oldest first, while new scans queue behind it. paho
keeps unacknowledged messages across reconnects and sends them again; after a restart of the
agent the outbox sends them again.
Either way a scan may reach the broker twice, never zero times: the store's writes are
idempotent (same series and timestamp), so it is stored once.

Several brokers (``mqtt.hosts``, the nodes of a cluster): each device's connection starts at a
random one and, whenever its broker cannot be reached, refuses the login or drops the
connection, tries the next in the list (:class:`eit.mqttclient.BrokerRotation`). What was in
flight is sent again to the broker that answers; the outbox deletes a scan only on its PUBACK,
so a change of broker loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from edge.outbox import Outbox, message_payload, within_message
from eit import wire
from eit.bounds import MAX_MESSAGE_BYTES
from eit.mqttclient import BrokerRotation, Will, connect_async, make_client, random_first
from eit.mqttconf import MqttSettings
from eit.supervise import Stage, Supervisor, Worker
from eit.timeutil import now_ns, ns_to_iso

log = logging.getLogger("eit.edge.publisher")

REFUSED_RETRY_S = 30.0


@dataclass(slots=True)
class PublisherStats:
    published_messages: int = 0
    acked_scans: int = 0
    refused_messages: int = 0
    connects: int = 0
    connected: bool = False
    # The broker connected to (host:port), "" while not connected.
    broker: str = ""
    # Connection attempts that found no broker listening (or no network) at their address.
    connect_failures: int = 0
    last_error: str = ""
    extra_status: dict[str, Any] = field(default_factory=dict)


class DevicePublisher:
    def __init__(
        self,
        factory: str,
        device: str,
        settings: MqttSettings,
        outbox: Outbox,
        *,
        max_inflight: int = 20,
        max_scans_per_message: int = 500,
        status_extra: Callable[[], dict[str, Any]] | None = None,
        status_interval_s: float = 60.0,
        sends_status: bool = True,
        supervisor: Supervisor | None = None,
        first_broker: int | None = None,
    ) -> None:
        """``first_broker``: the entry of ``settings.brokers`` the first connection attempt goes
        to; random by default (a fleet spreads over a cluster's nodes)."""
        self.factory = factory
        self.device = device
        self.settings = settings
        self.outbox = outbox
        self.max_inflight = max_inflight
        self.max_scans_per_message = max_scans_per_message
        self.status_extra = status_extra
        self.status_interval_s = status_interval_s
        # A device replaying recorded data sends no status, so as not to speak for a live agent.
        self.sends_status = sends_status
        self.meter_problem: str | None = None
        self.stats = PublisherStats()
        self.topic = wire.data_topic(factory, device)
        self.status_topic = wire.status_topic(factory, device)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._acks: queue.SimpleQueue[tuple[int, bool, str]] = queue.SimpleQueue()
        self._inflight: dict[int, list[int]] = {}
        self._cursor = 0
        self._paused_until = 0.0
        self._status_due = 0.0
        self._connected = threading.Event()
        self._failures_in_a_row = 0
        self.supervisor = supervisor or Supervisor()
        # Liveness only: scans waiting while the broker is away are an outage, not a stuck loop.
        self.stage = Stage(f"publish-{device}", lambda: 0)
        self._worker: Worker | None = None
        brokers = settings.brokers
        self.rotation = BrokerRotation(
            brokers, random_first(brokers) if first_broker is None else first_broker
        )
        self.client = make_client(
            settings,
            client_id=f"{settings.client_id}-{device}",
            will=Will(self.status_topic, wire.STATUS_OFFLINE.encode()) if sends_status else None,
        )
        self.client.max_inflight_messages_set(max_inflight)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_publish = self._on_publish

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        connect_async(self.client, self.settings, rotation=self.rotation)
        self.client.loop_start()
        self._worker = self.supervisor.run(self.stage, self._pump)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop publishing; say ``offline`` on the status topic when connected (a clean stop)."""
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.stop(timeout_s)
        if self._connected.is_set() and self.sends_status:
            info = self.client.publish(self.status_topic, wire.STATUS_OFFLINE.encode(), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def wake(self) -> None:
        """Tell the publisher new scans are in the outbox."""
        self._wake.set()

    def request_status(self) -> None:
        """Publish the status message again soon (something in it changed)."""
        self._status_due = 0.0
        self._wake.set()

    def set_meter_problem(self, problem: str | None) -> None:
        """The meter stopped answering (``problem``) or answers again (None): the retained status
        says ``offline`` with the reason while it does not answer."""
        self.meter_problem = problem
        self.request_status()

    @property
    def inflight_messages(self) -> int:
        return len(self._inflight)

    # -- paho callbacks (network thread: never block here) ------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        broker = str(self.rotation.current)
        if reason.is_failure:
            self.stats.last_error = f"broker {broker} refused the connection: {reason}"
            log.error(
                "device %s: broker %s refused the connection: %s%s",
                self.device,
                broker,
                reason,
                self._next_try(),
            )
            return
        self.stats.connects += 1
        self._failures_in_a_row = 0
        self.stats.broker = broker
        self.stats.connected = True
        self._connected.set()
        log.info("device %s: connected to %s", self.device, broker)
        self._status_due = 0.0
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.stats.connected = False
        self.stats.broker = ""
        self._connected.clear()
        if not self._stop.is_set():
            broker = self.rotation.current
            self.stats.last_error = f"disconnected from {broker}: {reason}"
            log.warning(
                "device %s: disconnected from broker %s (%s); scans wait in the outbox%s",
                self.device,
                broker,
                reason,
                self._next_try(),
            )

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.stats.connect_failures += 1
        self._failures_in_a_row += 1
        broker = self.rotation.current
        self.stats.last_error = f"cannot connect to {broker}"
        # Brokers that stay down would log this at every attempt: once for each broker per outage.
        quiet = self._failures_in_a_row > len(self.rotation.brokers)
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "device %s: cannot connect to broker %s%s",
            self.device,
            broker,
            self._next_try(),
        )

    def _next_try(self) -> str:
        """Where the next connection attempt goes, for the log (with more than one broker)."""
        if len(self.rotation.brokers) < 2:
            return ""
        brokers = self.rotation.brokers
        following = brokers[(brokers.index(self.rotation.current) + 1) % len(brokers)]
        return f"; the next attempt goes to {following}"

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        refused = bool(getattr(reason, "is_failure", False))
        self._acks.put((mid, refused, str(reason)))
        self._wake.set()

    def status_payload(self) -> bytes:
        state = wire.STATUS_ONLINE if self.meter_problem is None else wire.STATUS_OFFLINE
        status: dict[str, Any] = {"state": state, "ts": ns_to_iso(now_ns())}
        if self.meter_problem is not None:
            status["problem"] = self.meter_problem
        if self.stats.broker:
            status["broker"] = self.stats.broker  # the cluster node this connection is on
        status["outbox_pending"] = self.outbox.count(self.device)
        dropped = self.outbox.dropped(self.device)
        status["outbox_dropped"] = sum(dropped.values())
        if dropped:
            status["outbox_dropped_by"] = dropped
            # Which seqs: the server tells these reported drops from unexplained gaps.
            status["outbox_dropped_seqs"] = [list(r) for r in self.outbox.dropped_seqs(self.device)]
        if self.status_extra is not None:
            status.update(self.status_extra())
        return json.dumps(status, separators=(",", ":")).encode()

    def _publish_status_if_due(self) -> None:
        if not self.sends_status or time.monotonic() < self._status_due:
            return
        self._status_due = time.monotonic() + self.status_interval_s
        self.client.publish(self.status_topic, self.status_payload(), qos=1, retain=True)

    # -- the pump thread -----------------------------------------------------------------------
    def _pump(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            self.stage.progress()
            self._handle_acks()
            if self._stop.is_set():
                break
            if not self._connected.is_set():
                continue
            self._publish_status_if_due()
            if time.monotonic() < self._paused_until:
                continue
            self._publish_pending()
        self._handle_acks()

    def _handle_acks(self) -> None:
        while True:
            try:
                mid, refused, reason = self._acks.get_nowait()
            except queue.Empty:
                return
            ids = self._inflight.get(mid)
            if ids is None:
                continue
            if refused:
                # The broker refused the message (MQTT 5 reason code, e.g. not authorized): keep
                # the scans and try again later, loudly, instead of deleting what was not stored.
                self.stats.refused_messages += 1
                self.stats.last_error = f"broker refused a publish on {self.topic}: {reason}"
                log.error(
                    "device %s: broker refused publish on %s: %s; retrying in %.0f s",
                    self.device,
                    self.topic,
                    reason,
                    REFUSED_RETRY_S,
                )
                self._paused_until = time.monotonic() + REFUSED_RETRY_S
                self._cursor = min(self._cursor, min(ids) - 1)
                del self._inflight[mid]
                continue
            try:
                self.outbox.delete(ids)
            except sqlite3.Error as exc:
                # The scans stay in the outbox and in flight: the deletion is tried again at
                # the next round (a scan is sent again at worst, never lost).
                self.stats.last_error = f"outbox {self.outbox.path} cannot delete acknowledged scans: {exc}"
                log.error("device %s: %s", self.device, self.stats.last_error)
                self._acks.put((mid, refused, reason))
                return
            del self._inflight[mid]
            self.stats.acked_scans += len(ids)

    def _publish_pending(self) -> None:
        while len(self._inflight) < self.max_inflight and self._connected.is_set():
            rows = within_message(self.outbox.pending(self.device, self._cursor, self.max_scans_per_message))
            if not rows:
                return
            payload = message_payload(rows)
            if len(payload) > MAX_MESSAGE_BYTES:
                log.error(
                    "device %s: scan %d alone is %d bytes, over the %d a message may be: the server"
                    " will dead-letter it (too_large)",
                    self.device,
                    rows[0].seq,
                    len(payload),
                    MAX_MESSAGE_BYTES,
                )
            info = self.client.publish(self.topic, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                return
            # paho keeps the message (and sends it on reconnect) for any other return code.
            self._inflight[info.mid] = [r.id for r in rows]
            self._cursor = rows[-1].id
            self.stats.published_messages += 1
