"""Reading device-months from the store, one device at a time, a day of one channel at a time.

Memory stays bounded whatever the scan rate: a day of one channel's readings is folded into the
device's minute grid (alerts/integrity/month.py) before the next day is read. Hourly averages
come from the engine's stored ``hourly`` points where the store has them (the numbers the law is
judged on), else from the minute grid by the engine's method (mean of minute means, corrected
with the same minute's O2; valid with a minute in each quadrant). With one scan a minute the two
are equal (tests/test_integrity.py); with faster scans the engine corrects each point with its own
scan's O2 before the minute mean, the grid corrects the minute mean with the minute's mean O2.
The factory's power per hour comes from its energy meters' ``power`` channels, else from the
``energy`` points the rules write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from alerts.compliance import day_bounds, limits_for, needs_o2_correction
from alerts.integrity.month import (
    FLAG_CODES,
    HOUR_NS,
    MINUTE_NS,
    ChannelMinutes,
    DeviceMonth,
    FloatArray,
    PollutantHours,
    add_points,
    corrected_minutes,
    empty_minutes,
    finish_minutes,
    hourly_means,
)
from eit.registry import Channel, Device, Factory, Registry
from eit.standards import Standards
from eit.store import Store
from eit.storeschema import DEVICE, FACTORY, Energy, Hourly, series_tags
from eit.timeutil import ns_to_datetime
from eit.units import conversion_factor

DAY_NS = 24 * HOUR_NS


@dataclass(frozen=True, slots=True)
class MonthSpan:
    """One local calendar month, or the part of it inside the period."""

    label: str  # 2026-11
    start_ns: int
    end_ns: int


def month_spans(first_day: date, last_day: date, tz: ZoneInfo) -> list[MonthSpan]:
    """The local calendar months of [first_day, last_day], clipped to the period."""
    spans = []
    day = first_day.replace(day=1)
    while day <= last_day:
        following = (day + timedelta(days=32)).replace(day=1)
        start = max(day, first_day)
        end = min(following - timedelta(days=1), last_day)
        spans.append(MonthSpan(f"{day:%Y-%m}", day_bounds(start, tz)[0], day_bounds(end, tz)[1]))
        day = following
    return spans


def grid_bounds(span: MonthSpan) -> tuple[int, int]:
    start = span.start_ns - span.start_ns % HOUR_NS
    end = -(-span.end_ns // HOUR_NS) * HOUR_NS
    return start, end


def pollutants(device: Device, day: date) -> list[Channel]:
    """Channels judged against a 1-hour maximum (their hours are what limit hugging is about)."""
    return [
        ch
        for ch in device.channels.values()
        if ch.parameter != "o2" and any(lim.max is not None for lim in limits_for(ch, day, "1h"))
    ]


def limit_per_hour(
    channel: Channel, grid_start_ns: int, hours: int, tz: ZoneInfo, standards: Standards
) -> FloatArray:
    """The 1-hour maximum in force in each hour, in the channel's unit (NaN: none)."""
    out = np.full(hours, np.nan)
    by_day: dict[date, float] = {}
    for h in range(hours):
        day = ns_to_datetime(grid_start_ns + h * HOUR_NS).astimezone(tz).date()
        if day not in by_day:
            limit = next((lim for lim in limits_for(channel, day, "1h") if lim.max is not None), None)
            by_day[day] = (
                np.nan
                if limit is None or limit.max is None
                else limit.max / conversion_factor(channel.parameter, channel.unit, limit.unit, standards)
            )
        out[h] = by_day[day]
    return out


def read_minutes(
    store: Store,
    factory: str,
    device: str,
    channel: Channel,
    grid_start_ns: int,
    span: MonthSpan,
    minutes: int,
) -> ChannelMinutes:
    grid = empty_minutes(channel.id, channel.parameter, channel.unit, minutes)
    sums = np.zeros(minutes)
    counts = np.zeros(minutes, dtype=np.int64)
    codes = FLAG_CODES
    for start in range(span.start_ns, span.end_ns, DAY_NS):
        rows = store.readings(factory, device, channel.id, start, min(start + DAY_NS, span.end_ns))
        if not rows:
            continue
        n = len(rows)
        add_points(
            grid,
            sums,
            counts,
            grid_start_ns,
            np.fromiter((r.ts_ns for r in rows), np.int64, n),
            np.fromiter((r.value for r in rows), np.float64, n),
            np.fromiter((codes.get(r.flag, 0) for r in rows), np.uint8, n),
        )
    finish_minutes(grid, sums, counts)
    return grid


def stored_hours(
    store: Store,
    factory: str,
    device: str,
    channel: Channel,
    grid_start_ns: int,
    grid_end_ns: int,
    standards: Standards,
) -> tuple[FloatArray, FloatArray, np.ndarray] | None:
    """(raw, corrected, valid) per hour as ratios of the limit, from the engine's hourly points;
    None when the store has none for the channel in the month."""
    points = store.query_points(
        Hourly.NAME, series_tags((factory, device, channel.id)), grid_start_ns, grid_end_ns
    )
    if not points:
        return None
    hours = (grid_end_ns - grid_start_ns) // HOUR_NS
    raw, corrected = np.full(hours, np.nan), np.full(hours, np.nan)
    valid = np.zeros(hours, dtype=bool)
    for p in points:
        h = (p.ts_ns - grid_start_ns) // HOUR_NS
        limit, unit = p.fields.get(Hourly.LIMIT), p.fields.get(Hourly.LIMIT_UNIT)
        value, corr = p.fields.get(Hourly.VALUE), p.fields.get(Hourly.CORRECTED)
        if not isinstance(limit, float | int) or not isinstance(unit, str) or limit <= 0:
            continue
        if not isinstance(value, float | int) or not isinstance(corr, float | int):
            continue
        factor = conversion_factor(channel.parameter, channel.unit, unit, standards)
        raw[h] = float(value) * factor / float(limit)
        corrected[h] = float(corr) * factor / float(limit)
        valid[h] = p.fields.get(Hourly.VALID) is True
    return raw, corrected, valid


def computed_hours(
    value: FloatArray, o2: FloatArray | None, reference: float | None, limit: FloatArray
) -> tuple[FloatArray, FloatArray, np.ndarray]:
    """(raw, corrected, valid) per hour from the minute grid, by the engine's method."""
    corrected_min = corrected_minutes(value, o2, reference)
    if reference is not None:
        value = np.where(np.isnan(corrected_min), np.nan, value)
    raw, _ = hourly_means(value)
    corrected, valid = hourly_means(corrected_min)
    with np.errstate(invalid="ignore"):
        return raw / limit, corrected / limit, valid & ~np.isnan(limit)


def factory_power(
    store: Store, factory: Factory, grid_start_ns: int, grid_end_ns: int, standards: Standards
) -> FloatArray | None:
    """The factory's mean power per hour in kW over its energy meters (NaN: an hour no meter
    reported); None when it has no energy meter with data."""
    hours = (grid_end_ns - grid_start_ns) // HOUR_NS
    total = np.zeros(hours)
    seen = np.zeros(hours, dtype=bool)
    for d in factory.devices.values():
        if d.kind != "energy":
            continue
        power = next((c for c in d.channels.values() if c.parameter == "power"), None)
        if power is not None:
            factor = conversion_factor("power", power.unit, "kW", standards)
            buckets = store.aggregate(
                factory.id, d.id, power.id, grid_start_ns, grid_end_ns, 3600, "mean", valid_only=True
            )
            for b in buckets:
                h = (b.start_ns - grid_start_ns) // HOUR_NS
                total[h] += b.value * factor
                seen[h] = True
            if buckets:
                continue
        for p in store.query_points(
            Energy.NAME, {FACTORY: factory.id, DEVICE: d.id}, grid_start_ns, grid_end_ns
        ):
            kwh = p.fields.get(Energy.KWH)
            if isinstance(kwh, float | int):
                h = (p.ts_ns - grid_start_ns) // HOUR_NS
                total[h] += float(kwh)
                seen[h] = True
    if not seen.any():
        return None
    return np.where(seen, total, np.nan)


def device_months(
    registry: Registry, store: Store, spans: list[MonthSpan], factory_id: str | None = None
) -> Iterator[DeviceMonth]:
    """Each stack device's months, read one after the other (only one is held at a time)."""
    tz = ZoneInfo(registry.timezone)
    standards = registry.standards
    for factory in registry.factories.values():
        if factory_id is not None and factory.id != factory_id:
            continue
        stacks = [d for d in factory.devices.values() if d.kind == "stack"]
        if not stacks:
            continue
        for span in spans:
            grid_start, grid_end = grid_bounds(span)
            minutes = (grid_end - grid_start) // MINUTE_NS
            power = factory_power(store, factory, grid_start, grid_end, standards)
            first_day = ns_to_datetime(span.start_ns).astimezone(tz).date()
            for device in stacks:
                channels = {
                    ch.id: read_minutes(store, factory.id, device.id, ch, grid_start, span, minutes)
                    for ch in device.channels.values()
                }
                o2 = next((c.value for c in channels.values() if c.parameter == "o2"), None)
                hours = minutes // 60
                found: dict[str, PollutantHours] = {}
                for ch in pollutants(device, first_day):
                    reference = ch.o2_reference_percent if needs_o2_correction(ch) else None
                    stored = stored_hours(store, factory.id, device.id, ch, grid_start, grid_end, standards)
                    source = "store"
                    if stored is None:
                        limit = limit_per_hour(ch, grid_start, hours, tz, standards)
                        stored = computed_hours(channels[ch.id].value, o2, reference, limit)
                        source = "minutes"
                    raw, corrected, valid = stored
                    found[ch.id] = PollutantHours(
                        ch.id, ch.parameter, ch.unit, raw, corrected, valid, reference, source
                    )
                preset = next((ch.preset for ch in device.channels.values() if ch.preset), None)
                yield DeviceMonth(
                    factory.id,
                    device.id,
                    preset,
                    span.label,
                    grid_start,
                    span.start_ns,
                    span.end_ns,
                    channels,
                    found,
                    power,
                )
