"""Duties of WPMS and CEMS monitors (alerts/duties/): notices of malfunctions and planned
shutdowns, an officer's decision on a shutdown window, repairs, lab checks of online BOD/COD
against grab samples, substitute stack tests, attached reports (PDF), reminders and the duties
report; and the integrity findings with the officers' dispositions, for officers only.

Operators file and read their own factory's records; officers read every factory's, accept or
reject shutdown windows and dispose of integrity findings. The public sees none of it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from alerts.duties import DutiesJob
from alerts.duties.model import CEMS, DISPOSITIONS, WPMS, DutyError, NotFound, Notice
from alerts.duties.report import duties_report, integrity_section, online_value_at
from eit.errors import EitError
from eit.registry import Factory
from server.api.auth import Principal, forbidden
from server.api.common import Context, bad_parameter, errors, to_ns

MAX_ID = 2**62


def id_path() -> Any:
    """A record number in a path (a new one per route: FastAPI binds it to the parameter's name)."""
    return Path(ge=1, le=MAX_ID)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoticeIn(_Body):
    system: Literal["wpms", "cems"]
    kind: Literal["malfunction", "shutdown"]
    factory: str = Field(max_length=100)
    device: str = Field(max_length=100)
    start: datetime
    end: datetime | None = None
    cause: str = Field("", max_length=4000)


class DecisionIn(_Body):
    note: str = Field("", max_length=4000)


class FixIn(_Body):
    fixed_at: datetime
    note: str = Field("", max_length=4000)


class LabCheckIn(_Body):
    factory: str = Field(max_length=100)
    device: str = Field(max_length=100)
    channel: str = Field(max_length=100)
    sampled_at: datetime
    lab_value: float = Field(ge=0, lt=1e9, description="T: the lab's value of the grab sample")
    laboratory: str = Field("", max_length=4000)
    attachment_id: int | None = Field(None, ge=1, le=MAX_ID)


Measured = Annotated[float, Field(allow_inf_nan=False, ge=-1e9, le=1e9)]
ChannelName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class StackTestIn(_Body):
    notice_id: int = Field(ge=1, le=MAX_ID)
    tested_at: datetime
    results: dict[ChannelName, Measured] = Field(
        max_length=50, description="channel -> measured value, in the channel's unit"
    )
    laboratory: str = Field("", max_length=4000)
    attachment_id: int | None = Field(None, ge=1, le=MAX_ID)


class DispositionIn(_Body):
    disposition: Literal["confirmed", "dismissed", "inspect"]
    note: str = Field("", max_length=4000)


class IntegrityRunIn(_Body):
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")


MAX_REPORT_DAYS = 366
# The error answers of every route here (400: a body that is not UTF-8 JSON; 401 for a token
# that is unknown or expired, even on the public route).
ANSWERS = errors(400, 401, 403, 404, 422, 503)
MAX_INTEGRITY_DAYS = 92  # a quarter: the analytics read every minute of every stack device


def check_period(first: date, last: date, max_days: int, where: str) -> None:
    if last < first:
        raise bad_parameter("to", f"{last} is before from ({first})", where)
    if first.year < 2000 or last.year > 2200:
        raise bad_parameter("from", "give days between 2000 and 2200", where)
    if (last - first).days + 1 > max_days:
        raise bad_parameter("to", f"the period is longer than {max_days} days", where)


def duties_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["duties"])
    auth = ctx.auth

    def job() -> DutiesJob:
        if ctx.sources.duties is None:
            raise HTTPException(503, "the duties are not available in this process")
        return ctx.sources.duties

    def own(p: Principal, factory_id: str) -> Factory:
        f = ctx.registry.factories.get(factory_id)
        if f is None:
            raise HTTPException(404, f"no factory '{factory_id}'")
        if not p.sees(f):
            raise forbidden(f"an operator sees only its own factory ({p.user.factory if p.user else ''})")
        return f

    def scope(p: Principal, factory: str | None) -> str | None:
        """The factory an operator is limited to; an officer's filter as given."""
        if p.user is not None and p.user.role == "operator":
            if factory is not None and factory != p.user.factory:
                raise forbidden(f"an operator sees only its own factory ({p.user.factory})")
            return p.user.factory
        if factory is not None:
            own(p, factory)
        return factory

    def fail(exc: Exception) -> HTTPException:
        if isinstance(exc, NotFound):
            return HTTPException(404, str(exc))
        if isinstance(exc, DutyError):
            return HTTPException(422, f"body: {exc}")
        if isinstance(exc, EitError):
            return HTTPException(503, str(exc))
        raise exc

    def monitor(f: Factory, device: str, system: str) -> None:
        d = f.devices.get(device)
        if d is None:
            raise HTTPException(404, f"factory '{f.id}' has no device '{device}'")
        if system == WPMS and not (f.wpms and d.kind == "effluent"):
            raise bad_parameter(
                "device",
                f"{f.id}/{device} is no WPMS monitor (a `wpms: true` factory's effluent device)",
                "body",
            )
        if system == CEMS and not (f.cems and d.kind == "stack"):
            raise bad_parameter(
                "device", f"{f.id}/{device} is no CEMS (a `cems: true` factory's stack device)", "body"
            )

    # -- notices -------------------------------------------------------------------------------------
    @router.get(
        "/duties/notices",
        summary="Malfunction and shutdown notices, newest first (officers: every factory;"
        " operators: their own)",
        responses=ANSWERS,
    )
    def list_notices(
        factory: str | None = Query(None, max_length=100),
        kind: Literal["malfunction", "shutdown"] | None = None,
        state: Literal["open", "fixed", "filed", "accepted", "rejected"] | None = None,
        limit: int = Query(200, ge=1, le=1000),
        p: Principal = Depends(auth.logged_in),
    ) -> list[dict[str, Any]]:
        try:
            found = job().duties.notices(scope(p, factory), kind=kind, state=state, limit=limit)
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        return [n.to_json() for n in found]

    @router.post(
        "/duties/notices",
        status_code=201,
        summary="File a malfunction or planned-shutdown notice of a WPMS or CEMS monitor",
        responses=ANSWERS,
    )
    def file_notice(body: NoticeIn, p: Principal = Depends(auth.logged_in)) -> dict[str, Any]:
        f = own(p, body.factory)
        monitor(f, body.device, body.system)
        start = to_ns("start", body.start, 0)
        end = to_ns("end", body.end, 0) if body.end is not None else None
        try:
            n = job().duties.file_notice(
                body.system, body.kind, f.id, body.device, start, end, body.cause, p.name, ctx.now()
            )
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        return n.to_json()

    def notice_for(p: Principal, notice_id: int) -> Notice:
        try:
            n = job().duties.notice(notice_id)
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        f = ctx.registry.factories.get(n.factory)
        if f is None or not p.sees(f):
            raise forbidden(f"notice #{notice_id} belongs to another factory: an operator sees only its own")
        return n

    @router.get(
        "/duties/notices/{notice_id}",
        summary="One notice with its audit trail and substitute stack tests",
        responses=ANSWERS,
    )
    def get_notice(notice_id: int = id_path(), p: Principal = Depends(auth.logged_in)) -> dict[str, Any]:
        n = notice_for(p, notice_id)
        d = job().duties
        return n.to_json() | {
            "audit": [a.to_json() for a in d.audit(f"notice/{notice_id}")],
            "stack_tests": [t.to_json() for t in d.stack_tests([notice_id])],
        }

    def decide(notice_id: int, accept: bool, note: str, p: Principal) -> dict[str, Any]:
        j = job()
        try:
            n = j.duties.decide_shutdown(notice_id, accept, p.name, ctx.now(), note)
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        j.refresh_calendar()  # the rules see the decision at once
        return n.to_json()

    @router.post(
        "/duties/notices/{notice_id}/accept",
        summary="Accept a shutdown window: the device's no-data items are suppressed inside it",
        responses=ANSWERS,
    )
    def accept(
        notice_id: int = id_path(),
        body: DecisionIn = Body(default_factory=DecisionIn),
        p: Principal = Depends(auth.officer),
    ) -> dict[str, Any]:
        return decide(notice_id, True, body.note, p)

    @router.post(
        "/duties/notices/{notice_id}/reject",
        summary="Reject a shutdown window: it suppresses nothing",
        responses=ANSWERS,
    )
    def reject(
        notice_id: int = id_path(),
        body: DecisionIn = Body(default_factory=DecisionIn),
        p: Principal = Depends(auth.officer),
    ) -> dict[str, Any]:
        return decide(notice_id, False, body.note, p)

    @router.post(
        "/duties/notices/{notice_id}/fix",
        summary="The monitor works again: the malfunction ends",
        responses=ANSWERS,
    )
    def fix(
        body: FixIn, notice_id: int = id_path(), p: Principal = Depends(auth.logged_in)
    ) -> dict[str, Any]:
        notice_for(p, notice_id)
        try:
            n = job().duties.fix(notice_id, to_ns("fixed_at", body.fixed_at, 0), p.name, ctx.now(), body.note)
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        return n.to_json()

    # -- lab checks, stack tests, attachments -----------------------------------------------------------
    @router.post(
        "/duties/lab-checks",
        status_code=201,
        summary="A grab sample's lab value T against the online value M at its minute (E = M - T)",
        responses=ANSWERS,
    )
    def add_lab_check(body: LabCheckIn, p: Principal = Depends(auth.logged_in)) -> dict[str, Any]:
        f = own(p, body.factory)
        monitor(f, body.device, WPMS)
        ch = f.devices[body.device].channels.get(body.channel)
        if ch is None:
            raise HTTPException(404, f"device '{f.id}/{body.device}' has no channel '{body.channel}'")
        sampled = to_ns("sampled_at", body.sampled_at, 0)
        j = job()
        try:
            online = online_value_at(ctx.sources.store, f.id, body.device, body.channel, sampled)
            check = j.duties.add_lab_check(
                f.id,
                body.device,
                body.channel,
                sampled,
                body.lab_value,
                online,
                ch.unit,
                body.laboratory,
                p.name,
                ctx.now(),
                body.attachment_id,
            )
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        return check.to_json()

    @router.get(
        "/duties/lab-checks",
        summary="Lab checks by sampling time (officers: every factory; operators: their own)",
        responses=ANSWERS,
    )
    def list_lab_checks(
        factory: str | None = Query(None, max_length=100), p: Principal = Depends(auth.logged_in)
    ) -> list[dict[str, Any]]:
        try:
            return [c.to_json() for c in job().duties.lab_checks(scope(p, factory))]
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc

    @router.post(
        "/duties/stack-tests",
        status_code=201,
        summary="The substitute stack test of a CEMS malfunction",
        responses=ANSWERS,
    )
    def add_stack_test(body: StackTestIn, p: Principal = Depends(auth.logged_in)) -> dict[str, Any]:
        notice_for(p, body.notice_id)
        try:
            test = job().duties.add_stack_test(
                body.notice_id,
                to_ns("tested_at", body.tested_at, 0),
                body.results,
                body.laboratory,
                p.name,
                ctx.now(),
                body.attachment_id,
            )
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        return test.to_json()

    @router.post(
        "/duties/attachments",
        status_code=201,
        summary="Attach a lab or stack-test report: the request body is the PDF itself",
        responses=ANSWERS | {413: {"description": "The file is larger than allowed"}},
    )
    async def add_attachment(
        request: Request,
        factory: str = Query(max_length=100),
        filename: str = Query("report.pdf", max_length=200),
        p: Principal = Depends(auth.logged_in),
    ) -> dict[str, Any]:
        f = own(p, factory)
        j = job()
        limit = j.rules.attachment_max_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(
                413, f"attachment {filename!r}: {declared} bytes is more than the limit of {limit} bytes"
            )
        content = bytearray()
        async for chunk in request.stream():
            content += chunk
            if len(content) > limit:
                raise HTTPException(413, f"attachment {filename!r}: more than the limit of {limit} bytes")
        try:
            a = j.duties.add_attachment(f.id, filename, bytes(content), p.name, ctx.now())
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        return a.to_json()

    @router.get(
        "/duties/attachments/{attachment_id}",
        summary="An attached report (PDF)",
        responses=ANSWERS,
        response_class=Response,
    )
    def get_attachment(attachment_id: int = id_path(), p: Principal = Depends(auth.logged_in)) -> Response:
        try:
            meta, content = job().duties.attachment(attachment_id)
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc
        own(p, meta.factory)
        # The name as the operator gave it (Thai too), and a plain ASCII one for old clients.
        plain = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in meta.filename)
        disposition = f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(meta.filename, safe='')}"
        return Response(content, media_type="application/pdf", headers={"Content-Disposition": disposition})

    @router.get(
        "/duties/reminders",
        summary="Lab checks due this month and not yet entered (June and December)",
        responses=ANSWERS,
    )
    def reminders(
        factory: str | None = Query(None, max_length=100), p: Principal = Depends(auth.logged_in)
    ) -> list[dict[str, str]]:
        try:
            return job().reminders(ctx.now(), scope(p, factory))
        except EitError as exc:
            raise fail(exc) from exc

    @router.get(
        "/duties/report",
        summary="The duties of a period: notices, deadlines, lab checks, stack tests (JSON)",
        responses=ANSWERS,
    )
    def report(
        date_from: date = Query(alias="from"),
        date_to: date = Query(alias="to"),
        factory: str | None = Query(None, max_length=100),
        p: Principal = Depends(auth.logged_in),
    ) -> dict[str, Any]:
        check_period(date_from, date_to, MAX_REPORT_DAYS, "query")
        try:
            return duties_report(job(), date_from, date_to, scope(p, factory), ctx.now())
        except EitError as exc:
            raise fail(exc) from exc

    @router.get(
        "/factories/{factory_id}/shutdowns",
        summary="A factory's planned shutdown windows an officer accepted, from 30 days ago on"
        " (public for a published factory: no data is expected inside them)",
        responses=ANSWERS,
    )
    def shutdowns(
        factory_id: str = Path(max_length=100), p: Principal = Depends(auth.principal)
    ) -> list[dict[str, Any]]:
        f = ctx.factory(p, factory_id)
        since = ctx.now() - 30 * 86_400 * 1_000_000_000
        try:
            found = job().duties.notices(f.id, kind="shutdown", state="accepted", start_ns=since)
        except EitError as exc:
            raise fail(exc) from exc
        windows = [n.to_json() for n in sorted(found, key=lambda n: n.started_ns)]
        return [{k: w[k] for k in ("device", "system", "start", "end")} for w in windows]

    # -- integrity findings: officers only ------------------------------------------------------------
    @router.get(
        "/integrity/findings",
        tags=["integrity"],
        summary="Integrity findings with their dispositions (officers only)",
        responses=ANSWERS,
    )
    def findings(
        month: str | None = Query(None, pattern=r"^\d{4}-\d{2}$"),
        factory: str | None = Query(None, max_length=100),
        disposition: Literal["confirmed", "dismissed", "inspect", "none"] | None = None,
        p: Principal = Depends(auth.officer),
    ) -> list[dict[str, Any]]:
        try:
            found = job().duties.findings([month] if month else None, factory, disposition)
        except EitError as exc:
            raise fail(exc) from exc
        return [f.to_json() for f in found]

    @router.get(
        "/integrity/findings/{finding_id}",
        tags=["integrity"],
        summary="One integrity finding with its audit trail (officers only)",
        responses=ANSWERS,
    )
    def finding(
        finding_id: str = Path(pattern=r"^[0-9a-f]{16}$"), p: Principal = Depends(auth.officer)
    ) -> dict[str, Any]:
        d = job().duties
        match = [f for f in d.findings() if f.id == finding_id]
        if not match:
            raise HTTPException(404, f"no integrity finding {finding_id!r}")
        return match[0].to_json() | {"audit": [a.to_json() for a in d.audit(f"finding/{finding_id}")]}

    @router.post(
        "/integrity/findings/{finding_id}/disposition",
        tags=["integrity"],
        summary=f"An officer's disposition of a finding ({', '.join(DISPOSITIONS)})",
        responses=ANSWERS,
    )
    def dispose(
        body: DispositionIn,
        finding_id: str = Path(pattern=r"^[0-9a-f]{16}$"),
        p: Principal = Depends(auth.officer),
    ) -> dict[str, Any]:
        try:
            return job().duties.dispose(finding_id, body.disposition, p.name, ctx.now(), body.note).to_json()
        except (DutyError, EitError) as exc:
            raise fail(exc) from exc

    @router.post(
        "/integrity/run",
        tags=["integrity"],
        summary="Run the integrity analytics over a period now and keep the findings (officers only)",
        responses=ANSWERS,
    )
    def run(body: IntegrityRunIn, p: Principal = Depends(auth.officer)) -> dict[str, Any]:
        check_period(body.date_from, body.date_to, MAX_INTEGRITY_DAYS, "body")
        j = job()
        try:
            new = j.run_integrity(body.date_from, body.date_to, ctx.now(), p.name)
            months = sorted({f"{body.date_from:%Y-%m}", f"{body.date_to:%Y-%m}"})
            return {"new": new} | integrity_section(j, months)
        except EitError as exc:
            raise fail(exc) from exc

    return router
