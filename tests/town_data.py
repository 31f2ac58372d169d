"""FIXTURE: one Bangkok day of the example town (examples/town/site.yaml) in a real InfluxDB, for
the dashboard tests.

- raw ``readings`` of every channel, one a minute, written through ``InfluxStore.write``;
- the derived measurements (``hourly``, ``rolling``, ``daily``, ``aqi``, ``energy``) computed and
  written by the compliance engine itself, fed the day as `eit import` feeds it
  (:func:`alerts.recompute.recompute`): the panels are tested against what the engine writes;
- ``platform`` / ``platform_dead_letters`` written by ``ingest/selfstats.py``'s
  :class:`PlatformStats`, from a real :class:`IngestMetrics` registry the fixture counts into as
  the ingest counts, and a :class:`StatusWatcher` handed the status messages the agents publish;
- ``sites`` through the same function `eit serve` uses (``ingest.selfstats.site_lines``).

The day holds what the dashboards must show: Kaeng Khoi's boiler SO2 above its 1-hour limit in the
afternoon, an invalid hour of the outfall's COD (two quadrants without data), the fence-line
station's ozone analyser in maintenance for six hours (an incomplete day) and above its 8-hour
limit in the afternoon, the outfall's agent offline for an hour that drains its backlog when it is
back, a server restart (counters start again) and dead letters of two reasons.

The fixture's own parts: the readings' values; the messages' arrival (the engine is fed the day in
time order, as an import feeds it, so no hour is retroactive); the ``eit_alerts_open`` gauge, which
follows the SO2 exceedance hours here (`eit serve` reads it from the engine's alert state); and the
platform points come once a minute where `eit serve` writes every 10 s (a snapshot costs about a
millisecond: a minute keeps the fill quick, and every per-minute bucket of the Platform health
panels still holds a point).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from prometheus_client import Gauge

from alerts.recompute import recompute
from alerts.settings import RuleSettings
from eit import wire
from eit.model import Reading
from eit.mqttconf import MqttSettings
from eit.registry import Registry
from ingest.metrics import IngestMetrics
from ingest.selfstats import PlatformStats, StatusWatcher, site_lines
from ingest.store.influx import InfluxStore

S = 1_000_000_000
HOUR = 3600 * S
MINUTE = 60 * S
BANGKOK = ZoneInfo("Asia/Bangkok")
DAY = datetime(2026, 11, 26, tzinfo=BANGKOK)  # a Bangkok day: 2026-11-25T17:00Z to 2026-11-26T17:00Z
DAY_START_NS = int(DAY.astimezone(UTC).timestamp()) * S
DAY_END_NS = DAY_START_NS + 24 * HOUR

# Fixture values (typical levels of each channel), not measurements of any real plant.
TYPICAL = {
    "so2": 40.0,
    "nox": 120.0,
    "pm": 95.0,
    "o2": 9.5,
    "flow": 52000.0,
    "temperature": 165.0,
    "power": 4200.0,
    "ph": 7.2,
    "cod": 80.0,
    "bod": 15.0,
    "tss": 30.0,
    "pm25": 28.0,
    "pm10": 55.0,
    "o3": 0.04,
}
OUTFALL_FLOW_M3_PER_H = 300.0
ENERGY_START_KWH = 1_250_000.0

SO2_HIGH_HOURS = range(13, 17)  # local hours when the boiler's SO2 is above its limit
COD_SHORT_HOUR = 10  # local hour whose COD readings stop after 30 minutes
O3_MAINTENANCE_HOURS = range(0, 6)  # flag M
O3_HIGH_HOURS = range(11, 19)
OFFLINE_AGENT = ("siam-cassava-starch", "outfall-1")  # offline for this local hour, then drains
AGENT_OFFLINE_HOUR = 20
SERVER_RESTART_HOUR = 12
DEAD_LETTER_REASONS = ("not_json", "unknown_device")
INSTANCE = "eit-ingest"


def local_hour(ts_ns: int) -> int:
    return (ts_ns - DAY_START_NS) // HOUR


def fixture_value(factory: str, device: str, channel: str, ts_ns: int) -> tuple[float, str]:
    """(value, flag) of one channel at one minute of the day."""
    hour = local_hour(ts_ns)
    minute = (ts_ns - DAY_START_NS) // MINUTE
    wobble = math.sin(minute / 17.0)
    if channel == "energy":
        return ENERGY_START_KWH + TYPICAL["power"] * minute / 60.0, "N"
    base = OUTFALL_FLOW_M3_PER_H if (device, channel) == ("outfall-1", "flow") else TYPICAL[channel]
    value = base * (1 + 0.03 * wobble)
    flag = "N"
    if channel == "so2" and hour in SO2_HIGH_HOURS:
        value = 85.0 + 2 * wobble
    if channel == "o3":
        if hour in O3_MAINTENANCE_HOURS:
            flag = "M"
        elif hour in O3_HIGH_HOURS:
            value = 0.09 + 0.002 * wobble
    return round(value, 4), flag


def fixture_readings(registry: Registry, factories: Collection[str] | None = None) -> list[Reading]:
    """The day's readings (of ``factories`` only, when given), in time order."""
    out: list[Reading] = []
    for factory in registry.factories.values():
        if factories is not None and factory.id not in factories:
            continue
        for device in factory.devices.values():
            seq = 0
            for ts in range(DAY_START_NS, DAY_END_NS, MINUTE):
                seq += 1
                for channel in device.channels:
                    if (
                        channel == "cod"
                        and local_hour(ts) == COD_SHORT_HOUR
                        and (ts - DAY_START_NS) % HOUR >= 30 * MINUTE
                    ):
                        continue
                    value, flag = fixture_value(factory.id, device.id, channel, ts)
                    out.append(Reading(factory.id, device.id, channel, ts, value, flag, seq))
    out.sort(key=lambda r: r.ts_ns)  # stable: a scan's channels stay together
    return out


# -- the platform's own health, as `eit serve` writes it -------------------------------------------


class _Server:
    """What one run of `eit serve` counts: its ingest metrics, the open-alerts gauge, the stats."""

    def __init__(self, registry: Registry, watcher: StatusWatcher, instance: str) -> None:
        self.metrics = IngestMetrics()
        self.alerts_open = Gauge("eit_alerts_open", "Alerts currently open", registry=self.metrics.registry)
        self.stats = PlatformStats(registry, None, self.metrics, instance, watcher)

    def message(self, readings: int) -> None:
        self.metrics.messages.labels("data").inc()
        self.metrics.readings_stored.inc(readings)

    def dead_letter(self, reason: str) -> None:
        self.metrics.messages.labels("data").inc()
        self.metrics.dead_letters.labels(reason).inc()


def _status(watcher: StatusWatcher, factory: str, device: str, payload: str) -> None:
    """A retained status message reaching the watcher, as paho hands it over."""
    message = mqtt.MQTTMessage(topic=wire.status_topic(factory, device).encode())
    message.payload = payload.encode()
    watcher._on_message(watcher.client, None, message)


def platform_lines(registry: Registry, instance: str = INSTANCE) -> list[str]:
    """``platform`` and ``platform_dead_letters`` once a minute, written by PlatformStats."""
    settings = MqttSettings("127.0.0.1", 1883, instance, "5", None, None, None, 60)
    watcher = StatusWatcher(registry, settings)  # never connected: the fixture hands it the messages
    devices = [(f.id, d.id, len(d.channels)) for f in registry.factories.values() for d in f.devices.values()]
    for factory, device, _ in devices:
        _status(watcher, factory, device, '{"state": "online", "outbox_pending": 0}')
    server = _Server(registry, watcher, instance)
    backlog = 0
    lines: list[str] = []
    for minute, ts in enumerate(range(DAY_START_NS, DAY_END_NS, MINUTE)):
        hour = local_hour(ts)
        if ts == DAY_START_NS + SERVER_RESTART_HOUR * HOUR:
            server = _Server(registry, watcher, instance)  # a restart: the counters start again
        for factory, device, channels in devices:
            if (factory, device) != OFFLINE_AGENT:
                server.message(channels)
            elif hour == AGENT_OFFLINE_HOUR:
                if backlog == 0:
                    _status(watcher, factory, device, wire.STATUS_OFFLINE)  # the last will
                backlog += 1
            elif backlog:
                # Back: the agent's birth message reports its outbox, then the backlog drains in
                # one message with this minute's scan.
                _status(watcher, factory, device, f'{{"state": "online", "outbox_pending": {backlog}}}')
                server.message(channels * (backlog + 1))
                backlog = 0
            else:
                server.message(channels)
        for i, reason in enumerate(DEAD_LETTER_REASONS):
            if minute % (7 + i) == 0:
                server.dead_letter(reason)
        server.alerts_open.set(1 if hour in SO2_HIGH_HOURS else 0)
        lines += server.stats.snapshot(ts)
    return lines


def write_town_day(
    store: InfluxStore,
    registry: Registry,
    factories: Collection[str] | None = None,
    *,
    platform: bool = True,
) -> None:
    """Fill ``store`` with the day: of ``factories`` only when given, and the platform's own
    points only with ``platform``."""
    readings = fixture_readings(registry, factories)
    store.write(readings)
    first, last = min(r.ts_ns for r in readings), max(r.ts_ns for r in readings)
    recompute(
        registry, store, first, last + 1, settings=RuleSettings()
    )  # hourly, rolling, daily, aqi, energy
    chosen = {f.id: f for f in registry.factories.values() if factories is None or f.id in factories}
    lines = site_lines(replace(registry, factories=chosen), DAY_START_NS)
    if platform:
        lines += platform_lines(registry)
    store.write_lines(lines)
