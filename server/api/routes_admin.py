"""Log in and out, accounts (admins), dead letters (officers) and the compliance report
(officers; operators for their own factory)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter

from eit.errors import EitError
from eit.timeutil import NS_PER_S, ns_to_datetime, ns_to_iso
from server.accounts import AccountError, check_name
from server.api.auth import Principal, forbidden, unauthorized
from server.api.common import Context, bad_parameter, errors
from server.api.loginguard import LoginGuard, Refusal
from server.api.routes_data import ID_REGEX
from server.api.schemas import DeadLetterOut, DeadLettersOut, OfficerLinkIn, TokenOut, UserIn, UserOut

MAX_REPORT_DAYS = 366


def admin_router(ctx: Context, guard: LoginGuard, metrics: CollectorRegistry) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    auth = ctx.auth
    accounts = ctx.sources.accounts
    hashes = anyio.CapacityLimiter(guard.limits.concurrent_hashes)
    waiting = [0]  # logins waiting for or in a hash (the event loop's thread alone changes it)
    logins_refused = Counter(
        "eit_http_logins_refused",
        "Logins refused before any password check (429), by rule: address, account, busy",
        ["reason"],
        registry=metrics,
    )
    login_failures = Counter(
        "eit_http_login_failures", "Logins with a wrong name or password", registry=metrics
    )

    @router.post(
        "/token",
        tags=["accounts"],
        summary="Log in (OAuth2 password flow): a bearer token for the Authorization header",
        description="Failed logins are throttled per client address and per account"
        " (server/api/loginguard.py): 429 with Retry-After, in seconds.",
        response_model=TokenOut,
        responses=errors(400, 401, 422, 429, 503),
    )
    async def token(
        request: Request,
        username: Annotated[str, Form(min_length=1, max_length=63)],
        password: Annotated[str, Form(min_length=1, max_length=1024)],
    ) -> Any:
        address = request.client.host if request.client is not None else "unknown"
        if waiting[0] >= guard.limits.waiting_max:
            raise too_many(Refusal("busy", 1))  # before admit: a busy answer costs no attempt
        admitted = guard.admit(username, address)
        if isinstance(admitted, Refusal):
            raise too_many(admitted)
        waiting[0] += 1
        try:
            # In a worker thread, at most concurrent_hashes at once; the wait holds no thread.
            user = await anyio.to_thread.run_sync(accounts.authenticate, username, password, limiter=hashes)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        finally:
            waiting[0] -= 1
        if user is None:
            login_failures.inc()
            raise unauthorized("wrong user name or password")
        guard.succeeded(admitted)
        try:
            now = ctx.now()
            issued, expires = await anyio.to_thread.run_sync(accounts.issue_token, user, now, ctx.token_ttl_s)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return {
            "access_token": issued,
            "token_type": "bearer",
            "expires_in": int((expires - now) // NS_PER_S),
            "expires_at": ns_to_iso(expires),
            "user": user.to_json(),
        }

    def too_many(refusal: Refusal) -> HTTPException:
        logins_refused.labels(refusal.reason).inc()
        wait = refusal.retry_after_s
        text = {
            "address": f"too many logins from this address: try again in {wait} s",
            "account": f"too many failed logins for this account from this address: try again in {wait} s",
            "busy": f"the server is checking many logins at once: try again in {wait} s",
        }[refusal.reason]
        return HTTPException(429, text, headers={"Retry-After": str(wait)})

    @router.post(
        "/logout",
        tags=["accounts"],
        status_code=204,
        summary="Revoke the bearer token this request carries",
        responses=errors(401, 503),
    )
    def logout(p: Principal = Depends(auth.logged_in)) -> Response:
        assert p.token is not None
        try:
            accounts.revoke_token(p.token)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return Response(status_code=204)

    @router.get(
        "/me",
        tags=["accounts"],
        summary="The account of the bearer token",
        response_model=UserOut,
        responses=errors(401, 503),
    )
    def me(p: Principal = Depends(auth.logged_in)) -> Any:
        assert p.user is not None
        return p.user.to_json()

    @router.get(
        "/users",
        tags=["accounts"],
        summary="All accounts (admins)",
        response_model=list[UserOut],
        responses=errors(401, 403, 503),
    )
    def users(p: Principal = Depends(auth.admin)) -> Any:
        try:
            return [u.to_json() for u in accounts.list_users()]
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc

    @router.post(
        "/users",
        tags=["accounts"],
        status_code=201,
        summary="Create an account (admins)",
        response_model=UserOut,
        responses=errors(400, 401, 403, 409, 422, 503),
    )
    def add_user(body: UserIn, p: Principal = Depends(auth.admin)) -> Any:
        if body.role == "operator" and body.factory not in ctx.registry.factories:
            raise HTTPException(
                422, f"body field 'factory': no factory '{body.factory}' in the site registry"
            )
        check_registry_officer(body.officer)
        try:
            check_name(body.name)
            if accounts.get_user(body.name) is not None:
                raise HTTPException(409, f"user '{body.name}' exists already")
            user = accounts.add_user(
                body.name, body.role, body.password, ctx.now(), body.factory, body.officer
            )
        except AccountError as exc:
            raise HTTPException(422, f"body: {exc}") from exc
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return user.to_json()

    def check_registry_officer(officer: str | None) -> None:
        if officer is not None and officer not in ctx.registry.officers:
            known = ", ".join(ctx.registry.officers) or "none"
            raise HTTPException(
                422, f"body field 'officer': no officer '{officer}' in the site registry (it has: {known})"
            )

    @router.put(
        "/users/{name}/officer",
        tags=["accounts"],
        summary="Set the site registry's officer an account logs in as, or none (admins)",
        response_model=UserOut,
        responses=errors(400, 401, 403, 404, 409, 422, 503),
    )
    def set_officer(
        body: OfficerLinkIn,
        name: str = Path(max_length=63, description="User name"),
        p: Principal = Depends(auth.admin),
    ) -> Any:
        check_registry_officer(body.officer)
        try:
            if accounts.get_user(name) is None:
                raise HTTPException(404, f"no user '{name}'")
            return accounts.set_officer(name, body.officer).to_json()
        except AccountError as exc:
            raise HTTPException(409, str(exc)) from exc
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc

    @router.post(
        "/users/{name}/{action}",
        tags=["accounts"],
        summary="Disable or enable an account (admins); disabling revokes its tokens",
        response_model=UserOut,
        responses=errors(401, 403, 404, 409, 422, 503),
    )
    def set_disabled(
        name: str = Path(max_length=63, description="User name"),
        action: Literal["disable", "enable"] = Path(description="disable or enable"),
        p: Principal = Depends(auth.admin),
    ) -> Any:
        if action == "disable" and p.user is not None and name == p.user.name:
            raise HTTPException(409, "an admin cannot disable its own account")
        try:
            if accounts.get_user(name) is None:
                raise HTTPException(404, f"no user '{name}'")
            return accounts.set_disabled(name, action == "disable").to_json()
        except AccountError as exc:
            raise HTTPException(404, str(exc)) from exc
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc

    @router.get(
        "/dead-letters",
        tags=["operations"],
        summary="Rejected messages with their reasons, newest first (officers)",
        response_model=DeadLettersOut,
        responses=errors(401, 403, 422, 503),
    )
    def dead_letters(
        limit: int = Query(50, ge=1, le=1000, description="At most this many"),
        reason: str | None = Query(None, pattern="^[a-z_]{1,40}$", description="Only this reason"),
        p: Principal = Depends(auth.officer),
    ) -> Any:
        source = ctx.sources.deadletters
        if source is None:
            return {"counts": {}, "letters": []}
        try:
            letters = source.recent(limit, reason)
            counts = source.counts()
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return DeadLettersOut(
            counts=counts,
            letters=[
                DeadLetterOut(
                    id=d.id,
                    received_at=ns_to_iso(d.received_ns),
                    last_received_at=ns_to_iso(d.last_received_ns),
                    count=d.count,
                    topic=d.topic,
                    reason=d.reason,
                    detail=d.detail,
                    location=d.location,
                    payload=d.payload,
                )
                for d in letters
            ],
        )

    @router.get(
        "/reports/compliance",
        tags=["reports"],
        summary="The compliance report (as `eit report compliance`): officers; operators for their factory",
        description="Per factory and channel, for a period of local days: valid hours, completeness,"
        " each exceedance and each invalid hour with its reason. `format` json (default), csv or html.",
        responses={
            200: {
                "description": "The report",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/csv": {"schema": {"type": "string"}},
                    "text/html": {"schema": {"type": "string"}},
                },
            },
            **errors(401, 403, 422, 503),
        },
    )
    def compliance(
        date_from: date | None = Query(None, alias="from", description="First day (default: yesterday)"),
        date_to: date | None = Query(None, alias="to", description="Last day, included (default: from)"),
        factory: str | None = Query(None, pattern=ID_REGEX, max_length=63, description="Only this factory"),
        format: Literal["json", "csv", "html"] = Query("json", description="json, csv or html"),
        p: Principal = Depends(auth.logged_in),
    ) -> Any:
        assert p.user is not None
        if factory is not None and factory not in ctx.registry.factories:
            raise bad_parameter("factory", f"no factory '{factory}' in the site registry")
        if p.user.role == "operator":
            if factory is not None and factory != p.user.factory:
                raise forbidden(f"an operator gets the report of its own factory only ({p.user.factory})")
            factory = p.user.factory
        today = ns_to_datetime(ctx.now()).astimezone(ctx.tz()).date()
        first = date_from or today - timedelta(days=1)
        last = date_to or first
        if last < first:
            raise bad_parameter("to", f"{last} is before from {first}")
        if (last - first).days + 1 > MAX_REPORT_DAYS:
            raise bad_parameter("to", f"the period is longer than {MAX_REPORT_DAYS} days")
        if first.year < 1971 or last.year > 2199:
            raise bad_parameter("from", "give days between 1971 and 2199")
        try:
            report = ctx.sources.report(first, last, factory)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        if format == "json":
            return JSONResponse(report)
        text = ctx.sources.render_report(report, format)
        media = "text/csv" if format == "csv" else "text/html"
        return PlainTextResponse(text, media_type=f"{media}; charset=utf-8")

    return router
