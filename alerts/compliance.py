"""Judging averages against limits, and the derived points the engine writes (docs/store-schema.md).

Pure functions shared by the live engine, `eit import` and the report: the same numbers whichever
path computed them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from alerts.windows import HOUR_NS, HourAccumulator
from eit.registry import Channel
from eit.standards import Limit, Standards, methods
from eit.store import Point
from eit.storeschema import Daily, Hourly, Rolling, series_tags
from eit.timeutil import datetime_to_ns, ns_to_datetime
from eit.units import conversion_factor

CONCENTRATION_UNITS = frozenset({"ppm", "ppb", "mg/m3", "ug/m3"})
WINDOWS = {"8h": 8, "24h": 24}


@dataclass(frozen=True, slots=True)
class Verdict:
    """An average judged against one limit (values in the limit's unit)."""

    limit: Limit
    compared: float
    exceeded: bool
    side: str  # above, below
    bound: float
    clear: bool  # within the limit by the hysteresis margin

    def fraction_of_max(self) -> float | None:
        if self.limit.max is None or self.limit.max <= 0 or self.limit.min is not None:
            return None  # no early warning on a range (pH): a fraction of its top means nothing
        return self.compared / self.limit.max


def needs_o2_correction(channel: Channel) -> bool:
    return (
        channel.o2_reference_percent is not None
        and channel.parameter != "o2"
        and channel.unit in CONCENTRATION_UNITS
    )


def judge(
    value: float, channel: Channel, limits: Sequence[Limit], standards: Standards, hysteresis: float
) -> Verdict | None:
    """The verdict against the first limit exceeded, else against the first limit."""
    first: Verdict | None = None
    for limit in limits:
        compared = value * conversion_factor(channel.parameter, channel.unit, limit.unit, standards)
        if limit.max is not None and compared > limit.max:
            return Verdict(limit, compared, True, "above", limit.max, False)
        if limit.min is not None and compared < limit.min:
            return Verdict(limit, compared, True, "below", limit.min, False)
        if first is None:
            clear = True
            if limit.max is not None:
                clear = clear and compared <= limit.max * (1 - hysteresis)
            if limit.min is not None:
                clear = clear and compared >= limit.min * (1 + hysteresis)
            bound = limit.max if limit.max is not None else limit.min
            assert bound is not None
            first = Verdict(
                limit, compared, False, "above" if limit.max is not None else "below", bound, clear
            )
    return first


def limits_for(channel: Channel, day: date, averaging: str) -> list[Limit]:
    return [lim for lim in channel.limits_on(day) if lim.averaging == averaging]


@dataclass(slots=True)
class HourResult:
    factory: str
    device: str
    channel: str
    start_ns: int
    value: float | None
    corrected: float | None
    points: int
    quadrants: int
    valid: bool
    reason: str
    verdict: Verdict | None
    retroactive: bool
    first_value: float | None = None
    last_value: float | None = None
    minutes: int = 0

    @property
    def exceeded(self) -> bool:
        return self.valid and self.verdict is not None and self.verdict.exceeded

    def point(self) -> Point:
        fields: dict[str, float | int | bool | str] = {
            Hourly.POINTS: self.points,
            Hourly.MINUTES: self.minutes,
            Hourly.METHOD: methods()[Hourly.NAME].tag,
            Hourly.QUADRANTS: self.quadrants,
            Hourly.VALID: self.valid,
            Hourly.REASON: self.reason,
            Hourly.EXCEEDED: self.exceeded,
            Hourly.RETROACTIVE: self.retroactive,
        }
        if self.value is not None and self.corrected is not None:
            fields[Hourly.VALUE] = float(self.value)
            fields[Hourly.CORRECTED] = float(self.corrected)
        if self.verdict is not None:
            fields[Hourly.LIMIT] = float(self.verdict.bound)
            fields[Hourly.LIMIT_UNIT] = self.verdict.limit.unit
        return Point(
            Hourly.NAME,
            series_tags((self.factory, self.device, self.channel)),
            self.start_ns,
            fields,
        )


def hour_result(
    series: tuple[str, str, str],
    acc: HourAccumulator,
    channel: Channel,
    day: date,
    standards: Standards,
    hysteresis: float,
    retroactive: bool,
) -> HourResult:
    valid, reason = acc.verdict()
    corrected = acc.mean_corrected()
    limits = limits_for(channel, day, "1h")
    verdict = (
        judge(corrected, channel, limits, standards, hysteresis) if corrected is not None and limits else None
    )
    if verdict is None and limits:
        # No valid point: still say which limit was in force.
        lim = limits[0]
        bound = lim.max if lim.max is not None else lim.min
        assert bound is not None
        verdict = Verdict(lim, math.nan, False, "above", bound, False)
    return HourResult(
        series[0],
        series[1],
        series[2],
        acc.start_ns,
        acc.mean_raw(),
        corrected,
        acc.points,
        acc.quadrants,
        valid,
        reason,
        verdict,
        retroactive,
        acc.first_value,
        acc.last_value,
        acc.valid_minutes,
    )


@dataclass(slots=True)
class RollingResult:
    factory: str
    device: str
    channel: str
    window: str
    end_ns: int
    value: float | None
    hours: int
    valid: bool
    verdict: Verdict | None

    @property
    def exceeded(self) -> bool:
        return self.valid and self.verdict is not None and self.verdict.exceeded

    def point(self) -> Point | None:
        if self.value is None:
            return None
        fields: dict[str, float | int | bool | str] = {
            Rolling.VALUE: float(self.value),
            Rolling.HOURS: self.hours,
            Rolling.VALID: self.valid,
            Rolling.EXCEEDED: self.exceeded,
            Rolling.METHOD: methods()[Rolling.NAME].tag,
        }
        if self.verdict is not None:
            fields[Rolling.LIMIT] = float(self.verdict.bound)
            fields[Rolling.LIMIT_UNIT] = self.verdict.limit.unit
        tags = {**series_tags((self.factory, self.device, self.channel)), Rolling.WINDOW: self.window}
        return Point(Rolling.NAME, tags, self.end_ns, fields)


def hours_needed(window_hours: int, completeness: float) -> int:
    return max(1, math.ceil(window_hours * completeness - 1e-9))


def rolling_result(
    series: tuple[str, str, str],
    window: str,
    end_ns: int,
    hourly: dict[int, tuple[float, bool]],
    channel: Channel,
    day: date,
    standards: Standards,
    completeness: float,
    hysteresis: float,
) -> RollingResult:
    """The rolling average of the valid hourly averages (``hourly``: hour start -> (corrected
    value, valid)) of the ``window`` hours that end at ``end_ns``."""
    n = WINDOWS[window]
    values = []
    for k in range(1, n + 1):
        entry = hourly.get(end_ns - k * HOUR_NS)
        if entry is not None and entry[1]:
            values.append(entry[0])
    value = sum(values) / len(values) if values else None
    valid = len(values) >= hours_needed(n, completeness)
    limits = limits_for(channel, day, window)
    verdict = judge(value, channel, limits, standards, hysteresis) if value is not None and limits else None
    return RollingResult(series[0], series[1], series[2], window, end_ns, value, len(values), valid, verdict)


def local_day(ts_ns: int, tz: ZoneInfo) -> date:
    return ns_to_datetime(ts_ns).astimezone(tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a local day as UTC nanoseconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return datetime_to_ns(start), datetime_to_ns(end)


def daily_point(
    series: tuple[str, str, str], day: date, tz: ZoneInfo, valid_hours: int, completeness: float
) -> Point:
    start, end = day_bounds(day, tz)
    expected = (end - start) // HOUR_NS
    share = valid_hours / expected if expected else 0.0
    return Point(
        Daily.NAME,
        series_tags(series),
        start,
        {
            Daily.VALID_HOURS: valid_hours,
            Daily.EXPECTED_HOURS: int(expected),
            Daily.COMPLETENESS: float(share),
            Daily.COMPLETE: share >= completeness - 1e-12,
            Daily.METHOD: methods()[Daily.NAME].tag,
        },
    )


def count_valid(points: Iterable[Point]) -> int:
    return sum(1 for p in points if p.fields.get(Hourly.VALID) is True)
