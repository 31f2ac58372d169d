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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    """The store's points of a measurement over a period, a day at a time: one scan of the period
    whatever the number of factories (the embedded store filters tags row by row), and one day's
    points in memory, not the period's."""

    CHUNK_NS = 24 * HOUR_NS

    def __init__(self, store: Store) -> None:
        self.store = store

    def points(self, measurement: str, start: int, end: int) -> Iterator[Point]:
        for lo in range(start, end, self.CHUNK_NS):
            yield from self.store.query_points(measurement, {}, lo, min(end, lo + self.CHUNK_NS))


@dataclass(slots=True)
class _Tally:
    points: int = 0
    true: int = 0
    total: float = 0.0


class _Accumulator:
    """One indicator's contributions for one period, fed the period's points one at a time."""

    def __init__(
        self,
        indicator: Indicator,
        kind: str,
        first_day: date,
        registry_devices: Sequence[DeviceInfo],
        tz: ZoneInfo,
    ) -> None:
        self.indicator = indicator
        self.kind = kind
        self.start, self.end = period_bounds(kind, first_day, tz)
        formula = indicator.formula
        kinds = formula.filters.get("device_kind")
        self.wanted = {(d.factory, d.device) for d in registry_devices if kinds is None or d.kind in kinds}
        self.parameters = formula.filters.get("parameter")
        self.field = formula.field
        self.last_hours = _last_hours(self.start, self.end, tz) if formula.per_device else {}
        self.highest: dict[tuple[str, str], dict[date, float]] = defaultdict(dict)
        self.tallies: dict[str, _Tally] = defaultdict(_Tally)

    def take(self, p: Point) -> None:
        key = (p.tags.get(FACTORY, ""), p.tags.get(DEVICE, ""))
        if key not in self.wanted or self.field not in p.fields:
            return
        if self.parameters is not None and p.tags.get(Aqi.PARAMETER) not in self.parameters:
            return
        raw = p.fields[self.field]
        if self.indicator.formula.per_device:
            day = self.last_hours.get(p.ts_ns)
            if day is not None and not isinstance(raw, bool | str):
                days = self.highest[key]
                days[day] = max(float(raw), days.get(day, float(raw)))
            return
        tally = self.tallies[key[0]]
        tally.points += 1
        if raw is True:
            tally.true += 1
        elif not isinstance(raw, bool | str):
            tally.total += float(raw)

    def result(self) -> list[Contribution]:
        formula = self.indicator.formula
        iid, kind, start = self.indicator.id, self.kind, self.start
        everyone = IndicatorSchema.ALL_DEVICES
        out: list[Contribution] = []
        if formula.per_device:
            assert formula.threshold is not None
            for (factory, device), days in sorted(self.highest.items()):
                good = float(sum(1 for v in days.values() if v <= formula.threshold))
                out.append(Contribution(iid, kind, start, factory, device, good, good, float(len(days))))
            return out
        for factory, tally in sorted(self.tallies.items()):
            if formula.aggregation == "sum":
                out.append(Contribution(iid, kind, start, factory, everyone, tally.total, tally.total, 1.0))
            elif formula.aggregation == "count_true":
                n = float(tally.true)
                out.append(Contribution(iid, kind, start, factory, everyone, n, n, 1.0))
            elif formula.aggregation == "share_true":
                n, all_points = float(tally.true), float(tally.points)
                out.append(Contribution(iid, kind, start, factory, everyone, n / all_points, n, all_points))
            elif formula.aggregation == "none_true":
                n = 0.0 if tally.true else 1.0
                out.append(Contribution(iid, kind, start, factory, everyone, n, n, 1.0))
            else:  # the catalogue's reader admits no other
                raise ValueError(f"indicator {iid}: aggregation {formula.aggregation!r} has no mechanism")
        return out


def _registry_contributions(
    indicator: Indicator, kind: str, first_day: date, public: Mapping[str, bool], tz: ZoneInfo
) -> list[Contribution]:
    start, _ = period_bounds(kind, first_day, tz)
    out = []
    for factory, flag in sorted(public.items()):
        n = 1.0 if flag else 0.0
        out.append(Contribution(indicator.id, kind, start, factory, IndicatorSchema.ALL_DEVICES, n, n, 1.0))
    return out


def period_contributions(
    indicators: Sequence[Indicator],
    kind: str,
    first_day: date,
    registry_devices: Sequence[DeviceInfo],
    public: Mapping[str, bool],
    reader: _Reader,
    tz: ZoneInfo,
) -> dict[str, list[Contribution]]:
    """The contributions of every factory (or station) to each of ``indicators`` for one period:
    each measurement is read once for all the indicators that use it."""
    out: dict[str, list[Contribution]] = {}
    by_measurement: dict[str, list[_Accumulator]] = defaultdict(list)
    everyone: list[_Accumulator] = []
    for indicator in indicators:
        if indicator.formula.measurement == "registry":
            out[indicator.id] = _registry_contributions(indicator, kind, first_day, public, tz)
            continue
        acc = _Accumulator(indicator, kind, first_day, registry_devices, tz)
        everyone.append(acc)
        for measurement in indicator.formula.measurements:
            by_measurement[measurement].append(acc)
    start, end = period_bounds(kind, first_day, tz)
    for measurement, accumulators in by_measurement.items():
        for p in reader.points(measurement, start, end):
            for acc in accumulators:
                acc.take(p)
    for acc in everyone:
        out[acc.indicator.id] = acc.result()
    return out


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
    return period_contributions([indicator], kind, first_day, registry_devices, public, reader, tz)[
        indicator.id
    ]


def _last_hours(start: int, end: int, tz: ZoneInfo) -> dict[int, date]:
    """The start of the hour that ends at each local midnight in (start, end], by local day: the
    hour whose 24-hour window is that day."""
    last_hours: dict[int, date] = {}
    day = ns_to_datetime(start).astimezone(tz).date()
    while True:
        day_start, day_end = day_bounds(day, tz)
        if day_start >= end:
            break
        last_hours[day_end - HOUR_NS] = day
        day += timedelta(days=1)
    return last_hours


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
    indicators = [catalogue.indicators[iid] for iid in wanted]
    months: dict[str, dict[int, list[Contribution]]] = defaultdict(dict)

    def keep(indicator: Indicator, found: list[Contribution]) -> None:
        run.periods += 1
        run.contributions += len(found)
        run.indicators.add(indicator.id)
        made.extend(found)
        if write and found:
            store.write_points(IndicatorSchema.NAME, [c.point(indicator.method) for c in found])

    # Months first (from the store's points, every measurement read once a month), then years.
    monthly = [i for i in indicators if MONTH in i.periods]
    for first_day in periods_between(MONTH, first, last):
        found_by_id = period_contributions(monthly, MONTH, first_day, devices, public, reader, tz)
        month_start = period_bounds(MONTH, first_day, tz)[0]
        for indicator in monthly:
            months[indicator.id][month_start] = found_by_id[indicator.id]
            keep(indicator, found_by_id[indicator.id])
    for first_day in periods_between(YEAR, first, last):
        direct = [i for i in indicators if YEAR in i.periods and MONTH not in i.periods]
        found_by_id = period_contributions(direct, YEAR, first_day, devices, public, reader, tz)
        for indicator in indicators:
            if YEAR not in indicator.periods:
                continue
            if indicator.id in found_by_id:
                found = found_by_id[indicator.id]
            else:
                found = _year_from_months(indicator, first_day, months[indicator.id], store, tz)
            keep(indicator, found)
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
