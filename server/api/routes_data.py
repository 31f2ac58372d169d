"""Factories, their devices and channels, latest values, readings, hourly and rolling averages,
the Thai AQI. Published data (for factories marked public) needs no account; raw readings need
an officer or the factory's own operator."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from alerts.public_state import STATES
from eit.errors import EitError
from eit.model import ID_PATTERN
from eit.registry import Channel, Factory
from eit.store import AGGREGATES, Point
from eit.storeschema import DEVICE, FACTORY, Aqi, Hourly, Rolling, series_tags
from eit.timeutil import NS_PER_S, ns_to_datetime, ns_to_iso
from server.api.auth import Principal
from server.api.common import HOUR_NS, Context, errors, time_range
from server.api.schemas import (
    AqiOut,
    ChannelOut,
    DeviceOut,
    FactoryOut,
    HourlyOut,
    HourOut,
    LatestOut,
    LimitOut,
    ReadingOut,
    RollingOut,
    RollingPointOut,
    SeriesOut,
    TownOut,
)

ID_REGEX = f"^{ID_PATTERN.pattern}$"
MAX_POINTS = 10_000
DAY_S = 86400

START_DOC = "Start of the range (RFC 3339 with a zone, e.g. 2026-11-27T04:00:00Z)"
END_DOC = "End of the range, exclusive (default: now)"


def data_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["data"])
    auth = ctx.auth
    factory_path = Path(pattern=ID_REGEX, max_length=63, description="Factory id")
    device_path = Path(pattern=ID_REGEX, max_length=63, description="Device id")
    channel_path = Path(pattern=ID_REGEX, max_length=63, description="Channel id")

    def limits(ch: Channel) -> list[LimitOut]:
        today = ns_to_datetime(ctx.now()).astimezone(ctx.tz()).date()
        return [
            LimitOut(
                averaging=lim.averaging,
                max=lim.max,
                min=lim.min,
                unit=lim.unit,
                max_in_channel_unit=ctx.in_channel_unit(ch, lim.max, lim.unit),
                min_in_channel_unit=ctx.in_channel_unit(ch, lim.min, lim.unit),
                origin=lim.origin,
                kind=lim.kind,
                source=lim.source,
                confirmed=lim.confirmed,
            )
            for lim in ch.limits_on(today)
        ]

    def factory_out(f: Factory, state: tuple[str, int | None], parameters: Sequence[str] = ()) -> FactoryOut:
        return FactoryOut(
            state_parameters=list(parameters),
            id=f.id,
            name=f.name,
            name_th=f.name_th,
            diw_registration=f.diw_registration,
            district=f.district,
            estate=f.estate,
            lat=f.lat,
            lon=f.lon,
            public=f.public,
            state=state[0],  # type: ignore[arg-type]
            last_update=ns_to_iso(state[1]) if state[1] is not None else None,
            devices=[
                DeviceOut(
                    id=d.id,
                    kind=d.kind,
                    name=d.name,
                    channels=[
                        ChannelOut(
                            id=ch.id,
                            parameter=ch.parameter,
                            unit=ch.unit,
                            range=[ch.range_min, ch.range_max],
                            limits=limits(ch),
                        )
                        for ch in d.channels.values()
                    ],
                )
                for d in f.devices.values()
            ],
        )

    def aqi_for(factories: Sequence[Factory]) -> list[AqiOut]:
        now = ctx.now()
        out = []
        for f in factories:
            for d in f.devices.values():
                if d.kind != "ambient":
                    continue
                try:
                    points = ctx.sources.store.query_points(
                        Aqi.NAME, {FACTORY: f.id, DEVICE: d.id}, now - 26 * HOUR_NS, now + HOUR_NS
                    )
                except EitError as exc:
                    raise HTTPException(503, str(exc)) from exc
                overall = [p for p in points if p.tags.get(Aqi.PARAMETER) == Aqi.OVERALL]
                if not overall:
                    continue
                last = overall[-1]
                subs = {
                    str(p.tags.get(Aqi.PARAMETER)): float(p.fields[Aqi.VALUE])
                    for p in points
                    if p.ts_ns == last.ts_ns
                    and p.tags.get(Aqi.PARAMETER) != Aqi.OVERALL
                    and Aqi.VALUE in p.fields
                }
                out.append(
                    AqiOut(
                        factory=f.id,
                        device=d.id,
                        time=ns_to_iso(last.ts_ns),
                        value=float(last.fields.get(Aqi.VALUE, 0.0)),
                        band=str(last.fields.get(Aqi.BAND, "")),
                        sub_indices=subs,
                    )
                )
        return out

    @router.get(
        "/town",
        summary="The town: its factories' compliance states, the newest data, the Thai AQI",
        response_model=TownOut,
        responses=errors(401, 503),
    )
    def town(p: Principal = Depends(auth.principal)) -> TownOut:
        reg = ctx.registry
        factories = ctx.visible(p)
        states = ctx.compliance_states(factories)
        counts: dict[str, int] = dict.fromkeys(STATES, 0)
        for state, _ in states.values():
            counts[state] += 1
        newest = max((t for _, t in states.values() if t is not None), default=None)
        return TownOut(
            id=reg.town_id,
            name=reg.town_name,
            timezone=reg.timezone,
            factories=len(factories),
            last_update=ns_to_iso(newest) if newest is not None else None,
            states=counts,
            aqi=aqi_for(factories),
        )

    @router.get(
        "/factories",
        summary="Factories the caller may see, with devices, channels, limits in force and compliance state",
        response_model=list[FactoryOut],
        responses=errors(401, 503),
    )
    def factories(p: Principal = Depends(auth.principal)) -> list[FactoryOut]:
        visible = ctx.visible(p)
        full = ctx.public_states(visible)
        return [factory_out(f, (full[f.id][0], full[f.id][2]), full[f.id][1]) for f in visible]

    @router.get(
        "/factories/{factory}",
        summary="One factory",
        response_model=FactoryOut,
        responses=errors(401, 403, 404, 422, 503),
    )
    def factory(factory: str = factory_path, p: Principal = Depends(auth.principal)) -> FactoryOut:
        f = ctx.factory(p, factory)
        state, parameters, newest = ctx.public_states([f])[f.id]
        return factory_out(f, (state, newest), parameters)

    @router.get(
        "/latest",
        summary="Latest value of every channel of the factories the caller may see",
        response_model=list[LatestOut],
        responses=errors(401, 403, 404, 422, 503),
    )
    def latest(
        factory: str | None = Query(None, pattern=ID_REGEX, max_length=63, description="Only this factory"),
        p: Principal = Depends(auth.principal),
    ) -> list[LatestOut]:
        allowed = {f.id: f for f in ([ctx.factory(p, factory)] if factory else ctx.visible(p))}
        try:
            readings = ctx.sources.store.latest(factory)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        out = []
        for r in readings:
            f = allowed.get(r.factory)
            ch = ctx.registry.channel(r.factory, r.device, r.channel) if f else None
            if ch is None:
                continue
            out.append(
                LatestOut(
                    factory=r.factory,
                    device=r.device,
                    channel=r.channel,
                    time=ns_to_iso(r.ts_ns),
                    value=r.value,
                    flag=r.flag,
                    unit=ch.unit,
                )
            )
        return out

    @router.get(
        "/factories/{factory}/devices/{device}/channels/{channel}/readings",
        summary="Readings over a range, raw or aggregated into buckets (officers and the factory's operator)",
        description="Without `every`: the raw readings with their flags, at most `limit`. With `every`"
        " (seconds): buckets aligned to the epoch holding `fn` of the readings (only valid ones with"
        " `valid_only`); at most 10000 buckets.",
        response_model=SeriesOut,
        responses=errors(401, 403, 404, 422, 503),
    )
    def readings(
        factory: str = factory_path,
        device: str = device_path,
        channel: str = channel_path,
        start: datetime | None = Query(None, description=START_DOC + " (default: 24 h before end)"),
        end: datetime | None = Query(None, description=END_DOC),
        every: int | None = Query(None, ge=1, le=31 * DAY_S, description="Bucket length in seconds"),
        fn: Literal["mean", "min", "max", "count", "sum", "first", "last"] = Query(
            "mean", description="Aggregate of each bucket (with every)"
        ),
        valid_only: bool = Query(False, description="Aggregate only valid readings (flags N, S)"),
        limit: int = Query(5000, ge=1, le=MAX_POINTS, description="At most this many raw readings"),
        p: Principal = Depends(auth.logged_in),
    ) -> SeriesOut:
        assert fn in AGGREGATES
        f, d, ch = ctx.channel(p, factory, device, channel)
        start_ns, end_ns = time_range(start, end, ctx.now(), DAY_S, 400 * DAY_S)
        truncated = False
        try:
            if every is None:
                rows = ctx.sources.store.readings(f.id, d.id, ch.id, start_ns, end_ns, limit + 1)
                truncated = len(rows) > limit
                points = [
                    ReadingOut(time=ns_to_iso(r.ts_ns), value=r.value, flag=r.flag) for r in rows[:limit]
                ]
            else:
                buckets = (end_ns - start_ns) // (every * NS_PER_S) + 1
                if buckets > MAX_POINTS:
                    raise HTTPException(
                        422,
                        f"query parameter 'every': {every} s makes {buckets} buckets over this range;"
                        f" at most {MAX_POINTS}: ask for longer buckets or a shorter range",
                    )
                agg = ctx.sources.store.aggregate(f.id, d.id, ch.id, start_ns, end_ns, every, fn, valid_only)
                points = [ReadingOut(time=ns_to_iso(b.start_ns), value=b.value) for b in agg]
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return SeriesOut(
            factory=f.id,
            device=d.id,
            channel=ch.id,
            unit=ch.unit,
            start=ns_to_iso(start_ns),
            end=ns_to_iso(end_ns),
            every=every,
            fn=fn if every is not None else None,
            points=points,
            truncated=truncated,
        )

    def hour_out(ch: Channel, pt: Point) -> HourOut:
        fl = pt.fields

        def num(name: str) -> float | None:
            v = fl.get(name)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

        limit_unit = fl.get(Hourly.LIMIT_UNIT)
        return HourOut(
            time=ns_to_iso(pt.ts_ns),
            value=num(Hourly.VALUE),
            corrected=num(Hourly.CORRECTED),
            points=int(fl.get(Hourly.POINTS, 0)),
            quadrants=int(fl.get(Hourly.QUADRANTS, 0)),
            valid=fl.get(Hourly.VALID) is True,
            reason=str(fl.get(Hourly.REASON, "")),
            limit=num(Hourly.LIMIT),
            limit_unit=str(limit_unit) if limit_unit is not None else None,
            limit_in_channel_unit=ctx.in_channel_unit(ch, fl.get(Hourly.LIMIT), limit_unit),
            exceeded=fl.get(Hourly.EXCEEDED) is True,
            retroactive=fl.get(Hourly.RETROACTIVE) is True,
        )

    @router.get(
        "/factories/{factory}/devices/{device}/channels/{channel}/hourly",
        summary="Clock-hour averages with their validity and the 1-hour limit (published)",
        response_model=HourlyOut,
        responses=errors(401, 403, 404, 422, 503),
    )
    def hourly(
        factory: str = factory_path,
        device: str = device_path,
        channel: str = channel_path,
        start: datetime | None = Query(None, description=START_DOC + " (default: 48 h before end)"),
        end: datetime | None = Query(None, description=END_DOC),
        p: Principal = Depends(auth.principal),
    ) -> HourlyOut:
        f, d, ch = ctx.channel(p, factory, device, channel)
        start_ns, end_ns = time_range(start, end, ctx.now(), 2 * DAY_S, 400 * DAY_S)
        tags = series_tags((f.id, d.id, ch.id))
        try:
            points = ctx.sources.store.query_points(Hourly.NAME, tags, start_ns, end_ns)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return HourlyOut(
            factory=f.id,
            device=d.id,
            channel=ch.id,
            unit=ch.unit,
            start=ns_to_iso(start_ns),
            end=ns_to_iso(end_ns),
            hours=[hour_out(ch, pt) for pt in points],
        )

    @router.get(
        "/factories/{factory}/devices/{device}/channels/{channel}/rolling",
        summary="Rolling 8-hour or 24-hour averages (ambient air) with their limit (published)",
        response_model=RollingOut,
        responses=errors(401, 403, 404, 422, 503),
    )
    def rolling(
        factory: str = factory_path,
        device: str = device_path,
        channel: str = channel_path,
        window: Literal["8h", "24h"] = Query("24h", description="The window"),
        start: datetime | None = Query(None, description=START_DOC + " (default: 48 h before end)"),
        end: datetime | None = Query(None, description=END_DOC),
        p: Principal = Depends(auth.principal),
    ) -> RollingOut:
        f, d, ch = ctx.channel(p, factory, device, channel)
        start_ns, end_ns = time_range(start, end, ctx.now(), 2 * DAY_S, 400 * DAY_S)
        tags = {**series_tags((f.id, d.id, ch.id)), Rolling.WINDOW: window}
        try:
            points = ctx.sources.store.query_points(Rolling.NAME, tags, start_ns, end_ns)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        out = []
        for pt in points:
            fl = pt.fields
            value = fl.get(Rolling.VALUE)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            limit = fl.get(Rolling.LIMIT)
            limit_unit = fl.get(Rolling.LIMIT_UNIT)
            out.append(
                RollingPointOut(
                    time=ns_to_iso(pt.ts_ns),
                    value=float(value),
                    hours=int(fl.get(Rolling.HOURS, 0)),
                    valid=fl.get(Rolling.VALID) is True,
                    limit=float(limit)
                    if isinstance(limit, int | float) and not isinstance(limit, bool)
                    else None,
                    limit_unit=str(limit_unit) if limit_unit is not None else None,
                    limit_in_channel_unit=ctx.in_channel_unit(ch, limit, limit_unit),
                    exceeded=fl.get(Rolling.EXCEEDED) is True,
                )
            )
        return RollingOut(factory=f.id, device=d.id, channel=ch.id, window=window, unit=ch.unit, points=out)

    @router.get(
        "/aqi",
        summary="The newest Thai AQI of each ambient station the caller may see (published)",
        response_model=list[AqiOut],
        responses=errors(401, 503),
    )
    def aqi(p: Principal = Depends(auth.principal)) -> list[AqiOut]:
        return aqi_for(ctx.visible(p))

    return router
