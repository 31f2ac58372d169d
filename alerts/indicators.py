"""Town indicators: each factory's contribution for a local month or year, computed from the
store's derived measurements by the catalogue's declared formula (eit/indicators.yaml), stored as
``indicator`` points (docs/store-schema.md), and the town's value made from them when read.

Replay-safe: :func:`compute_indicators` reads only what the store holds for the period and writes
points keyed by (indicator, period, factory, device, period start), so running it again after late
data, a redelivery or an import replaces each contribution with what the store now gives.

Scope (decision of scope for public numbers): a public figure combines the contributions of the
factories the registry marks public only and says "N of M factories"; officers see the whole town.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alerts.compliance import day_bounds
from alerts.windows import HOUR_NS
from eit.indicators import (
    MONTH,
    YEAR,
    Catalogue,
    Indicator,
    Target,
    load_catalogue,
    period_bounds,
    period_label,
    periods_between,
)
from eit.registry import Registry
from eit.store import Point, Store
from eit.storeschema import DEVICE, FACTORY, Aqi
from eit.storeschema import Indicator as IndicatorSchema
from eit.timeutil import ns_to_datetime


@dataclass(frozen=True, slots=True)
class Contribution:
    indicator: str
    period: str  # month or year
    start_ns: int
    factory: str
    device: str  # the station for per-station indicators, else IndicatorSchema.ALL_DEVICES
    value: float
    numerator: float
    denominator: float

    def point(self, method: str) -> Point:
        return Point(
            IndicatorSchema.NAME,
            {
                IndicatorSchema.INDICATOR: self.indicator,
                IndicatorSchema.PERIOD: self.period,
                FACTORY: self.factory,
                DEVICE: self.device,
            },
            self.start_ns,
            {
                IndicatorSchema.VALUE: float(self.value),
                IndicatorSchema.NUMERATOR: float(self.numerator),
                IndicatorSchema.DENOMINATOR: float(self.denominator),
                IndicatorSchema.METHOD: method,
            },
        )


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    factory: str
    device: str
    kind: str


def catalogue_of(registry: Registry) -> Catalogue:
    return load_catalogue(registry.indicators.catalogue_files)


def _devices(registry: Registry) -> list[DeviceInfo]:
    return [DeviceInfo(f.id, d.id, d.kind) for f in registry.factories.values() for d in f.devices.values()]


class _Reader:
    """The store's points of one measurement per factory and period, read once per run."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[str, str, int, int], list[Point]] = {}

    def points(self, measurement: str, factory: str, start: int, end: int) -> list[Point]:
        key = (measurement, factory, start, end)
        if key not in self._cache:
            self._cache[key] = self.store.query_points(measurement, {FACTORY: factory}, start, end)
        return self._cache[key]


def contributions(
    indicator: Indicator,
    kind: str,
    first_day: date,
    registry_devices: Sequence[DeviceInfo],
    public: Mapping[str, bool],
    reader: _Reader,
    tz: ZoneInfo,
) -> list[Contribution]:
    """The contributions of every factory (or station) to ``indicator`` for one period."""
    formula = indicator.formula
    start, end = period_bounds(kind, first_day, tz)
    out: list[Contribution] = []
    iid = indicator.id
    everyone = IndicatorSchema.ALL_DEVICES
    if formula.measurement == "registry":
        for factory, flag in sorted(public.items()):
            n = 1.0 if flag else 0.0
            out.append(Contribution(iid, kind, start, factory, everyone, n, n, 1.0))
        return out
    kinds = formula.filters.get("device_kind")
    wanted = [d for d in registry_devices if kinds is None or d.kind in kinds]
    by_factory: dict[str, set[str]] = defaultdict(set)
    for d in wanted:
        by_factory[d.factory].add(d.device)
    parameters = formula.filters.get("parameter")
    for factory in sorted(by_factory):
        devices = by_factory[factory]
        points = [
            p
            for p in reader.points(formula.measurement, factory, start, end)
            if p.tags.get(DEVICE) in devices
            and (parameters is None or p.tags.get(Aqi.PARAMETER) in parameters)
            and formula.field in p.fields
        ]
        if formula.aggregation == "days_at_or_below":
            assert formula.threshold is not None
            for device in sorted(devices):
                good, days = _days_at_or_below(
                    [p for p in points if p.tags.get(DEVICE) == device], start, end, formula.threshold, tz
                )
                if days:
                    out.append(
                        Contribution(iid, kind, start, factory, device, float(good), float(good), float(days))
                    )
            continue
        if not points:
            continue
        values = [p.fields[formula.field] for p in points]
        if formula.aggregation == "sum":
            total = float(sum(float(v) for v in values))
            out.append(Contribution(iid, kind, start, factory, everyone, total, total, 1.0))
        elif formula.aggregation == "count_true":
            n = float(sum(1 for v in values if v is True))
            out.append(Contribution(iid, kind, start, factory, everyone, n, n, 1.0))
        elif formula.aggregation == "share_true":
            n, all_points = float(sum(1 for v in values if v is True)), float(len(values))
            out.append(Contribution(iid, kind, start, factory, everyone, n / all_points, n, all_points))
        elif formula.aggregation == "none_true":
            n = 0.0 if any(v is True for v in values) else 1.0
            out.append(Contribution(iid, kind, start, factory, everyone, n, n, 1.0))
        else:  # the catalogue's reader admits no other
            raise ValueError(f"indicator {iid}: aggregation {formula.aggregation!r} has no mechanism")
    return out


def _days_at_or_below(
    points: Iterable[Point], start: int, end: int, threshold: float, tz: ZoneInfo
) -> tuple[int, int]:
    """(days at or below ``threshold``, days with a value): a day's value is the highest of the
    points written for the hour that ends at its local midnight (its 24-hour window)."""
    last_hours: dict[int, date] = {}
    day = ns_to_datetime(start).astimezone(tz).date()
    while True:
        day_start, day_end = day_bounds(day, tz)
        if day_start >= end:
            break
        last_hours[day_end - HOUR_NS] = day
        day += timedelta(days=1)
    highest: dict[date, float] = {}
    for p in points:
        found = last_hours.get(p.ts_ns)
        if found is None:
            continue
        value = float(p.fields[Aqi.VALUE])
        highest[found] = max(value, highest.get(found, value))
    good = sum(1 for v in highest.values() if v <= threshold)
    return good, len(highest)


@dataclass(slots=True)
class IndicatorRun:
    periods: int = 0
    contributions: int = 0
    indicators: set[str] = field(default_factory=set)


def compute_indicators(
    registry: Registry,
    store: Store,
    first: date,
    last: date,
    indicator_ids: Iterable[str] | None = None,
    write: bool = True,
) -> tuple[IndicatorRun, list[Contribution]]:
    """Compute every month and year overlapping [first, last] (local days) from the store, and
    write the contributions (``write``). Idempotent: the same store gives the same points."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    catalogue = catalogue_of(registry)
    wanted = list(indicator_ids) if indicator_ids is not None else list(catalogue.indicators)
    unknown = [i for i in wanted if i not in catalogue.indicators]
    if unknown:
        raise ValueError(
            f"no indicator {', '.join(unknown)} in the catalogue ({', '.join(sorted(catalogue.indicators))})"
        )
    tz = ZoneInfo(registry.timezone)
    devices = _devices(registry)
    public = {f.id: f.public for f in registry.factories.values()}
    reader = _Reader(store)
    run = IndicatorRun()
    made: list[Contribution] = []
    for iid in wanted:
        indicator = catalogue.indicators[iid]
        months: dict[int, list[Contribution]] = {}
        for kind in sorted(indicator.periods, key=lambda k: k != MONTH):  # months before years
            for first_day in periods_between(kind, first, last):
                if kind == YEAR and MONTH in indicator.periods:
                    found = _year_from_months(indicator, first_day, months, store, tz)
                else:
                    found = contributions(indicator, kind, first_day, devices, public, reader, tz)
                if kind == MONTH:
                    months[period_bounds(MONTH, first_day, tz)[0]] = found
                run.periods += 1
                run.contributions += len(found)
                run.indicators.add(iid)
                made.extend(found)
                if write and found:
                    store.write_points(IndicatorSchema.NAME, [c.point(indicator.method) for c in found])
    return run, made


def _year_from_months(
    indicator: Indicator,
    first_day: date,
    fresh: Mapping[int, list[Contribution]],
    store: Store,
    tz: ZoneInfo,
) -> list[Contribution]:
    """A year's contributions from its months' (exactly: every aggregation of the vocabulary adds
    up over months): the months just computed, and the stored ones of the year's other months,
    which their own computation (the job, an import, `eit indicators`) made from the store. This
    keeps the hourly job from reading a year of points."""
    start, end = period_bounds(YEAR, first_day, tz)
    by_key: dict[tuple[str, str], list[Contribution]] = defaultdict(list)
    for month_start, found in fresh.items():
        if start <= month_start < end:
            for c in found:
                by_key[(c.factory, c.device)].append(c)
    for c in read_contributions(store, indicator.id, MONTH, start, end):
        if c.start_ns not in fresh:
            by_key[(c.factory, c.device)].append(c)
    aggregation = indicator.formula.aggregation
    out = []
    for (factory, device), parts in sorted(by_key.items()):
        numerator = sum(c.numerator for c in parts)
        denominator = sum(c.denominator for c in parts)
        if aggregation == "none_true":  # compliant all year: compliant in every month with data
            numerator, denominator = float(min(c.numerator for c in parts)), 1.0
        elif aggregation == "flag_true":  # the registry's flag, as the latest month says it
            latest = max(parts, key=lambda c: c.start_ns)
            numerator, denominator = latest.numerator, latest.denominator
        elif aggregation in ("sum", "count_true"):
            denominator = 1.0
        # share_true: a share of the year's points; days_at_or_below: good days of the days with a value
        value = numerator / denominator if aggregation == "share_true" else numerator
        out.append(Contribution(indicator.id, YEAR, start, factory, device, value, numerator, denominator))
    return out


def read_contributions(store: Store, indicator: str, kind: str, start: int, end: int) -> list[Contribution]:
    """The stored contributions of ``indicator`` for the periods starting in [start, end)."""
    out = []
    tags = {IndicatorSchema.INDICATOR: indicator, IndicatorSchema.PERIOD: kind}
    for p in store.query_points(IndicatorSchema.NAME, tags, start, end):
        out.append(
            Contribution(
                indicator,
                kind,
                p.ts_ns,
                p.tags[FACTORY],
                p.tags[DEVICE],
                float(p.fields[IndicatorSchema.VALUE]),
                float(p.fields[IndicatorSchema.NUMERATOR]),
                float(p.fields[IndicatorSchema.DENOMINATOR]),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class TownValue:
    value: float | None  # None: no factory in scope contributed
    numerator: float
    denominator: float
    factories: int  # factories in scope that contributed
    factories_in_scope: int  # N: factories the figure may take (public ones for the public)
    factories_total: int  # M: every registered factory


def town_value(
    indicator: Indicator, found: Sequence[Contribution], scope: set[str], factories_total: int
) -> TownValue:
    """The town's value from the contributions of the factories in ``scope``."""
    mine = [c for c in found if c.factory in scope]
    counted = len({c.factory for c in mine})
    numerator = sum(c.numerator for c in mine)
    denominator = sum(c.denominator for c in mine)
    combine = indicator.formula.combine
    if indicator.public_denominator == "all_factories":
        denominator = float(factories_total)
    value: float | None
    if not mine:
        value = None
    elif combine == "sum":
        value = sum(c.value for c in mine)
    elif combine == "mean":
        value = sum(c.value for c in mine) / len(mine)
    else:
        value = numerator / denominator if denominator else None
        if value is not None and indicator.percent:
            value *= 100.0
    return TownValue(value, numerator, denominator, counted, len(scope), factories_total)


def scope_of(registry: Registry, public_only: bool) -> set[str]:
    return {f.id for f in registry.factories.values() if f.public or not public_only}


def scoreboard(
    registry: Registry,
    store: Store,
    first: date,
    last: date,
    public_only: bool,
    agency: str | None = None,
) -> dict[str, Any]:
    """Every indicator's town value for each stored month and year overlapping [first, last], with
    its target and trajectory: what `eit indicators`, the API and the page show."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    catalogue = catalogue_of(registry)
    if agency is not None and agency not in catalogue.agencies:
        raise ValueError(f"no agency '{agency}' ({', '.join(sorted(catalogue.agencies))})")
    tz = ZoneInfo(registry.timezone)
    scope = scope_of(registry, public_only)
    total = len(registry.factories)
    rows = []
    for indicator in catalogue.indicators.values():
        if agency is not None and indicator.owner != agency:
            continue
        target = registry.indicators.targets.get(indicator.id)
        periods = []
        for kind in indicator.periods:
            days = periods_between(kind, first, last)
            start, _ = period_bounds(kind, days[0], tz)
            _, end = period_bounds(kind, days[-1], tz)
            stored = read_contributions(store, indicator.id, kind, start, end)
            by_start: dict[int, list[Contribution]] = defaultdict(list)
            for c in stored:
                by_start[c.start_ns].append(c)
            for day in days:
                p_start, _ = period_bounds(kind, day, tz)
                tv = town_value(indicator, by_start.get(p_start, []), scope, total)
                trajectory = (
                    target.trajectory(day.year) if target is not None and target.period == kind else None
                )
                periods.append(
                    {
                        "period": period_label(kind, day),
                        "kind": kind,
                        "value": _rounded(tv.value),
                        "numerator": _rounded(tv.numerator),
                        "denominator": _rounded(tv.denominator),
                        "factories": tv.factories,
                        "factories_in_scope": tv.factories_in_scope,
                        "factories_total": tv.factories_total,
                        "trajectory": _rounded(trajectory),
                        "on_track": _on_track(indicator, tv.value, trajectory),
                    }
                )
        rows.append(
            {
                "id": indicator.id,
                "name": {"en": indicator.name_en, "th": indicator.name_th},
                "owner": indicator.owner,
                "owner_name": {
                    "en": catalogue.agencies[indicator.owner].en,
                    "th": catalogue.agencies[indicator.owner].th,
                },
                "unit": indicator.unit,
                "direction": indicator.direction,
                "method": indicator.method,
                "source": indicator.source,
                "target": _target_json(target),
                "periods": periods,
            }
        )
    return {
        "version": 1,
        "town": {"id": registry.town_id, "name": registry.town_name, "timezone": registry.timezone},
        "scope": "public" if public_only else "town",
        "factories_in_scope": len(scope),
        "factories_total": total,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "agencies": {a.id: {"en": a.en, "th": a.th} for a in catalogue.agencies.values()},
        "indicators": rows,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _on_track(indicator: Indicator, value: float | None, trajectory: float | None) -> bool | None:
    if value is None or trajectory is None:
        return None
    return value <= trajectory if indicator.direction == "lower" else value >= trajectory


def _target_json(target: Target | None) -> dict[str, Any] | None:
    if target is None:
        return None
    return {
        "period": target.period,
        "baseline": {"year": target.baseline_year, "value": target.baseline_value},
        "target": {"year": target.target_year, "value": target.target_value},
        "illustrative": target.illustrative,
        "source": target.source,
    }
