"""The HTTP API app (FastAPI): health, Prometheus metrics and read access for the backbone.

The app reads through small protocols handed to :func:`create_app`, so it knows nothing of how
the ingest or the alert store are built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from eit.model import Reading
from eit.timeutil import ns_to_iso


class LatestSource(Protocol):
    def latest(self, factory: str | None = None, device: str | None = None) -> list[Reading]: ...


class AlertSource(Protocol):
    def list_json(self, state: str | None, factory: str | None, limit: int) -> list[dict[str, Any]]: ...

    def alert_json(self, alert_id: int) -> dict[str, Any] | None: ...


def create_app(
    health: Callable[[], tuple[bool, dict[str, Any]]],
    metrics: CollectorRegistry,
    latest: LatestSource | None = None,
    alerts: AlertSource | None = None,
) -> FastAPI:
    app = FastAPI(title="EIT Monitor", version="0.1.0")

    @app.get("/healthz", summary="Liveness and readiness of the process and what it depends on")
    def healthz() -> JSONResponse:
        ok, detail = health()
        return JSONResponse({"status": "ok" if ok else "degraded", **detail}, status_code=200 if ok else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    if latest is not None:
        source = latest

        @app.get("/api/v1/latest", summary="Latest value of every channel")
        def latest_values(factory: str | None = Query(None, max_length=63)) -> list[dict[str, Any]]:
            return [
                {
                    "factory": r.factory,
                    "device": r.device,
                    "channel": r.channel,
                    "time": ns_to_iso(r.ts_ns),
                    "value": r.value,
                    "flag": r.flag,
                }
                for r in source.latest(factory)
            ]

    if alerts is not None:
        alert_source = alerts

        @app.get("/api/v1/alerts", summary="Alerts, newest first")
        def list_alerts(
            state: str | None = Query(None, pattern="^(open|acknowledged|resolved|closed|active)$"),
            factory: str | None = Query(None, max_length=63),
            limit: int = Query(100, ge=1, le=1000),
        ) -> list[dict[str, Any]]:
            return alert_source.list_json(state, factory, limit)

        @app.get("/api/v1/alerts/{alert_id}", summary="One alert with its audit trail")
        def one_alert(alert_id: int) -> JSONResponse:
            found = alert_source.alert_json(alert_id)
            if found is None:
                return JSONResponse({"detail": f"no alert #{alert_id}"}, status_code=404)
            return JSONResponse(found)

    return app
