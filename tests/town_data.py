"""FIXTURE: one Bangkok day of the example town (examples/town/site.yaml) in a real InfluxDB, for
the dashboard tests.

- raw ``readings`` of every channel, one a minute, written through ``InfluxStore.write``;
- the derived measurements (``hourly``, ``rolling``, ``daily``, ``aqi``, ``energy``) written as
  line protocol that follows docs/store-schema.md field by field, computed here in the plainest way
  (:func:`derive_by_fixture`): they fill the schema, they are not the compliance engine's results;
- ``platform`` / ``platform_dead_letters`` points every 10 s, and ``sites`` through the same
  function `eit serve` uses (ingest/selfstats.py).

When the compliance engine lands, pass its entry point as ``derive`` to :func:`write_town_day`
(same signature as :func:`derive_by_fixture`) and drop the fixture's own derivation.

The day holds what the dashboards must show: Kaeng Khoi's boiler SO2 above its 1-hour limit in the
afternoon, an invalid hour of the outfall's COD (two quadrants without data), the fence-line
station's ozone analyser in maintenance for six hours (an incomplete day) and above its 8-hour
limit in the afternoon, an agent offline for an hour with a backlog, a server restart (counters
start again) and dead letters of two reasons.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from statistics import fmean
from zoneinfo import ZoneInfo

from eit.model import VALID_FLAGS, Reading
from eit.registry import Channel, Registry
from ingest.selfstats import site_lines
from ingest.store.base import FieldValue
from ingest.store.influx import InfluxStore, point_line

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
FIXTURE_GRID_FACTOR = 0.5  # kgCO2e/kWh: a round fixture number, not the TGO factor
FIXTURE_COMPLETE_AT = 0.8  # docs/store-schema.md: the engine's default threshold
# Fixture AQI bands (upper edges of the sub-index), to label the fixture's AQI points.
FIXTURE_AQI_BANDS = ((25.0, "very_good"), (50.0, "good"), (100.0, "moderate"), (200.0, "unhealthy_sensitive"))

SO2_HIGH_HOURS = range(13, 17)  # local hours when the boiler's SO2 is above its limit
COD_SHORT_HOUR = 10  # local hour whose COD readings stop after 30 minutes
O3_MAINTENANCE_HOURS = range(0, 6)  # flag M
O3_HIGH_HOURS = range(11, 19)
AGENT_OFFLINE_HOUR = 20
SERVER_RESTART_HOUR = 12
DEAD_LETTER_REASONS = ("not_json", "unknown_device")


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


def fixture_readings(registry: Registry) -> list[Reading]:
    out: list[Reading] = []
    for factory in registry.factories.values():
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
    return out


# -- the derived measurements, as docs/store-schema.md describes them ---------------------------


@dataclass(frozen=True, slots=True)
class Hour:
    factory: str
    device: str
    channel: str
    start_ns: int
    value: float | None
    corrected: float | None
    points: int
    quadrants: int
    valid: bool


def _limit(channel: Channel, averaging: str) -> tuple[float | None, float | None, str] | None:
    for lim in channel.limits_on(DAY.date()):
        if lim.averaging == averaging:
            return lim.min, lim.max, lim.unit
    return None


def _above(value: float, limit: tuple[float | None, float | None, str]) -> bool:
    low, high, _ = limit
    return (high is not None and value > high) or (low is not None and value < low)


def _limit_fields(
    channel: Channel, averaging: str, value: float | None, valid: bool
) -> dict[str, FieldValue]:
    limit = _limit(channel, averaging)
    if limit is None:
        return {"exceeded": False}
    low, high, unit = limit
    return {
        "limit": float(high if high is not None else low),  # type: ignore[arg-type]
        "limit_unit": unit,
        "exceeded": bool(valid and value is not None and _above(value, limit)),
    }


def derive_by_fixture(registry: Registry, readings: Sequence[Reading]) -> list[str]:
    """Line protocol of ``hourly``, ``rolling``, ``daily``, ``aqi`` and ``energy`` for the day."""
    by_hour: dict[tuple[str, str, str, int], list[Reading]] = defaultdict(list)
    for r in readings:
        by_hour[(r.factory, r.device, r.channel, r.ts_ns - (r.ts_ns - DAY_START_NS) % HOUR)].append(r)

    hours: dict[tuple[str, str, str, int], Hour] = {}
    for (factory, device, channel, start), points in sorted(by_hour.items()):
        valid = [p for p in points if p.flag in VALID_FLAGS]
        quadrants = len({(p.ts_ns - start) // (15 * MINUTE) for p in valid})
        value = fmean(p.value for p in valid) if valid else None
        hours[(factory, device, channel, start)] = Hour(
            factory, device, channel, start, value, value, len(valid), quadrants, quadrants == 4
        )
    # Stack channels: the average at the reference O2 of the channel's standard.
    for key, hour in list(hours.items()):
        ch = registry.channel(hour.factory, hour.device, hour.channel)
        o2 = hours.get((hour.factory, hour.device, "o2", hour.start_ns))
        if (
            ch is not None
            and ch.o2_reference_percent is not None
            and hour.value is not None
            and o2
            and o2.value
        ):
            corrected = hour.value * (21 - ch.o2_reference_percent) / (21 - o2.value)
            hours[key] = replace(hour, corrected=corrected)

    lines: list[str] = []
    for hour in hours.values():
        ch = registry.channel(hour.factory, hour.device, hour.channel)
        assert ch is not None
        tags = {"factory": hour.factory, "device": hour.device, "channel": hour.channel}
        fields: dict[str, FieldValue] = {
            "value": float(hour.value if hour.value is not None else 0.0),
            "corrected": float(hour.corrected if hour.corrected is not None else 0.0),
            "points": hour.points,
            "quadrants": hour.quadrants,
            "valid": hour.valid,
            "reason": "" if hour.valid else f"{4 - hour.quadrants} quadrant(s) without a valid point",
            **_limit_fields(ch, "1h", hour.corrected, hour.valid),
            "retroactive": False,
        }
        lines.append(point_line("hourly", tags, fields, hour.start_ns))

    lines += _rolling(registry, hours)
    lines += _daily(registry, hours)
    lines += _aqi(registry, hours)
    lines += _energy(registry, readings)
    return lines


def _ambient(registry: Registry) -> list[tuple[str, str, Channel]]:
    return [
        (f.id, d.id, ch)
        for f in registry.factories.values()
        for d in f.devices.values()
        if d.kind == "ambient"
        for ch in d.channels.values()
    ]


def _rolling(registry: Registry, hours: dict[tuple[str, str, str, int], Hour]) -> list[str]:
    lines = []
    for factory, device, ch in _ambient(registry):
        for window in (8, 24):
            for end in range(DAY_START_NS + HOUR, DAY_END_NS + 1, HOUR):
                inside = [
                    h
                    for h in (
                        hours.get((factory, device, ch.id, end - k * HOUR)) for k in range(1, window + 1)
                    )
                    if h is not None and h.valid and h.value is not None
                ]
                if not inside:
                    continue
                value = fmean(h.value for h in inside if h.value is not None)
                valid = len(inside) >= 0.75 * window
                fields: dict[str, FieldValue] = {
                    "value": value,
                    "hours": len(inside),
                    "valid": valid,
                    **_limit_fields(ch, f"{window}h", value, valid),
                }
                tags = {"factory": factory, "device": device, "channel": ch.id, "window": f"{window}h"}
                lines.append(point_line("rolling", tags, fields, end))
    return lines


def _daily(registry: Registry, hours: dict[tuple[str, str, str, int], Hour]) -> list[str]:
    lines = []
    for f in registry.factories.values():
        for d in f.devices.values():
            for ch in d.channels:
                valid_hours = sum(
                    1
                    for h in hours.values()
                    if (h.factory, h.device, h.channel) == (f.id, d.id, ch) and h.valid
                )
                completeness = valid_hours / 24
                fields: dict[str, FieldValue] = {
                    "valid_hours": valid_hours,
                    "expected_hours": 24,
                    "completeness": completeness,
                    "complete": completeness >= FIXTURE_COMPLETE_AT,
                }
                tags = {"factory": f.id, "device": d.id, "channel": ch}
                lines.append(point_line("daily", tags, fields, DAY_START_NS))
    return lines


def _band(index: float) -> str:
    for upper, band in FIXTURE_AQI_BANDS:
        if index <= upper:
            return band
    return "unhealthy"


def _aqi(registry: Registry, hours: dict[tuple[str, str, str, int], Hour]) -> list[str]:
    """Fixture sub-indices: the concentration against the channel's longest limit, as 100."""
    lines = []
    stations: dict[tuple[str, str], list[Channel]] = defaultdict(list)
    for factory, device, ch in _ambient(registry):
        stations[(factory, device)].append(ch)
    for (factory, device), channels in stations.items():
        for start in range(DAY_START_NS, DAY_END_NS, HOUR):
            subs: list[float] = []
            for ch in channels:
                limits = [lim for lim in ch.limits_on(DAY.date()) if lim.max is not None]
                hour = hours.get((factory, device, ch.id, start))
                if not limits or hour is None or not hour.valid or hour.value is None:
                    continue
                standard = limits[-1].max
                assert standard is not None
                index = 100 * hour.value / standard
                subs.append(index)
                tags = {"factory": factory, "device": device, "parameter": ch.parameter}
                fields: dict[str, FieldValue] = {
                    "value": index,
                    "band": _band(index),
                    "concentration": hour.value,
                }
                lines.append(point_line("aqi", tags, fields, start))
            if subs:
                overall = max(subs)
                tags = {"factory": factory, "device": device, "parameter": "overall"}
                lines.append(point_line("aqi", tags, {"value": overall, "band": _band(overall)}, start))
    return lines


def _energy(registry: Registry, readings: Sequence[Reading]) -> list[str]:
    first_last: dict[tuple[str, str, int], list[float]] = {}
    for r in readings:
        if r.channel != "energy":
            continue
        start = r.ts_ns - (r.ts_ns - DAY_START_NS) % HOUR
        first_last.setdefault((r.factory, r.device, start), []).append(r.value)
    lines = []
    for (factory, device, start), values in sorted(first_last.items()):
        kwh = (max(values) - min(values)) * len(values) / max(len(values) - 1, 1)  # the whole hour
        fields: dict[str, FieldValue] = {
            "kwh": kwh,
            "co2_kg": kwh * FIXTURE_GRID_FACTOR,
            "grid_factor": FIXTURE_GRID_FACTOR,
        }
        lines.append(point_line("energy", {"factory": factory, "device": device}, fields, start))
    return lines


# -- the platform's own health ------------------------------------------------------------------


def platform_lines(registry: Registry, instance: str = "eit-ingest") -> list[str]:
    """``platform`` and ``platform_dead_letters`` every 10 s, as ingest/selfstats.py writes them."""
    devices = registry.device_count
    channels = sum(len(d.channels) for f in registry.factories.values() for d in f.devices.values())
    lines = []
    restart = DAY_START_NS + SERVER_RESTART_HOUR * HOUR
    for ts in range(DAY_START_NS, DAY_END_NS, 10 * S):
        since = ts - (restart if ts >= restart else DAY_START_NS)
        minutes = since // MINUTE
        offline = 1 if local_hour(ts) == AGENT_OFFLINE_HOUR else 0
        dead = {reason: int(minutes // (7 + i)) for i, reason in enumerate(DEAD_LETTER_REASONS)}
        fields: dict[str, FieldValue] = {
            "readings_stored": int(minutes * channels),
            "messages": int(minutes * devices),
            "dead_letters": sum(dead.values()),
            "devices_online": devices - offline,
            "devices_offline": offline,
            "outbox_pending": 120 * offline,
            "alerts_open": 1 if local_hour(ts) in SO2_HIGH_HOURS else 0,
        }
        lines.append(point_line("platform", {"instance": instance}, fields, ts))
        for reason, count in dead.items():
            lines.append(
                point_line(
                    "platform_dead_letters", {"instance": instance, "reason": reason}, {"count": count}, ts
                )
            )
    return lines


Derive = Callable[[Registry, Sequence[Reading]], list[str]]


def write_town_day(store: InfluxStore, registry: Registry, derive: Derive = derive_by_fixture) -> int:
    """Fill ``store`` with the day; returns the number of points written."""
    readings = fixture_readings(registry)
    store.write(readings)
    lines = derive(registry, readings) + platform_lines(registry) + site_lines(registry, DAY_START_NS)
    store.write_lines(lines)
    return len(readings) + len(lines)


def day_range() -> tuple[datetime, datetime]:
    return DAY.astimezone(UTC), DAY.astimezone(UTC) + timedelta(days=1)
