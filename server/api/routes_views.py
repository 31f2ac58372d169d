"""What the charts need beyond the stored averages: the running clock hour (provisional, for
everyone who may see the factory, the public included) and the chart's view as a file (CSV or
XLSX, with UTC and local times, the unit and basis in the headers, each invalid hour's reason).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from alerts.report import neutralise
from alerts.windows import HOUR_NS, accumulate
from eit.errors import EitError
from eit.glossary import glossary
from eit.model import ID_PATTERN
from eit.registry import Channel, Device
from eit.storeschema import Hourly, Rolling, series_tags
from eit.timeutil import ns_to_datetime, ns_to_iso
from server.api.auth import Principal
from server.api.common import Context, errors, time_range

ID_REGEX = ID_PATTERN.pattern
DAY_S = 86400


class RunningHourOut(BaseModel):
    factory: str
    device: str
    channel: str
    unit: str
    start: str = Field(description="Start of the running clock hour (UTC)")
    as_of: str = Field(description="The moment the value was computed (UTC)")
    value: float | None = Field(description="Mean of the minute means so far, as measured")
    corrected: float | None = Field(description="The same corrected to the reference O2, where one applies")
    basis: Literal["corrected", "measured"] = Field(
        description="What `corrected` is compared with the limit on"
    )
    o2_reference_percent: float | None
    valid_minutes: int
    points: int
    limit_in_channel_unit: float | None = Field(
        description="The 1-hour limit in force, in the channel's unit"
    )
    above_limit: bool = Field(description="Provisional: the running hour is above the 1-hour limit so far")
    provisional: bool = Field(True, description="Always true: the hour has not closed")


def _o2_channel(device: Device, channel: Channel) -> str | None:
    """The device's O2 channel when this channel's values are shown at a reference O2."""
    if glossary().shown_o2_reference(channel.unit, channel.o2_reference_percent) is None:
        return None
    return next((c.id for c in device.channels.values() if c.parameter == "o2"), None)


def views_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["data"])
    factory_path = Path(pattern=ID_REGEX, max_length=63, description="Factory id")
    device_path = Path(pattern=ID_REGEX, max_length=63, description="Device id")
    channel_path = Path(pattern=ID_REGEX, max_length=63, description="Channel id")

    @router.get(
        "/factories/{factory}/devices/{device}/channels/{channel}/running",
        summary="The running clock hour so far, provisional (published)",
        description="The mean of the minute means of the valid readings since the hour began (corrected"
        " to the reference O2 where the standard has one) against the 1-hour limit: what the hour will"
        " be if it closes now. Never a verdict: the hour's legal average is the one the rules store when"
        " it closes.",
        response_model=RunningHourOut,
        responses=errors(401, 403, 404, 422, 503),
    )
    def running(
        factory: str = factory_path,
        device: str = device_path,
        channel: str = channel_path,
        p: Principal = Depends(ctx.auth.principal),
    ) -> RunningHourOut:
        f, d, ch = ctx.channel(p, factory, device, channel)
        now = ctx.now()
        start = now - now % HOUR_NS
        o2_id = _o2_channel(d, ch)
        o2_ref = ch.o2_reference_percent if o2_id else None
        try:
            readings = ctx.sources.store.readings(f.id, d.id, ch.id, start, now + 1)
            o2 = (
                {
                    r.ts_ns: (r.value, r.flag)
                    for r in ctx.sources.store.readings(f.id, d.id, o2_id, start, now + 1)
                }
                if o2_id
                else None
            )
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        acc = accumulate(start, ((r.ts_ns, r.value, r.flag) for r in readings), o2, o2_ref)
        today = ns_to_datetime(now).astimezone(ctx.tz()).date()
        hourly_limit = next((lim for lim in ch.limits_on(today) if lim.averaging == "1h"), None)
        limit = ctx.in_channel_unit(ch, hourly_limit.max, hourly_limit.unit) if hourly_limit else None
        corrected = acc.mean_corrected()
        return RunningHourOut(
            factory=f.id,
            device=d.id,
            channel=ch.id,
            unit=ch.unit,
            start=ns_to_iso(start),
            as_of=ns_to_iso(now),
            value=acc.mean_raw(),
            corrected=corrected,
            basis="corrected" if o2_ref is not None else "measured",
            o2_reference_percent=o2_ref,
            valid_minutes=acc.valid_minutes,
            points=acc.points,
            limit_in_channel_unit=limit,
            above_limit=corrected is not None and limit is not None and corrected > limit,
        )

    @router.get(
        "/factories/{factory}/devices/{device}/channels/{channel}/export",
        summary="The chart's view as CSV or XLSX (published)",
        description="The hourly averages of the range (or the rolling window's), one row per clock hour"
        " of the range: UTC and local start, the average with its basis, the measured average, valid or"
        " not with the reason (`no data` where nothing was stored), the limit and whether it was"
        " exceeded. Headers carry the unit and basis.",
        responses={
            200: {
                "description": "The file",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                        "schema": {"type": "string", "format": "binary"}
                    },
                },
            },
            **errors(401, 403, 404, 422, 503),
        },
    )
    def export(
        factory: str = factory_path,
        device: str = device_path,
        channel: str = channel_path,
        start: datetime | None = Query(None, description="Start of the range (default: 48 h before end)"),
        end: datetime | None = Query(None, description="End of the range, exclusive (default: now)"),
        window: Literal["1h", "8h", "24h"] = Query("1h", description="1h: clock hours; 8h, 24h: rolling"),
        format: Literal["csv", "xlsx"] = Query("csv", description="csv or xlsx"),
        lang: Literal["th", "en"] = Query("en", description="Language of the XLSX headers"),
        p: Principal = Depends(ctx.auth.principal),
    ) -> Response:
        f, d, ch = ctx.channel(p, factory, device, channel)
        start_ns, end_ns = time_range(start, end, ctx.now(), 2 * DAY_S, 400 * DAY_S)
        first = start_ns - start_ns % HOUR_NS
        tags = series_tags((f.id, d.id, ch.id))
        try:
            if window == "1h":
                points = {
                    pt.ts_ns: pt.fields
                    for pt in ctx.sources.store.query_points(Hourly.NAME, tags, first, end_ns)
                }
            else:
                points = {
                    pt.ts_ns: pt.fields
                    for pt in ctx.sources.store.query_points(
                        Rolling.NAME, {**tags, Rolling.WINDOW: window}, first, end_ns
                    )
                }
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        o2_ref = ch.o2_reference_percent if window == "1h" and _o2_channel(d, ch) else None
        g = glossary()
        basis_en = g.basis(ch.unit, o2_ref, "en").replace("₂", "2")
        header = [
            "time_utc",
            "time_local",
            f"average ({basis_en})",
            f"measured_average ({ch.unit})",
            "valid",
            "reason",
            f"limit ({ch.unit})",
            "exceeded",
        ]
        rows: list[list[Any]] = []
        tz = ctx.tz()
        for h in range(first, end_ns, HOUR_NS):
            fl = points.get(h)
            local = ns_to_datetime(h).astimezone(tz).isoformat()
            if fl is None:
                rows.append([ns_to_iso(h), local, None, None, False, "no data", None, False])
                continue
            if window == "1h":
                measured = fl.get(Hourly.VALUE)
                avg = fl.get(Hourly.CORRECTED) if o2_ref is not None else measured
                limit = ctx.in_channel_unit(ch, fl.get(Hourly.LIMIT), fl.get(Hourly.LIMIT_UNIT))
                reason = str(fl.get(Hourly.REASON, ""))
            else:
                avg = measured = fl.get(Rolling.VALUE)
                limit = ctx.in_channel_unit(ch, fl.get(Rolling.LIMIT), fl.get(Rolling.LIMIT_UNIT))
                reason = "" if fl.get(Rolling.VALID) is True else "too few valid hours in the window"
            valid = fl.get(Hourly.VALID) is True
            exceeded = fl.get(Hourly.EXCEEDED) is True
            rows.append([ns_to_iso(h), local, avg, measured, valid, reason, limit, exceeded])
        name = f"{f.id}-{d.id}-{ch.id}-{window}-{ns_to_iso(first)[:10]}-{ns_to_iso(end_ns)[:10]}.{format}"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        if format == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                writer.writerow(["" if v is None else neutralise(v) for v in row])
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=disposition)
        return Response(
            _xlsx(header, rows, f"{f.id} {d.id} {ch.id}", g.basis(ch.unit, o2_ref, lang), g.reason, lang),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers=disposition,
        )

    return router


def _xlsx(header: list[str], rows: list[list[Any]], title: str, basis: str, reason: Any, lang: str) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(
        out,
        {
            "in_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    sheet = book.add_worksheet(title[:31].replace("/", " "))
    bold = book.add_format({"bold": True})
    bad = book.add_format({"font_color": "#b00000", "bold": True})
    sheet.write_string(0, 0, basis, bold)
    for col, text in enumerate([*header, "reason (th)" if lang == "th" else "reason (as recorded)"]):
        sheet.write_string(1, col, text, bold)
    for r, row in enumerate(rows, start=2):
        for col, v in enumerate(row):
            if v is None:
                continue
            if isinstance(v, bool):
                sheet.write_boolean(r, col, v)
            elif isinstance(v, int | float):
                sheet.write_number(r, col, float(v), bad if col == 2 and row[7] is True else None)
            else:
                sheet.write_string(r, col, str(neutralise(v)))
        sheet.write_string(r, len(row), str(neutralise(reason(row[5], lang))))
    sheet.set_column(0, 1, 26)
    sheet.set_column(2, 8, 18)
    sheet.freeze_panes(2, 0)
    book.close()
    return out.getvalue()
