"""Alerts (cases): the inbox (search, filters and keyset paging: alerts/inbox.py), one alert with
its audit trail and the operator's responses, its exceedances, its notifications and how their
delivery went, the officers it can be assigned to (the site registry's duty officers of its
factory first), and the officers' actions: acknowledge, assign, comment, resolve, close. Operators
see their own factory's alerts and answer them with the cause and the corrective action."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response

from alerts.inbox import InboxFilter, terms
from alerts.model import Alert, LifecycleError, ResponseError
from alerts.notifiers.queue import Delivery, DeliveryQueue
from eit.errors import EitError
from server.accounts import OFFICER_ROLES
from server.api.auth import Principal, forbidden
from server.api.common import Context, bad_parameter, errors, to_ns
from server.api.routes_data import ID_REGEX
from server.api.schemas import (
    AlertDetailOut,
    AlertOut,
    AssignIn,
    CommentIn,
    ExceedanceOut,
    NoteIn,
    NotificationOut,
    OfficerOut,
    ResolveIn,
    ResponseIn,
    ResponseOut,
)

MAX_ALERT_ID = 2**62
Lang = Literal["th", "en"]
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
PAGE_HEADERS = {
    "Link": {
        "description": 'The next page, when there is one: `<...&before_id=N>; rel="next"`',
        "schema": {"type": "string"},
    },
    "X-Total-Count": {
        "description": "How many alerts the filters select, over every page",
        "schema": {"type": "integer"},
    },
}


def alerts_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["alerts"])
    auth = ctx.auth
    book = ctx.sources.alerts
    alert_id_path = Path(ge=1, le=MAX_ALERT_ID, description="Alert number")
    lang_query = Query("en", description="Language of the alert text (th or en)")

    def out(a: Alert, lang: str, responses: list[Any] | None = None) -> dict[str, Any]:
        data = a.to_json()
        data["text"] = ctx.sources.alert_text(a, lang)
        if responses is None:
            try:
                responses = book.responses(a.id)
            except EitError as exc:
                raise HTTPException(503, str(exc)) from exc
        data["responses"] = [r.to_json() for r in responses]
        return data

    def opened_bound(name: str, text: str | None, end: bool) -> int | None:
        """A day of the town (its start; the next day's start for an ``end``) or an RFC 3339 time."""
        if text is None:
            return None
        if _DAY.fullmatch(text):
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise bad_parameter(name, f"{text!r} is not a day (YYYY-MM-DD)") from None
            if day.year < 2000 or day.year > 2261:  # the contract's bounds (eit/bounds.py), roughly
                raise bad_parameter(name, f"out of range: {text} is not between 2000 and 2261")
            if end:
                day += timedelta(days=1)
            return to_ns(name, datetime.combine(day, time(), ctx.tz()), 0)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise bad_parameter(
                name, f"{text!r} is neither a day (YYYY-MM-DD) nor a time (e.g. 2026-11-27T04:00:00Z)"
            ) from None
        return to_ns(name, moment, 0)

    def fetch(p: Principal, alert_id: int) -> Alert:
        try:
            a = book.get(alert_id)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        if a is None:
            raise HTTPException(404, f"no alert #{alert_id}")
        f = ctx.registry.factories.get(a.factory)
        if p.user is not None and p.user.role == "operator" and (f is None or not p.sees(f)):
            raise forbidden(f"alert #{alert_id} belongs to another factory: an operator sees only its own")
        return a

    def act(call: Any, *args: Any) -> Alert:
        try:
            result: Alert = call(*args)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        except ValueError as exc:  # the lifecycle refuses (alerts.model.LifecycleError)
            raise HTTPException(409, str(exc)) from exc
        return result

    @router.get(
        "/alerts",
        summary="The inbox: alerts newest first, searched and filtered, a page at a time (officers:"
        " every factory; operators: their own)",
        description="Keyset paging: a page holds at most `limit` alerts; the `Link` header names the"
        " next page (the same query with `before_id`, the last id shown) and `X-Total-Count` says how"
        " many alerts the filters select.",
        response_model=list[AlertOut],
        responses={
            200: {"description": "A page of alerts", "headers": PAGE_HEADERS},
            **errors(401, 403, 422, 503),
        },
    )
    def list_alerts(
        request: Request,
        response: Response,
        state: Literal["open", "acknowledged", "resolved", "closed", "active"] | None = Query(
            None, description="Only this state (active: open or acknowledged)"
        ),
        condition: Literal["ongoing", "ended"] | None = Query(
            None, description="Only this condition, as the rules see it"
        ),
        factory: str | None = Query(None, pattern=ID_REGEX, max_length=63, description="Only this factory"),
        severity: Literal["warning", "critical"] | None = Query(None, description="Only this severity"),
        rule: str | None = Query(
            None, pattern="^[a-z0-9_]{1,40}$", description="Only this rule (limit, stale, spike, ...)"
        ),
        opened_from: str | None = Query(
            None,
            max_length=40,
            description="Opened at or after: a day of the town (YYYY-MM-DD, from its start) or a time"
            " (RFC 3339)",
        ),
        opened_to: str | None = Query(
            None,
            max_length=40,
            description="Opened before: a day of the town (YYYY-MM-DD, that day included) or a time"
            " (RFC 3339)",
        ),
        q: str = Query(
            "",
            max_length=200,
            description="Search: every word in the message, factory (its id or name), device or"
            " parameter, or the alert's number (#12)",
        ),
        before_id: int | None = Query(
            None, ge=1, le=MAX_ALERT_ID, description="The next page: alerts with an id below this one"
        ),
        limit: int = Query(100, ge=1, le=1000, description="At most this many"),
        lang: Lang = lang_query,
        p: Principal = Depends(auth.logged_in),
    ) -> list[dict[str, Any]]:
        assert p.user is not None
        if factory is not None and factory not in ctx.registry.factories:
            raise bad_parameter("factory", f"no factory '{factory}' in the site registry")
        if p.user.role == "operator":
            if factory is not None and factory != p.user.factory:
                raise forbidden(f"an operator sees only the alerts of its own factory ({p.user.factory})")
            factory = p.user.factory
        start_ns = opened_bound("opened_from", opened_from, end=False)
        end_ns = opened_bound("opened_to", opened_to, end=True)
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            raise bad_parameter("opened_to", "must be after opened_from")
        where = InboxFilter(
            state=state,
            condition=condition,
            severity=severity,
            factory=factory,
            rule=rule,
            opened_from_ns=start_ns,
            opened_to_ns=end_ns,
            text=q,
            text_factories=factories_named(terms(q)),
        )
        try:
            found, next_before = book.page(where, limit, before_id)
            total = book.count(where)
            responses = book.responses_for(a.id for a in found)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        response.headers["X-Total-Count"] = str(total)
        if next_before is not None:
            following = request.url.include_query_params(before_id=next_before)
            response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
        return [out(a, lang, responses[a.id]) for a in found]

    def factories_named(words: list[str]) -> dict[str, tuple[str, ...]]:
        """Each search word's factories by name (English or Thai) in the site registry."""
        named: dict[str, tuple[str, ...]] = {}
        for word in words:
            w = word.casefold()
            ids = tuple(
                f.id
                for f in ctx.registry.factories.values()
                if w in f.name.casefold() or w in f.name_th.casefold()
            )
            if ids:
                named[word] = ids
        return named

    @router.get(
        "/alerts/{alert_id}",
        summary="One alert with its audit trail and the operator's responses",
        response_model=AlertDetailOut,
        responses=errors(401, 403, 404, 422, 503),
    )
    def get_alert(
        alert_id: int = alert_id_path, lang: Lang = lang_query, p: Principal = Depends(auth.logged_in)
    ) -> dict[str, Any]:
        a = fetch(p, alert_id)
        try:
            audit = [e.to_json() for e in book.audit(alert_id)]
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return out(a, lang) | {"audit": audit}

    @router.post(
        "/alerts/{alert_id}/acknowledge",
        summary="Acknowledge an open alert (officers)",
        response_model=AlertOut,
        responses=errors(400, 401, 403, 404, 409, 422, 503),
    )
    def acknowledge(
        alert_id: int = alert_id_path,
        body: NoteIn | None = Body(None),
        lang: Lang = lang_query,
        p: Principal = Depends(auth.officer),
    ) -> dict[str, Any]:
        fetch(p, alert_id)
        note = body.note if body else ""
        return out(act(book.acknowledge, alert_id, p.name, ctx.now(), note), lang)

    @router.post(
        "/alerts/{alert_id}/assign",
        summary="Assign an alert to an officer account (officers)",
        response_model=AlertOut,
        responses=errors(400, 401, 403, 404, 409, 422, 503),
    )
    def assign(
        body: AssignIn,
        alert_id: int = alert_id_path,
        lang: Lang = lang_query,
        p: Principal = Depends(auth.officer),
    ) -> dict[str, Any]:
        fetch(p, alert_id)
        try:
            user = ctx.sources.accounts.get_user(body.assignee)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        if user is None or user.disabled or user.role not in OFFICER_ROLES:
            raise HTTPException(422, f"body field 'assignee': '{body.assignee}' is not an officer account")
        return out(act(book.assign, alert_id, p.name, user.name, ctx.now()), lang)

    @router.post(
        "/alerts/{alert_id}/comments",
        summary="Add a comment to an alert's audit trail (officers)",
        response_model=AlertOut,
        responses=errors(400, 401, 403, 404, 409, 422, 503),
    )
    def comment(
        body: CommentIn,
        alert_id: int = alert_id_path,
        lang: Lang = lang_query,
        p: Principal = Depends(auth.officer),
    ) -> dict[str, Any]:
        fetch(p, alert_id)
        if not body.text.strip():
            raise HTTPException(422, "body field 'text': a comment needs text")
        return out(act(book.add_note, alert_id, p.name, body.text.strip(), ctx.now()), lang)

    @router.post(
        "/alerts/{alert_id}/resolve",
        summary="Resolve a case, with a reason (officers); its condition stays the rules' to end",
        response_model=AlertOut,
        responses=errors(400, 401, 403, 404, 409, 422, 503),
    )
    def resolve(
        body: ResolveIn,
        alert_id: int = alert_id_path,
        lang: Lang = lang_query,
        p: Principal = Depends(auth.officer),
    ) -> dict[str, Any]:
        fetch(p, alert_id)
        if not body.reason.strip():
            raise HTTPException(422, "body field 'reason': resolving a case needs a reason")
        return out(act(book.resolve_id, alert_id, p.name, ctx.now(), body.reason), lang)

    @router.get(
        "/alerts/{alert_id}/exceedances",
        summary="The exceedances a case gathers: immutable records of legal periods above a limit",
        response_model=list[ExceedanceOut],
        responses=errors(401, 403, 404, 422, 503),
    )
    def case_exceedances(
        alert_id: int = alert_id_path, p: Principal = Depends(auth.logged_in)
    ) -> list[dict[str, Any]]:
        fetch(p, alert_id)
        try:
            return [e.to_json() for e in book.exceedances(case_id=alert_id)]
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc

    @router.get(
        "/exceedances",
        summary="Exceedances, newest period first (officers: every factory; operators: their own)",
        response_model=list[ExceedanceOut],
        responses=errors(401, 403, 422, 503),
    )
    def list_exceedances(
        factory: str | None = Query(None, pattern=ID_REGEX, max_length=63, description="Only this factory"),
        start: datetime | None = Query(None, description="Periods ending after this time (RFC 3339)"),
        end: datetime | None = Query(None, description="Periods starting before this time (RFC 3339)"),
        limit: int = Query(100, ge=1, le=1000, description="At most this many"),
        p: Principal = Depends(auth.logged_in),
    ) -> list[dict[str, Any]]:
        assert p.user is not None
        if factory is not None and factory not in ctx.registry.factories:
            raise bad_parameter("factory", f"no factory '{factory}' in the site registry")
        if p.user.role == "operator":
            if factory is not None and factory != p.user.factory:
                raise forbidden(
                    f"an operator sees only the exceedances of its own factory ({p.user.factory})"
                )
            factory = p.user.factory
        # Held to the contract's time bounds (eit/bounds.py), with a time zone.
        start_ns = to_ns("start", start, 0) if start is not None else None
        end_ns = to_ns("end", end, 0) if end is not None else None
        try:
            found = book.exceedances(factory=factory, start_ns=start_ns, end_ns=end_ns, limit=limit)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return [e.to_json() for e in found]

    @router.post(
        "/alerts/{alert_id}/close",
        summary="Close a resolved alert (supervisors and admins)",
        response_model=AlertOut,
        responses=errors(400, 401, 403, 404, 409, 422, 503),
    )
    def close(
        alert_id: int = alert_id_path,
        body: NoteIn | None = Body(None),
        lang: Lang = lang_query,
        p: Principal = Depends(auth.supervisor),
    ) -> dict[str, Any]:
        fetch(p, alert_id)
        note = body.note if body else ""
        return out(act(book.close_alert, alert_id, p.name, ctx.now(), note), lang)

    @router.post(
        "/alerts/{alert_id}/response",
        status_code=201,
        summary="The factory operator's cause and corrective action for an alert of its factory"
        " (not once the alert is closed: 409)",
        response_model=ResponseOut,
        responses=errors(400, 401, 403, 404, 409, 422, 503),
    )
    def respond(
        body: ResponseIn,
        alert_id: int = alert_id_path,
        p: Principal = Depends(auth.operator),
    ) -> dict[str, Any]:
        a = fetch(p, alert_id)
        try:
            # Kept beside the alert, and noted in its audit trail beside the officers' actions.
            response = book.add_response(
                alert_id, a.factory, p.name, body.cause, body.corrective_action, ctx.now()
            )
        except ResponseError as exc:
            raise HTTPException(422, f"body: {exc}") from exc
        except LifecycleError as exc:  # the alert was found above: closed since
            raise HTTPException(409, str(exc)) from exc
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return response.to_json()

    def deliveries(call: Any, *args: Any) -> list[dict[str, Any]]:
        queue = ctx.sources.notifications
        if queue is None:
            return []  # a process without notifiers
        try:
            found: list[Delivery] = call(queue, *args)
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        return [d.to_json() for d in found]

    @router.get(
        "/alerts/{alert_id}/notifications",
        summary="An alert's notifications: to whom, by which notifier, delivered, failing or expired,"
        " with the last error (officers)",
        response_model=list[NotificationOut],
        responses=errors(401, 403, 404, 422, 503),
    )
    def alert_notifications(
        alert_id: int = alert_id_path, p: Principal = Depends(auth.officer)
    ) -> list[dict[str, Any]]:
        fetch(p, alert_id)
        return deliveries(DeliveryQueue.for_alert, alert_id)

    @router.get(
        "/notifications",
        summary="Notifications by state, newest first; by default those in trouble: failing (pending"
        " after a failed attempt) or expired (officers)",
        response_model=list[NotificationOut],
        responses=errors(401, 403, 422, 503),
    )
    def notifications(
        state: Literal["troubled", "failing", "expired", "pending", "delivered"] = Query(
            "troubled", description="troubled: failing or expired"
        ),
        limit: int = Query(200, ge=1, le=1000, description="At most this many"),
        p: Principal = Depends(auth.officer),
    ) -> list[dict[str, Any]]:
        return deliveries(DeliveryQueue.listing, state, limit)

    @router.get(
        "/officers",
        summary="Officer accounts an alert can be assigned to, with the site registry's officer each"
        " logs in as; for a factory, its duty officers first (officers)",
        response_model=list[OfficerOut],
        responses=errors(401, 403, 422, 503),
    )
    def officers(
        factory: str | None = Query(
            None,
            pattern=ID_REGEX,
            max_length=63,
            description="The factory of the alert: the registry officers responsible for it come first",
        ),
        p: Principal = Depends(auth.officer),
    ) -> list[OfficerOut]:
        f = None
        if factory is not None:
            f = ctx.registry.factories.get(factory)
            if f is None:
                raise bad_parameter("factory", f"no factory '{factory}' in the site registry")
        try:
            users = ctx.sources.accounts.list_users()
        except EitError as exc:
            raise HTTPException(503, str(exc)) from exc
        found = []
        for u in users:
            if not u.is_officer or u.disabled:
                continue
            o = ctx.registry.officers.get(u.officer) if u.officer else None
            found.append(
                OfficerOut(
                    name=u.name,
                    role=u.role,
                    officer=u.officer,
                    officer_name=o.name if o else None,
                    on_duty=None if f is None else bool(o and o.covers(f)),
                )
            )
        # Duty officers first; then the other registry officers; then accounts of no registry officer.
        found.sort(key=lambda x: (not x.on_duty, x.officer is None, x.name))
        return found

    return router
