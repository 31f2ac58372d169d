"""The server's own health in the store: the `platform`, `platform_dead_letters` and `sites`
measurements of docs/store-schema.md, which the Platform health and Town overview dashboards read.

Every ``interval_s`` (10 s by default) :class:`PlatformStats` reads the ingest's Prometheus registry
(:class:`ingest.metrics.IngestMetrics`, and the ``eit_alerts_open`` gauge ``eit serve`` adds to it)
and the agents' status messages, and writes one ``platform`` point and one
``platform_dead_letters`` point per reason. At start it writes the site registry's factories
(``sites``: name and location) so the town map needs no other source.

The agents' status messages carry the backlog of their outbox (``outbox_pending``), which the
ingest does not keep; a :class:`StatusWatcher` subscribes to the retained status topics with a
connection of its own (the ingest's MQTT settings, client id ``<client id>-stats``) and keeps the
last state and backlog of every device in the registry.

Only a store that takes line protocol (``write_lines``: InfluxDB through the v1 or the 2.x API)
gets these points; with the embedded SQLite store they are not written.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import paho.mqtt.client as mqtt

from eit import wire
from eit.errors import DecodeError
from eit.mqttclient import connect_async, make_client
from eit.mqttconf import MqttSettings
from eit.registry import Registry
from eit.store import StoreError, StoreUnavailable
from eit.storeschema import FACTORY, Platform, PlatformDeadLetters, Sites
from eit.supervise import Stage, Supervisor, Worker
from eit.timeutil import now_ns
from ingest.metrics import IngestMetrics
from ingest.store.influx import point_line

log = logging.getLogger("eit.selfstats")

DEFAULT_INTERVAL_S = 10.0


@runtime_checkable
class LineWriter(Protocol):
    def write_lines(self, lines: Sequence[str]) -> None: ...


def site_lines(registry: Registry, ts_ns: int) -> list[str]:
    """One ``sites`` point per factory of the registry (tag ``factory``)."""
    return [
        point_line(
            Sites.NAME,
            {FACTORY: f.id},
            {
                Sites.FACTORY_NAME: f.name,
                Sites.NAME_TH: f.name_th,
                Sites.LAT: float(f.lat),
                Sites.LON: float(f.lon),
                Sites.DISTRICT: f.district,
                Sites.ESTATE: f.estate,
                Sites.PUBLIC: f.public,
                Sites.DEVICES: len(f.devices),
            },
            ts_ns,
        )
        for f in registry.factories.values()
    ]


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    state: str
    outbox_pending: int


def parse_status(payload: bytes) -> DeviceStatus | None:
    """``online`` / ``offline`` or the agent's JSON (``{"state": ..., "outbox_pending": n}``)."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text in (wire.STATUS_ONLINE, wire.STATUS_OFFLINE):
        return DeviceStatus(text, 0)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("state") not in (wire.STATUS_ONLINE, wire.STATUS_OFFLINE):
        return None
    pending = data.get("outbox_pending", 0)
    if isinstance(pending, bool) or not isinstance(pending, int) or pending < 0:
        pending = 0
    return DeviceStatus(str(data["state"]), pending)


class StatusWatcher:
    """The last status of every registry device, from the retained status topics."""

    def __init__(self, registry: Registry, settings: MqttSettings) -> None:
        self.registry = registry
        self.settings = settings
        self._lock = threading.Lock()
        self._status: dict[tuple[str, str], DeviceStatus] = {}
        self.unreadable = 0
        self.client = make_client(settings, client_id=f"{settings.client_id}-stats")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def start(self) -> None:
        connect_async(self.client, self.settings)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(wire.STATUS_SUBSCRIPTION, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # An exception here would end paho's network thread, and with it the watcher: a status
        # this code cannot read is logged and skipped (the ingest dead-letters it).
        try:
            self._take(message)
        except Exception as exc:
            self.unreadable += 1
            log.warning("status on %s skipped: %s: %s", message.topic, type(exc).__name__, exc)

    def _take(self, message: mqtt.MQTTMessage) -> None:
        try:
            topic = wire.parse_topic(message.topic)
        except DecodeError:
            return
        if topic.kind != "status" or self.registry.device(topic.factory, topic.device) is None:
            return  # the ingest dead-letters these; they are no device of the town
        status = parse_status(bytes(message.payload))
        if status is not None:
            with self._lock:
                self._status[(topic.factory, topic.device)] = status

    def counts(self) -> tuple[int, int, int]:
        """(devices online, devices offline, outbox backlog of the online ones)."""
        with self._lock:
            statuses = list(self._status.values())
        online = [s for s in statuses if s.state == wire.STATUS_ONLINE]
        return len(online), len(statuses) - len(online), sum(s.outbox_pending for s in online)


def _counter_total(metrics: IngestMetrics, name: str) -> dict[tuple[tuple[str, str], ...], int]:
    """The ``<name>_total`` samples of a counter, by their label set."""
    out: dict[tuple[tuple[str, str], ...], int] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_total":
                out[tuple(sorted(sample.labels.items()))] = int(sample.value)
    return out


class PlatformStats:
    def __init__(
        self,
        registry: Registry,
        store: object,
        metrics: IngestMetrics,
        instance: str,
        watcher: StatusWatcher | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.registry = registry
        self.writer = store if isinstance(store, LineWriter) else None
        self.metrics = metrics
        self.instance = instance
        self.watcher = watcher
        self.interval_s = interval_s
        self.points_written = 0
        self._sites_written = False
        self._stop = threading.Event()
        self.supervisor = supervisor or Supervisor()
        self.stage = Stage("selfstats")
        self._worker: Worker | None = None

    def snapshot(self, ts_ns: int) -> list[str]:
        """The ``platform`` and ``platform_dead_letters`` points at ``ts_ns``."""
        tags = {Platform.INSTANCE: self.instance}
        dead = {
            dict(labels).get("reason", ""): n
            for labels, n in _counter_total(self.metrics, "eit_dead_letters").items()
        }
        online, offline, pending = self.watcher.counts() if self.watcher is not None else (0, 0, 0)
        alerts_open = self.metrics.registry.get_sample_value("eit_alerts_open")
        platform = point_line(
            Platform.NAME,
            tags,
            {
                Platform.READINGS_STORED: sum(_counter_total(self.metrics, "eit_readings_stored").values()),
                Platform.MESSAGES: sum(_counter_total(self.metrics, "eit_messages_received").values()),
                Platform.DEAD_LETTERS: sum(dead.values()),
                Platform.DEVICES_ONLINE: online,
                Platform.DEVICES_OFFLINE: offline,
                Platform.OUTBOX_PENDING: pending,
                Platform.ALERTS_OPEN: int(alerts_open or 0),
            },
            ts_ns,
        )
        per_reason = [
            point_line(
                PlatformDeadLetters.NAME,
                {**tags, PlatformDeadLetters.REASON: reason},
                {PlatformDeadLetters.COUNT: count},
                ts_ns,
            )
            for reason, count in sorted(dead.items())
        ]
        return [platform, *per_reason]

    def write_once(self) -> bool:
        """Write the sites (until they are written once) and a snapshot; False when the store
        could not take them (the next round tries again)."""
        if self.writer is None:
            return False
        ts = now_ns()
        lines = [] if self._sites_written else site_lines(self.registry, ts)
        lines += self.snapshot(ts)
        try:
            self.writer.write_lines(lines)
        except (StoreUnavailable, StoreError) as exc:
            log.warning("platform statistics not written: %s", exc)
            return False
        self._sites_written = True
        self.points_written += len(lines)
        return True

    def start(self) -> None:
        if self.writer is None:
            log.info("this store takes no line protocol: platform statistics are not written")
            return
        if self.watcher is not None:
            self.watcher.start()
        self._worker = self.supervisor.run(self.stage, self._run)

    def _run(self) -> None:
        while True:
            with self.stage.working():
                self.write_once()
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.stop(10.0)
            self.write_once()  # the counters as they stand at the stop
        if self.watcher is not None and self.writer is not None:
            self.watcher.stop()
