"""The operations endpoints: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

- ``/healthz``: is this process's own work going on? One ok / not ok per stage, nothing else
  (no factory, no dependency): public, and never 503 because a broker or store is down, so a
  service manager restarting on it never restarts the process for an outage it cannot fix.
- ``/readyz``: can it do its job? The broker, the store, the state database and the rules'
  effects, each with the reason when not, and every stage in detail. For officers (a bearer
  token of an officer, supervisor or admin), the metrics token, or a request from this machine.
- ``/metrics``: Prometheus, with the metrics token or from this machine (``http.metrics_public``
  opens it to everyone).

"This machine" is the client's address as uvicorn reports it: a loopback address, unless a
reverse proxy on the machine passes X-Forwarded-For (uvicorn trusts it from the addresses of
``http.trusted_proxies``, by default 127.0.0.1 and ::1);
``http.trust_loopback: false`` turns the rule off for a proxy that does not.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from server.accounts import OFFICER_ROLES
from server.api.auth import Auth, bearer, forbidden, unauthorized

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
Liveness = Callable[[], dict[str, bool]]


def from_this_machine(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ops_router(
    readiness: Readiness,
    liveness: Liveness | None,
    metrics: CollectorRegistry,
    auth: Auth | None,
    metrics_token: str | None,
    metrics_public: bool,
    trust_loopback: bool,
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    def has_metrics_token(token: str | None) -> bool:
        return (
            metrics_token is not None
            and token is not None
            and hmac.compare_digest(token.encode(), metrics_token.encode())
        )

    def trusted(request: Request, token: str | None) -> bool:
        return has_metrics_token(token) or (trust_loopback and from_this_machine(request))

    def may_read_metrics(request: Request, token: str | None = Depends(bearer)) -> None:
        if metrics_public or trusted(request, token):
            return
        if token is None:
            raise unauthorized(
                "metrics are served only with the metrics token (Authorization: Bearer) or to this machine"
            )
        raise forbidden("metrics are served only with the metrics token or to this machine")

    def may_read_readiness(request: Request, token: str | None = Depends(bearer)) -> None:
        if trusted(request, token):
            return
        if token is None:
            raise unauthorized(
                "readiness is shown only to officers: log in (POST /api/v1/token) and send the "
                "bearer token, or send the metrics token"
            )
        user = auth.accounts.user_for_token(token, auth.clock()) if auth is not None else None
        if user is None:
            raise unauthorized("the bearer token is unknown or has expired: log in again")
        if user.role not in OFFICER_ROLES:
            raise forbidden("readiness is shown only to officers (officer, supervisor, admin)")

    @router.get(
        "/healthz",
        summary="Liveness: whether each stage of this process is alive and not stuck",
        responses={503: {"description": "A stage is dead or stuck"}},
    )
    def healthz() -> JSONResponse:
        stages = liveness() if liveness is not None else {}
        ok = all(stages.values())
        body = {
            "status": "ok" if ok else "not ok",
            "stages": {name: "ok" if alive else "not ok" for name, alive in stages.items()},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get(
        "/readyz",
        summary="Readiness: the broker, the store, the state database and the stages, with reasons",
        dependencies=[Depends(may_read_readiness)],
        responses={
            401: {"description": "No token: log in as an officer, or send the metrics token"},
            403: {"description": "The account is not an officer's"},
            503: {"description": "Something this process depends on is not usable; the body says what"},
        },
    )
    def readyz() -> JSONResponse:
        ok, detail = readiness()
        return JSONResponse({"status": "ok" if ok else "not ok", **detail}, status_code=200 if ok else 503)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        dependencies=[Depends(may_read_metrics)],
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            401: {"description": "No metrics token, and not from this machine"},
            403: {"description": "Not the metrics token"},
        },
    )
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return router
