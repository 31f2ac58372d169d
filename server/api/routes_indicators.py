"""The town indicators and the open-data package. The public sees the public factories' figures
("N of M factories"); an officer may ask for the whole town (``scope=town``). The open-data
package is public: the public factories only, under the registry's licence."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from alerts.indicators import scoreboard
from alerts.indicators_render import render
from eit.errors import EitError
from eit.timeutil import ns_to_datetime
from server.api.auth import Principal, forbidden
from server.api.common import Context, bad_parameter, errors
from server.opendata import build_package, zip_package

MAX_DAYS = 3 * 366
RESOURCE_REGEX = "^[a-z][a-z0-9-]{0,62}$"


def indicators_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["indicators"])
    auth = ctx.auth

    def period(first: date | None, last: date | None) -> tuple[date, date]:
        """Default: from the first day of last year's month to today (13 months)."""
        today = ns_to_datetime(ctx.now()).astimezone(ctx.tz()).date()
        last = last or today
        first = first or date(last.year - 1, last.month, 1)
        if last < first:
            raise bad_parameter("to", f"{last} is before from {first}")
        if (last - first).days + 1 > MAX_DAYS:
            raise bad_parameter("to", f"the period is longer than {MAX_DAYS} days")
        if first.year < 2000 or last.year > 2199:
            raise bad_parameter("from", "give days between 2000 and 2199")
        return first, last

    date_from = Query(None, alias="from", description="First day (default: 12 months before to)")
    date_to = Query(None, alias="to", description="Last day, included (default: today)")

    @router.get(
        "/indicators",
        summary="The town indicators: each month's and year's value, target and trajectory",
        description="The public factories' figures (`scope=public`, the default for everyone but"
        " officers), or the whole town's for officers (`scope=town`). Each period says how many"
        " factories contributed of how many are in scope and registered. `format` json, csv or html.",
        responses={
            200: {
                "description": "The scoreboard",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/csv": {"schema": {"type": "string"}},
                    "text/html": {"schema": {"type": "string"}},
                },
            },
            **errors(403, 422, 503),
        },
    )
    def indicators(
        first: date | None = date_from,
        last: date | None = date_to,
        agency: str | None = Query(None, max_length=63, description="Only the indicators this agency owns"),
        scope: Literal["public", "town"] | None = Query(
            None, description="public (public factories) or town (every factory: officers)"
        ),
        format: Literal["json", "csv", "html"] = Query("json", description="json, csv or html"),
        p: Principal = Depends(auth.principal),
    ) -> Any:
        wanted = scope or ("town" if p.is_officer else "public")
        if wanted == "town" and not p.is_officer:
            raise forbidden("the whole town's figures are for officers; the public sees scope=public")
        first_day, last_day = period(first, last)
        try:
            board = scoreboard(
                ctx.registry, ctx.sources.store, first_day, last_day, wanted == "public", agency
            )
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        except ValueError as exc:
            raise bad_parameter("agency", str(exc)) from exc
        if format == "json":
            return JSONResponse(board)
        media = "text/csv" if format == "csv" else "text/html"
        return PlainTextResponse(render(board, format), media_type=f"{media}; charset=utf-8")

    @router.get(
        "/open-data.zip",
        summary="The open-data package (Frictionless Data Package) as one zip file",
        description="datapackage.json and one CSV file per resource: hourly averages, Thai AQI, daily"
        " completeness and the town indicators of the public factories, for a period of local days.",
        responses={
            200: {
                "description": "The package",
                "content": {"application/zip": {"schema": {"type": "string"}}},
            },
            **errors(422, 503),
        },
    )
    def open_data_zip(first: date | None = date_from, last: date | None = date_to) -> Response:
        first_day, last_day = period(first, last)
        try:
            body = zip_package(ctx.registry, ctx.sources.store, first_day, last_day)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        name = f"{ctx.registry.town_id}-open-data-{first_day}-{last_day}.zip"
        return Response(
            body,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @router.get(
        "/open-data/datapackage.json",
        summary="The open-data package's descriptor, its resources linked to their CSV files here",
        description="What a CKAN portal or any Data Package reader takes: each resource's `path` is the"
        " URL of its CSV file on this server for the same period.",
        responses={200: {"description": "datapackage.json"}, **errors(422, 503)},
    )
    def open_data_descriptor(
        request: Request, first: date | None = date_from, last: date | None = date_to
    ) -> JSONResponse:
        first_day, last_day = period(first, last)
        try:
            package, _ = build_package(ctx.registry, ctx.sources.store, first_day, last_day)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        for resource in package["resources"]:
            url = request.url_for("open_data_resource", resource=resource["name"])
            resource["path"] = str(url.include_query_params(**{"from": str(first_day), "to": str(last_day)}))
        return JSONResponse(package)

    @router.get(
        "/open-data/{resource}.csv",
        name="open_data_resource",
        summary="One resource of the open-data package, as CSV",
        responses={
            200: {"description": "The CSV file", "content": {"text/csv": {"schema": {"type": "string"}}}},
            **errors(404, 422, 503),
        },
    )
    def open_data_resource(
        resource: str, first: date | None = date_from, last: date | None = date_to
    ) -> PlainTextResponse:
        first_day, last_day = period(first, last)
        try:
            _, resources = build_package(ctx.registry, ctx.sources.store, first_day, last_day)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        found = next((r for r in resources if r.name == resource), None)
        if found is None:
            names = ", ".join(r.name for r in resources)
            raise HTTPException(404, f"no resource '{resource}' in the package ({names})")
        return PlainTextResponse(found.csv_text(), media_type="text/csv; charset=utf-8")

    return router
