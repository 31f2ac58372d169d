"""The duties' records in the state database (statedb: SQLite or PostgreSQL): notices, lab
checks, substitute stack tests, attachments, integrity findings with their dispositions, and the
audit trail of every change (``duty_audit``: who, when, what)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from alerts.duties.deadlines import lab_report_due_ns, malfunction_deadlines
from alerts.duties.model import (
    ACCEPTED,
    DISPOSITIONS,
    FILED,
    FILED_BY_FACTORY,
    FIXED,
    INFERRED,
    MALFUNCTION,
    MAX_TEXT,
    NOTICE_KINDS,
    OPEN,
    REJECTED,
    SHUTDOWN,
    SYSTEMS,
    Attachment,
    DutyAudit,
    DutyError,
    LabCheck,
    NotFound,
    Notice,
    StackTest,
    StoredFinding,
    results_text,
)
from alerts.duties.rules import DutyRules
from statedb import StateDb
from statedb.tables import (
    duty_attachments,
    duty_audit,
    duty_notices,
    integrity_findings,
    lab_checks,
    stack_tests,
)

PDF_MAGIC = b"%PDF-"
_n = duty_notices.c


def _text(name: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise DutyError(f"{name}: at most {MAX_TEXT} characters ({len(value)} given)")
    return value


class DutyStore:
    """Notices, lab checks, stack tests, attachments and integrity findings, on the state
    database shared with the cases."""

    def __init__(self, db: StateDb, rules: DutyRules, tz: ZoneInfo) -> None:
        self.db = db
        self.rules = rules
        self.tz = tz

    @staticmethod
    def _audit(conn: Connection, subject: str, now_ns: int, actor: str, action: str, detail: str) -> None:
        conn.execute(
            duty_audit.insert().values(
                subject=subject, ts_ns=now_ns, actor=actor, action=action, detail=detail
            )
        )

    # -- notices -----------------------------------------------------------------------------------
    def _deadlines(self, system: str, kind: str, started_ns: int) -> tuple[int | None, int | None]:
        if kind != MALFUNCTION:
            return None, None
        d = malfunction_deadlines(system, started_ns, self.rules, self.tz)
        return d.report_due_ns, d.fix_due_ns

    def file_notice(
        self,
        system: str,
        kind: str,
        factory: str,
        device: str,
        started_ns: int,
        ended_ns: int | None,
        cause: str,
        actor: str,
        now_ns: int,
    ) -> Notice:
        """The factory files a notice. A malfunction filed while one the data showed is open
        for the device completes that one (it keeps the start the data show, the earlier)."""
        if system not in SYSTEMS:
            raise DutyError(f"system: {system!r} is not one of {', '.join(SYSTEMS)}")
        if kind not in NOTICE_KINDS:
            raise DutyError(f"kind: {kind!r} is not one of {', '.join(NOTICE_KINDS)}")
        if ended_ns is not None and ended_ns <= started_ns:
            raise DutyError("end: must be after start")
        if kind == SHUTDOWN and ended_ns is None:
            raise DutyError("end: a planned shutdown names the end of its window")
        cause = _text("cause", cause)
        with self.db.write() as conn:
            if kind == MALFUNCTION:
                row = conn.execute(
                    sa.select(duty_notices)
                    .where(
                        _n.factory == factory,
                        _n.device == device,
                        _n.kind == MALFUNCTION,
                        _n.state == OPEN,
                        _n.filed_ns.is_(None),
                    )
                    .order_by(_n.id.desc())
                    .limit(1)
                    .with_for_update()
                ).first()
                if row is not None:
                    inferred = _notice(row._mapping)
                    start = min(inferred.started_ns, started_ns)
                    report_due, fix_due = self._deadlines(inferred.system, MALFUNCTION, start)
                    conn.execute(
                        duty_notices.update()
                        .where(_n.id == inferred.id)
                        .values(
                            started_ns=start,
                            filed_ns=now_ns,
                            filed_by=actor,
                            cause=cause,
                            report_due_ns=report_due,
                            fix_due_ns=fix_due,
                            ended_ns=ended_ns if ended_ns is not None else inferred.ended_ns,
                        )
                    )
                    self._audit(conn, f"notice/{inferred.id}", now_ns, actor, "filed", cause)
                    return self._fetch(conn, inferred.id)
            report_due, fix_due = self._deadlines(system, kind, started_ns)
            notice_id = conn.execute(
                duty_notices.insert()
                .values(
                    system=system,
                    kind=kind,
                    origin=FILED_BY_FACTORY,
                    factory=factory,
                    device=device,
                    started_ns=started_ns,
                    ended_ns=ended_ns,
                    state=OPEN if kind == MALFUNCTION else FILED,
                    cause=cause,
                    filed_ns=now_ns,
                    filed_by=actor,
                    recorded_ns=now_ns,
                    report_due_ns=report_due,
                    fix_due_ns=fix_due,
                )
                .returning(_n.id)
            ).scalar_one()
            self._audit(conn, f"notice/{notice_id}", now_ns, actor, "filed", cause)
            return self._fetch(conn, notice_id)

    def infer_malfunction(
        self, system: str, factory: str, device: str, started_ns: int, why: str, now_ns: int
    ) -> Notice | None:
        """A malfunction the data show; None when one of the device is open already."""
        with self.db.write() as conn:
            if conn.execute(
                sa.select(_n.id).where(
                    _n.factory == factory, _n.device == device, _n.kind == MALFUNCTION, _n.state == OPEN
                )
            ).first():
                return None
            report_due, fix_due = self._deadlines(system, MALFUNCTION, started_ns)
            notice_id = conn.execute(
                duty_notices.insert()
                .values(
                    system=system,
                    kind=MALFUNCTION,
                    origin=INFERRED,
                    factory=factory,
                    device=device,
                    started_ns=started_ns,
                    state=OPEN,
                    cause="",
                    recorded_ns=now_ns,
                    report_due_ns=report_due,
                    fix_due_ns=fix_due,
                )
                .returning(_n.id)
            ).scalar_one()
            self._audit(conn, f"notice/{notice_id}", now_ns, "duties", "inferred", why)
            return self._fetch(conn, notice_id)

    def decide_shutdown(
        self, notice_id: int, accept: bool, actor: str, now_ns: int, note: str = ""
    ) -> Notice:
        """An officer accepts (or rejects) a filed shutdown window."""
        with self.db.write() as conn:
            notice = self._fetch(conn, notice_id, for_update=True)
            if notice.kind != SHUTDOWN:
                raise DutyError(f"notice #{notice_id} is a {notice.kind} notice: only a shutdown is accepted")
            if notice.state != FILED:
                raise DutyError(f"notice #{notice_id} is {notice.state} already")
            state = ACCEPTED if accept else REJECTED
            conn.execute(
                duty_notices.update()
                .where(_n.id == notice_id)
                .values(state=state, decided_ns=now_ns, decided_by=actor)
            )
            self._audit(conn, f"notice/{notice_id}", now_ns, actor, state, _text("note", note))
            return self._fetch(conn, notice_id)

    def fix(self, notice_id: int, fixed_ns: int, actor: str, now_ns: int, note: str = "") -> Notice:
        """The monitor works again from ``fixed_ns`` (the malfunction's end)."""
        with self.db.write() as conn:
            notice = self._fetch(conn, notice_id, for_update=True)
            if notice.kind != MALFUNCTION:
                raise DutyError(f"notice #{notice_id} is a {notice.kind} notice: only a malfunction is fixed")
            if notice.state != OPEN:
                raise DutyError(f"notice #{notice_id} is {notice.state} already")
            if fixed_ns <= notice.started_ns:
                raise DutyError(f"fixed: must be after the malfunction's start (notice #{notice_id})")
            conn.execute(
                duty_notices.update()
                .where(_n.id == notice_id)
                .values(state=FIXED, fixed_ns=fixed_ns, ended_ns=fixed_ns)
            )
            self._audit(conn, f"notice/{notice_id}", now_ns, actor, "fixed", _text("note", note))
            return self._fetch(conn, notice_id)

    def notice(self, notice_id: int) -> Notice:
        with self.db.read() as conn:
            return self._fetch(conn, notice_id)

    def notices(
        self,
        factory: str | None = None,
        device: str | None = None,
        kind: str | None = None,
        state: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 500,
    ) -> list[Notice]:
        """Notices newest first; with a period, those whose window overlaps [start, end)."""
        q = sa.select(duty_notices)
        if factory is not None:
            q = q.where(_n.factory == factory)
        if device is not None:
            q = q.where(_n.device == device)
        if kind is not None:
            q = q.where(_n.kind == kind)
        if state is not None:
            q = q.where(_n.state == state)
        if end_ns is not None:
            q = q.where(_n.started_ns < end_ns)
        if start_ns is not None:
            q = q.where(sa.or_(_n.ended_ns.is_(None), _n.ended_ns > start_ns))
        with self.db.read() as conn:
            return [_notice(r._mapping) for r in conn.execute(q.order_by(_n.id.desc()).limit(limit))]

    @staticmethod
    def _fetch(conn: Connection, notice_id: int, *, for_update: bool = False) -> Notice:
        q = sa.select(duty_notices).where(_n.id == notice_id)
        row = conn.execute(q.with_for_update() if for_update else q).first()
        if row is None:
            raise NotFound(f"no notice #{notice_id}")
        return _notice(row._mapping)

    # -- lab checks ---------------------------------------------------------------------------------
    def add_lab_check(
        self,
        factory: str,
        device: str,
        channel: str,
        sampled_ns: int,
        lab_value: float,
        online_value: float | None,
        unit: str,
        laboratory: str,
        actor: str,
        now_ns: int,
        attachment_id: int | None = None,
    ) -> LabCheck:
        """Record a grab sample's lab value T against the online value M (E = M - T), each
        rounded as the duty reports them (BOD 1 decimal, COD integer: duties.yaml)."""
        if channel not in self.rules.lab_channels:
            raise DutyError(
                f"channel: {channel!r} is not checked against a lab ({', '.join(self.rules.lab_channels)})"
            )
        if sampled_ns > now_ns:
            raise DutyError("sampled: the grab sample's time is in the future")
        if not (lab_value >= 0 and lab_value < 1e9):
            raise DutyError(f"lab_value: {lab_value!r} is not a concentration (0 or more)")
        digits = self.rules.lab_decimals.get(channel, 1)
        t = round_half_up(lab_value, digits)
        m = round_half_up(online_value, digits) if online_value is not None else None
        e = round_half_up(m - t, digits) if m is not None else None
        due = lab_report_due_ns(sampled_ns, self.rules, self.tz)
        with self.db.write() as conn:
            if attachment_id is not None:
                self._check_attachment(conn, attachment_id, factory)
            check_id = conn.execute(
                lab_checks.insert()
                .values(
                    factory=factory,
                    device=device,
                    channel=channel,
                    sampled_ns=sampled_ns,
                    lab_value=t,
                    online_value=m,
                    deviation=e,
                    unit=unit,
                    laboratory=_text("laboratory", laboratory),
                    entered_ns=now_ns,
                    entered_by=actor,
                    report_due_ns=due,
                    attachment_id=attachment_id,
                )
                .returning(lab_checks.c.id)
            ).scalar_one()
            self._audit(
                conn, f"lab_check/{check_id}", now_ns, actor, "entered", f"{channel} T={t} M={m} E={e}"
            )
            row = conn.execute(sa.select(lab_checks).where(lab_checks.c.id == check_id)).one()
            return _lab_check(row._mapping)

    def lab_checks(
        self,
        factory: str | None = None,
        device: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> list[LabCheck]:
        c = lab_checks.c
        q = sa.select(lab_checks)
        if factory is not None:
            q = q.where(c.factory == factory)
        if device is not None:
            q = q.where(c.device == device)
        if start_ns is not None:
            q = q.where(c.sampled_ns >= start_ns)
        if end_ns is not None:
            q = q.where(c.sampled_ns < end_ns)
        with self.db.read() as conn:
            return [_lab_check(r._mapping) for r in conn.execute(q.order_by(c.sampled_ns, c.id))]

    # -- substitute stack tests ---------------------------------------------------------------------
    def add_stack_test(
        self,
        notice_id: int,
        tested_ns: int,
        results: dict[str, float],
        laboratory: str,
        actor: str,
        now_ns: int,
        attachment_id: int | None = None,
    ) -> StackTest:
        if not results:
            raise DutyError("results: give at least one measured value (channel: value)")
        if tested_ns > now_ns:
            raise DutyError("tested: the stack test's time is in the future")
        with self.db.write() as conn:
            notice = self._fetch(conn, notice_id)
            if notice.system != "cems" or notice.kind != MALFUNCTION:
                raise DutyError(
                    f"notice #{notice_id} is no CEMS malfunction: a substitute stack test needs one"
                )
            if attachment_id is not None:
                self._check_attachment(conn, attachment_id, notice.factory)
            test_id = conn.execute(
                stack_tests.insert()
                .values(
                    notice_id=notice_id,
                    factory=notice.factory,
                    device=notice.device,
                    tested_ns=tested_ns,
                    results=results_text(results),
                    laboratory=_text("laboratory", laboratory),
                    entered_ns=now_ns,
                    entered_by=actor,
                    attachment_id=attachment_id,
                )
                .returning(stack_tests.c.id)
            ).scalar_one()
            self._audit(conn, f"notice/{notice_id}", now_ns, actor, "stack test", results_text(results))
            row = conn.execute(sa.select(stack_tests).where(stack_tests.c.id == test_id)).one()
            return _stack_test(row._mapping)

    def stack_tests(self, notice_ids: Iterable[int] | None = None) -> list[StackTest]:
        q = sa.select(stack_tests)
        if notice_ids is not None:
            q = q.where(stack_tests.c.notice_id.in_(list(notice_ids)))
        with self.db.read() as conn:
            return [_stack_test(r._mapping) for r in conn.execute(q.order_by(stack_tests.c.id))]

    # -- attachments ----------------------------------------------------------------------------------
    def add_attachment(
        self, factory: str, filename: str, content: bytes, actor: str, now_ns: int
    ) -> Attachment:
        """A lab or stack-test report: a PDF of at most ``attachments.max_bytes``."""
        limit = self.rules.attachment_max_bytes
        if len(content) > limit:
            raise DutyError(
                f"attachment {filename!r}: {len(content)} bytes is more than the limit of {limit} bytes"
            )
        if not content.startswith(PDF_MAGIC):
            raise DutyError(f"attachment {filename!r}: not a PDF (a report is attached as PDF)")
        name = _text("filename", filename.replace("/", "_").replace("\\", "_")[:200] or "report.pdf")
        digest = hashlib.sha256(content).hexdigest()
        with self.db.write() as conn:
            attachment_id = conn.execute(
                duty_attachments.insert()
                .values(
                    factory=factory,
                    filename=name,
                    size=len(content),
                    sha256=digest,
                    content=content,
                    uploaded_ns=now_ns,
                    uploaded_by=actor,
                )
                .returning(duty_attachments.c.id)
            ).scalar_one()
            self._audit(
                conn, f"attachment/{attachment_id}", now_ns, actor, "attached", f"{name} sha256 {digest}"
            )
            return Attachment(attachment_id, factory, name, len(content), digest, now_ns, actor)

    def attachment(self, attachment_id: int) -> tuple[Attachment, bytes]:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(duty_attachments).where(duty_attachments.c.id == attachment_id)
            ).first()
        if row is None:
            raise NotFound(f"no attachment #{attachment_id}")
        m = row._mapping
        return _attachment(m), bytes(m["content"])

    @staticmethod
    def _check_attachment(conn: Connection, attachment_id: int, factory: str) -> None:
        row = conn.execute(
            sa.select(duty_attachments.c.factory).where(duty_attachments.c.id == attachment_id)
        ).first()
        if row is None:
            raise NotFound(f"attachment: no attachment #{attachment_id}")
        if row.factory != factory:
            raise DutyError(f"attachment: #{attachment_id} belongs to another factory")

    # -- integrity findings ----------------------------------------------------------------------------
    def record_findings(self, findings: Sequence[dict[str, Any]], now_ns: int) -> int:
        """Store findings (the JSON of alerts/integrity/findings.py), new ones added, known ones
        refreshed; an officer's disposition is kept. Returns how many were new."""
        new = 0
        f = integrity_findings.c
        with self.db.write() as conn:
            for item in findings:
                values = {
                    "factory": str(item["factory"]),
                    "device": str(item["device"]),
                    "kind": str(item["kind"]),
                    "month": str(item["month"]),
                    "score": float(item["score"]),
                    "finding": json.dumps(item, ensure_ascii=False, sort_keys=True),
                    "updated_ns": now_ns,
                }
                updated = conn.execute(integrity_findings.update().where(f.id == item["id"]).values(**values))
                if updated.rowcount == 0:
                    conn.execute(integrity_findings.insert().values(id=item["id"], found_ns=now_ns, **values))
                    self._audit(
                        conn, f"finding/{item['id']}", now_ns, "integrity", "found", str(item["kind"])
                    )
                    new += 1
        return new

    def findings(
        self, months: Sequence[str] | None = None, factory: str | None = None, disposition: str | None = None
    ) -> list[StoredFinding]:
        f = integrity_findings.c
        q = sa.select(integrity_findings)
        if months is not None:
            q = q.where(f.month.in_(list(months)))
        if factory is not None:
            q = q.where(f.factory == factory)
        if disposition is not None:
            q = q.where(f.disposition == ("" if disposition == "none" else disposition))
        with self.db.read() as conn:
            rows = conn.execute(q.order_by(f.month.desc(), f.factory, f.device, f.score.desc()))
            return [_finding(r._mapping) for r in rows]

    def dispose(
        self, finding_id: str, disposition: str, actor: str, now_ns: int, note: str = ""
    ) -> StoredFinding:
        """An officer's disposition of a finding: confirmed, dismissed or inspect."""
        if disposition not in DISPOSITIONS:
            raise DutyError(f"disposition: {disposition!r} is not one of {', '.join(DISPOSITIONS)}")
        f = integrity_findings.c
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(integrity_findings).where(f.id == finding_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no integrity finding {finding_id!r}")
            conn.execute(
                integrity_findings.update()
                .where(f.id == finding_id)
                .values(
                    disposition=disposition, disposed_by=actor, disposed_ns=now_ns, note=_text("note", note)
                )
            )
            self._audit(conn, f"finding/{finding_id}", now_ns, actor, disposition, note)
            return _finding(
                conn.execute(sa.select(integrity_findings).where(f.id == finding_id)).one()._mapping
            )

    # -- audit ----------------------------------------------------------------------------------------
    def note_run(self, subject: str, now_ns: int, actor: str, detail: str) -> None:
        """Record that a job ran (the monthly integrity run: once per month)."""
        with self.db.write() as conn:
            self._audit(conn, subject, now_ns, actor, "ran", detail)

    def audit(self, subject: str) -> list[DutyAudit]:
        a = duty_audit.c
        with self.db.read() as conn:
            rows = conn.execute(sa.select(duty_audit).where(a.subject == subject).order_by(a.seq))
            return [DutyAudit(r.subject, r.ts_ns, r.actor, r.action, r.detail) for r in rows]


def round_half_up(value: float, digits: int) -> float:
    """Rounded half away from zero on the decimal text (TIS 929-2533 rounding), not binary."""
    from decimal import ROUND_HALF_UP, Decimal

    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def _notice(m: RowMapping) -> Notice:
    return Notice(
        id=int(m["id"]),
        system=m["system"],
        kind=m["kind"],
        origin=m["origin"],
        factory=m["factory"],
        device=m["device"],
        started_ns=int(m["started_ns"]),
        ended_ns=m["ended_ns"],
        state=m["state"],
        cause=m["cause"],
        filed_ns=m["filed_ns"],
        filed_by=m["filed_by"],
        recorded_ns=int(m["recorded_ns"]),
        report_due_ns=m["report_due_ns"],
        fix_due_ns=m["fix_due_ns"],
        decided_ns=m["decided_ns"],
        decided_by=m["decided_by"],
        fixed_ns=m["fixed_ns"],
    )


def _lab_check(m: RowMapping) -> LabCheck:
    return LabCheck(
        id=int(m["id"]),
        factory=m["factory"],
        device=m["device"],
        channel=m["channel"],
        sampled_ns=int(m["sampled_ns"]),
        lab_value=float(m["lab_value"]),
        online_value=m["online_value"],
        deviation=m["deviation"],
        unit=m["unit"],
        laboratory=m["laboratory"],
        entered_ns=int(m["entered_ns"]),
        entered_by=m["entered_by"],
        report_due_ns=int(m["report_due_ns"]),
        attachment_id=m["attachment_id"],
    )


def _stack_test(m: RowMapping) -> StackTest:
    return StackTest(
        id=int(m["id"]),
        notice_id=int(m["notice_id"]),
        factory=m["factory"],
        device=m["device"],
        tested_ns=int(m["tested_ns"]),
        results={str(k): float(v) for k, v in json.loads(m["results"]).items()},
        laboratory=m["laboratory"],
        entered_ns=int(m["entered_ns"]),
        entered_by=m["entered_by"],
        attachment_id=m["attachment_id"],
    )


def _attachment(m: RowMapping) -> Attachment:
    return Attachment(
        int(m["id"]),
        m["factory"],
        m["filename"],
        int(m["size"]),
        m["sha256"],
        int(m["uploaded_ns"]),
        m["uploaded_by"],
    )


def _finding(m: RowMapping) -> StoredFinding:
    return StoredFinding(
        id=m["id"],
        factory=m["factory"],
        device=m["device"],
        kind=m["kind"],
        month=m["month"],
        score=float(m["score"]),
        finding=json.loads(m["finding"]),
        found_ns=int(m["found_ns"]),
        updated_ns=int(m["updated_ns"]),
        disposition=m["disposition"],
        disposed_by=m["disposed_by"],
        disposed_ns=m["disposed_ns"],
        note=m["note"],
    )
