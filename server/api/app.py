"""The HTTP API app (FastAPI) and the web pages it serves.

The app reads through small protocols handed to :func:`create_app` (eit/api/sources.py), so it
knows nothing of how the ingest, the store or the alert state are built.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from eit import __version__
from eit.errors import EitError
from server.api.auth import Auth
from server.api.common import Context
from server.api.guards import install_guards
from server.api.loginguard import LoginGuard, LoginLimits
from server.api.routes_ops import Liveness, Readiness, ops_router
from server.api.sources import ApiSources

DESCRIPTION = """
Real-time pollution monitoring of an eco-industrial town: factories, their monitors and
readings, the clock-hour averages the law is written in, the Thai AQI, alerts and their
handling, compliance reports.

**Who may do what.** Without a token: the published data of the factories marked public
(latest values, hourly and rolling averages with their limits, AQI, compliance state).
With a bearer token from `POST /api/v1/token` (OAuth2 password flow): an *operator* sees its own
factory in full (raw readings, alerts, the compliance report) and answers its alerts with the
cause and the corrective action; an *officer* sees every factory and acknowledges, assigns,
comments on and resolves alerts; a *supervisor* also closes them; an *admin* also manages
accounts.

**Errors** are JSON `{"detail": "..."}`, the message naming the parameter or the rule;
invalid parameters answer 422 with `errors` listing each one.
"""


@dataclass(frozen=True, slots=True)
class ApiSettings:
    token_ttl_s: float = 12 * 3600.0
    pages: bool = True
    # /metrics and /readyz (server/api/routes_ops.py).
    metrics_token: str | None = field(default=None, repr=False)
    metrics_public: bool = False
    trust_loopback: bool = True
    # Login throttling and hashing (server/api/loginguard.py).
    login: LoginLimits = field(default_factory=LoginLimits)
    # Request bodies larger than this are refused (413) before they are read or anyone is
    # authenticated (server/api/guards.py).
    max_body_bytes: int = 1024 * 1024


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    items = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        where = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or where
        problem = str(err.get("msg", "invalid"))
        items.append({"in": where, "parameter": name, "problem": problem})
    text = "; ".join(
        f"{i['in']} parameter '{i['parameter']}': {i['problem']}"
        if i["in"] in ("query", "path", "header", "cookie")
        else f"{i['in']} field '{i['parameter']}': {i['problem']}"
        for i in items
    )
    return text, items


def create_app(
    readiness: Readiness,
    metrics: CollectorRegistry,
    sources: ApiSources | None = None,
    settings: ApiSettings | None = None,
    *,
    liveness: Liveness | None = None,
) -> FastAPI:
    """The app. ``readiness`` answers ``/readyz`` (what the process depends on); ``liveness``
    answers ``/healthz`` (its stages; without it, only that the process answers)."""
    settings = settings or ApiSettings()
    app = FastAPI(
        title="EIT Monitor",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served below from vendored files: nothing is loaded from the internet
        redoc_url=None,
    )

    requests_total = Counter(
        "eit_http_requests",
        "HTTP requests served, by route and status",
        ["method", "route", "status"],
        registry=metrics,
    )
    latency = Histogram(
        "eit_http_request_duration_seconds",
        "Time to answer an HTTP request, by route",
        ["route"],
        registry=metrics,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    )

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            requests_total.labels(request.method, name, str(status)).inc()
            latency.labels(name).observe(time.perf_counter() - started)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        text, items = _validation_message(exc)
        return JSONResponse({"detail": text, "errors": jsonable_encoder(items)}, status_code=422)

    @app.exception_handler(EitError)
    async def unavailable(request: Request, exc: EitError) -> JSONResponse:
        return JSONResponse({"detail": f"a store cannot be reached: {exc}"}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=headers)

    auth = Auth(sources.accounts, sources.clock) if sources is not None else None
    # The duties' PDF reports (server/api/routes_duties.py) have their own, larger limit.
    duties = sources.duties if sources is not None else None
    uploads = {"/api/v1/duties/attachments": duties.rules.attachment_max_bytes} if duties is not None else {}
    install_guards(app, settings.max_body_bytes, auth, metrics, uploads)
    app.include_router(
        ops_router(
            readiness,
            liveness,
            metrics,
            auth,
            settings.metrics_token,
            settings.metrics_public,
            settings.trust_loopback,
        )
    )

    if sources is not None:
        from server.api.routes_admin import admin_router
        from server.api.routes_alerts import alerts_router
        from server.api.routes_data import data_router

        assert auth is not None
        ctx = Context(sources, auth, settings.token_ttl_s)
        app.include_router(data_router(ctx))
        app.include_router(alerts_router(ctx))
        app.include_router(admin_router(ctx, LoginGuard(settings.login), metrics))
        # Town indicators and the open-data package.
        from server.api.routes_indicators import indicators_router

        app.include_router(indicators_router(ctx))
        from server.api.routes_evidence import evidence_router

        app.include_router(evidence_router(ctx))
        from server.api.routes_prefs import prefs_router

        app.include_router(prefs_router(ctx))
        from server.api.routes_duties import duties_router

        app.include_router(duties_router(ctx))
        from server.api.routes_views import views_router

        app.include_router(views_router(ctx))
        if settings.pages:
            from server.api.pages import mount_pages

            mount_pages(app, sources.registry)
    return app
