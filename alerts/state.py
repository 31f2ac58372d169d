"""The cases (alerts) and exceedances store, in the server's state database (statedb: SQLite or
PostgreSQL, one implementation for both). What a case and an exceedance are: alerts/model.py.

- ``alerts``: one row per case; the database itself guarantees one case with an ongoing condition
  per (factory, device, parameter, rule) with a partial unique index;
- ``exceedances``: the immutable records of legal periods above a limit, each naming its case;
- ``alert_audit``: every change, who made it, when and what;
- ``alert_notifications``: each notification claimed when it is queued (alerts/notifiers/queue.py,
  in the same transaction), unique per (alert, escalation step, notifier, recipient), so an alert
  is queued once per channel per step, even across restarts and with several processes;
- ``alert_responses``: what the factory's operator says about an alert (cause, corrective action).

A change reads the alert it checks with ``FOR UPDATE`` (PostgreSQL; SQLite's write transaction
holds the whole file), so two officers acting at once cannot both pass the lifecycle's check.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from alerts.inbox import InboxFilter
from alerts.inbox import conditions as inbox_conditions
from alerts.model import (
    ACKNOWLEDGED,
    ACTIVE_STATES,
    CLOSED,
    ENDED,
    ENGINE,
    ONGOING,
    OPEN,
    PROVISIONAL_OUTCOMES,
    RESOLVED,
    Alert,
    AlertKey,
    AuditEntry,
    Exceedance,
    LifecycleError,
    OperatorResponse,
    ResponseError,
)
from statedb import StateDb, open_state_db
from statedb.tables import alert_audit, alert_notifications, alert_responses, alerts, exceedances

# Columns the engine may change on an active alert.
ENGINE_FIELDS = {
    "severity",
    "message",
    "value",
    "limit_value",
    "unit",
    "provisional",
    "retroactive",
    "period_start_ns",
    "template",
    "params",
    "current_value",
    "current_ns",
}
MAX_RESPONSE_LENGTH = 4000

_c = alerts.c


def _key_is(key: AlertKey) -> sa.ColumnElement[bool]:
    factory, device, parameter, rule = key
    return sa.and_(_c.factory == factory, _c.device == device, _c.parameter == parameter, _c.rule == rule)


_IS_ONGOING = _c.condition == ONGOING


class AlertStore:
    """What the engine, the notifiers, the HTTP API and the command line use.

    ``db`` is the state database, shared with the accounts and the dead letters; the store closes
    it only when it opened it itself (:func:`open_alert_store`)."""

    def __init__(self, db: StateDb, *, owns_db: bool = False) -> None:
        self.db = db
        self._owns_db = owns_db

    @property
    def kind(self) -> str:
        return self.db.kind

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    # -- inside a transaction ------------------------------------------------------------------
    @staticmethod
    def _fetch_alert(conn: Connection, alert_id: int, *, for_update: bool = True) -> Alert:
        query = sa.select(alerts).where(_c.id == alert_id)
        row = conn.execute(query.with_for_update() if for_update else query).first()
        if row is None:
            raise LifecycleError(f"no alert #{alert_id}")
        return _alert(row._mapping)

    @staticmethod
    def _audit(conn: Connection, alert_id: int, now_ns: int, actor: str, action: str, detail: str) -> None:
        conn.execute(
            alert_audit.insert().values(
                alert_id=alert_id, ts_ns=now_ns, actor=actor, action=action, detail=detail
            )
        )

    def _change(
        self,
        conn: Connection,
        alert_id: int,
        now_ns: int,
        actor: str,
        action: str,
        detail: str,
        **values: Any,
    ) -> Alert:
        """Set ``values`` and updated_ns on the alert, audit the change, return the alert."""
        conn.execute(alerts.update().where(_c.id == alert_id).values(updated_ns=now_ns, **values))
        self._audit(conn, alert_id, now_ns, actor, action, detail)
        return self._fetch_alert(conn, alert_id, for_update=False)

    # -- the engine's changes ------------------------------------------------------------------
    def open_alert(
        self,
        key: AlertKey,
        severity: str,
        message: str,
        now_ns: int,
        value: float | None = None,
        limit: float | None = None,
        unit: str = "",
        *,
        provisional: bool = False,
        retroactive: bool = False,
        period_start_ns: int | None = None,
        template: str = "",
        params: dict[str, str] | None = None,
        previous_id: int | None = None,
    ) -> Alert | None:
        """Open a case for ``key`` with an ongoing condition; None when one is ongoing already."""
        try:
            with self.db.write() as conn:
                return self._insert_case(
                    conn,
                    key,
                    severity,
                    message,
                    now_ns,
                    value,
                    limit,
                    unit,
                    provisional,
                    retroactive,
                    period_start_ns,
                    template,
                    params or {},
                    previous_id,
                )
        except IntegrityError:
            return None

    def _insert_case(
        self,
        conn: Connection,
        key: AlertKey,
        severity: str,
        message: str,
        now_ns: int,
        value: float | None,
        limit: float | None,
        unit: str,
        provisional: bool,
        retroactive: bool,
        period_start_ns: int | None,
        template: str,
        params: dict[str, str],
        previous_id: int | None,
    ) -> Alert:
        factory, device, parameter, rule = key
        alert_id = conn.execute(
            alerts.insert()
            .values(
                factory=factory,
                device=device,
                parameter=parameter,
                rule=rule,
                severity=severity,
                state=OPEN,
                opened_ns=now_ns,
                updated_ns=now_ns,
                message=message,
                value=value,
                limit_value=limit,
                unit=unit,
                provisional=int(provisional),
                retroactive=int(retroactive),
                period_start_ns=period_start_ns,
                template=template,
                params=_params_text(params),
                condition=ONGOING,
                condition_since_ns=now_ns,
                previous_id=previous_id,
                current_value=value,
                current_ns=now_ns,
            )
            .returning(_c.id)
        ).scalar_one()
        detail = message if previous_id is None else f"{message} (a new episode after case #{previous_id})"
        self._audit(conn, alert_id, now_ns, ENGINE, "opened", detail)
        return self._fetch_alert(conn, alert_id, for_update=False)

    def start_condition(
        self,
        key: AlertKey,
        severity: str,
        message: str,
        now_ns: int,
        value: float | None,
        limit: float | None,
        unit: str,
        *,
        provisional: bool = False,
        retroactive: bool = False,
        period_start_ns: int | None = None,
        template: str = "",
        params: dict[str, str] | None = None,
        flap_window_ns: int = 0,
    ) -> tuple[str, Alert] | None:
        """The rules see ``key``'s condition begin. The key's last case goes on when its condition
        ended within ``flap_window_ns`` and nobody closed it (reopened: acknowledgement and
        assignee kept, flaps + 1); otherwise a new case opens, naming the previous one. Returns
        (``opened`` or ``reopened``, the case), or None when a case of the key is ongoing already."""
        try:
            with self.db.write() as conn:
                if conn.execute(sa.select(_c.id).where(_key_is(key), _IS_ONGOING)).first() is not None:
                    return None
                row = conn.execute(
                    sa.select(alerts).where(_key_is(key)).order_by(_c.id.desc()).limit(1).with_for_update()
                ).first()
                latest = _alert(row._mapping) if row is not None else None
                if (
                    latest is not None
                    and latest.state != CLOSED
                    and latest.ended_ns is not None
                    and now_ns - latest.ended_ns <= flap_window_ns
                ):
                    state = ACKNOWLEDGED if latest.acknowledged_ns is not None else OPEN
                    case = self._change(
                        conn,
                        latest.id,
                        now_ns,
                        ENGINE,
                        "reopened",
                        f"the condition is back within the flap window: {message}",
                        state=state,
                        resolved_ns=None,
                        condition=ONGOING,
                        condition_since_ns=now_ns,
                        ended_ns=None,
                        flaps=_c.flaps + 1,
                        severity=severity,
                        message=message,
                        value=value,
                        limit_value=limit,
                        unit=unit,
                        provisional=int(provisional),
                        retroactive=int(retroactive),
                        period_start_ns=period_start_ns,
                        template=template,
                        params=_params_text(params or {}),
                        current_value=value,
                        current_ns=now_ns,
                    )
                    return "reopened", case
                case = self._insert_case(
                    conn,
                    key,
                    severity,
                    message,
                    now_ns,
                    value,
                    limit,
                    unit,
                    provisional,
                    retroactive,
                    period_start_ns,
                    template,
                    params or {},
                    latest.id if latest is not None else None,
                )
                return "opened", case
        except IntegrityError:
            return None  # another process started it meanwhile

    def set_current(self, key: AlertKey, value: float, now_ns: int) -> None:
        """The latest value of the key's ongoing condition (no audit entry: it changes often)."""
        with self.db.write() as conn:
            conn.execute(
                alerts.update()
                .where(_key_is(key), _IS_ONGOING)
                .values(current_value=value, current_ns=now_ns)
            )

    def end_condition(
        self, key: AlertKey, now_ns: int, note: str, *, withdrawn: bool = False
    ) -> Alert | None:
        """The rules see ``key``'s condition end (a provisional exceedance ``withdrawn``). A case
        nobody resolved is resolved with ``note``; one an officer resolved keeps that resolution.
        Returns the case, or None when none of the key was ongoing."""
        with self.db.write() as conn:
            row = conn.execute(sa.select(alerts).where(_key_is(key), _IS_ONGOING).with_for_update()).first()
            if row is None:
                return None
            case = _alert(row._mapping)
            action = "withdrawn" if withdrawn else "condition ended"
            values: dict[str, Any] = {"condition": ENDED, "ended_ns": now_ns}
            if case.state in ACTIVE_STATES:
                values.update(state=RESOLVED, resolved_ns=now_ns, resolution=note)
                action = "withdrawn" if withdrawn else "resolved"
            return self._change(conn, case.id, now_ns, ENGINE, action, note, **values)

    def update(self, alert_id: int, now_ns: int, action: str, detail: str = "", **fields: Any) -> Alert:
        """Change what the engine knows of an active alert (value, message, provisional ...)."""
        unknown = set(fields) - ENGINE_FIELDS
        if unknown:
            raise ValueError(f"not engine fields: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {k: (int(v) if isinstance(v, bool) else v) for k, v in fields.items()}
        if "params" in values:
            values["params"] = _params_text(values["params"])
        with self.db.write() as conn:
            return self._change(conn, alert_id, now_ns, ENGINE, action, detail, **values)

    def resolve_id(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert:
        """An officer resolves the case, with a reason. Its condition is the rules' to end: a case
        resolved while its condition persists stays ongoing (and the public state with it)."""
        reason = note.strip()
        if not reason:
            raise LifecycleError("resolving a case needs a reason")
        with self.db.write() as conn:
            alert = self._fetch_alert(conn, alert_id)
            if alert.state not in ACTIVE_STATES:
                raise LifecycleError(f"alert #{alert_id} is {alert.state}: only an active alert resolves")
            detail = reason if not alert.ongoing else f"{reason} (the condition is still ongoing)"
            return self._change(
                conn,
                alert_id,
                now_ns,
                actor,
                "resolved",
                detail,
                state=RESOLVED,
                resolved_ns=now_ns,
                resolution=reason,
            )

    def escalate(self, alert_id: int, step: int, now_ns: int, detail: str = "") -> Alert | None:
        """Raise the escalation step of an unacknowledged open alert (None when it no longer is)."""
        with self.db.write() as conn:
            changed = conn.execute(
                alerts.update()
                .where(_c.id == alert_id, _c.state == OPEN, _c.escalation_step < step)
                .values(escalation_step=step, updated_ns=now_ns)
            ).rowcount
            if changed != 1:
                return None
            self._audit(conn, alert_id, now_ns, ENGINE, "escalated", detail or f"step {step}")
            return self._fetch_alert(conn, alert_id, for_update=False)

    # -- the officers' changes -----------------------------------------------------------------
    def acknowledge(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert:
        with self.db.write() as conn:
            alert = self._fetch_alert(conn, alert_id)
            if alert.state != OPEN:
                raise LifecycleError(
                    f"alert #{alert_id} is {alert.state}: only an open alert is acknowledged"
                )
            return self._change(
                conn,
                alert_id,
                now_ns,
                actor,
                "acknowledged",
                note,
                state=ACKNOWLEDGED,
                acknowledged_ns=now_ns,
                acknowledged_by=actor,
                assignee=sa.func.coalesce(_c.assignee, actor),
            )

    def assign(self, alert_id: int, actor: str, assignee: str, now_ns: int) -> Alert:
        with self.db.write() as conn:
            alert = self._fetch_alert(conn, alert_id)
            if alert.state == CLOSED:
                raise LifecycleError(f"alert #{alert_id} is closed: it cannot be assigned")
            return self._change(conn, alert_id, now_ns, actor, "assigned", assignee, assignee=assignee)

    def add_note(self, alert_id: int, actor: str, text: str, now_ns: int) -> Alert:
        if not text.strip():
            raise LifecycleError("a note needs text")
        with self.db.write() as conn:
            self._fetch_alert(conn, alert_id)
            return self._change(conn, alert_id, now_ns, actor, "note", text)

    def close_alert(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert:
        with self.db.write() as conn:
            alert = self._fetch_alert(conn, alert_id)
            if alert.state != RESOLVED:
                raise LifecycleError(f"alert #{alert_id} is {alert.state}: resolve it before closing it")
            if alert.ongoing:
                raise LifecycleError(f"alert #{alert_id} is still ongoing: it closes once its condition ends")
            return self._change(conn, alert_id, now_ns, actor, "closed", note, state=CLOSED, closed_ns=now_ns)

    # -- the factory operator's response -------------------------------------------------------
    def add_response(
        self, alert_id: int, factory: str, actor: str, cause: str, corrective_action: str, now_ns: int
    ) -> OperatorResponse:
        """Keep the operator's cause and corrective action for the alert, and note them in its
        audit trail beside the officers' actions (one transaction)."""
        cause, corrective_action = cause.strip(), corrective_action.strip()
        if not cause or not corrective_action:
            raise ResponseError("give both the cause and the corrective action")
        if len(cause) > MAX_RESPONSE_LENGTH or len(corrective_action) > MAX_RESPONSE_LENGTH:
            raise ResponseError(
                f"the cause and the corrective action are limited to {MAX_RESPONSE_LENGTH} characters"
            )
        with self.db.write() as conn:
            if self._fetch_alert(conn, alert_id).state == CLOSED:
                # A closed case is the supervisors' last word: nothing more is added to it.
                raise LifecycleError(f"alert #{alert_id} is closed: it takes no more answers")
            response_id = conn.execute(
                alert_responses.insert()
                .values(
                    alert_id=alert_id,
                    factory=factory,
                    actor=actor,
                    ts_ns=now_ns,
                    cause=cause,
                    corrective_action=corrective_action,
                )
                .returning(alert_responses.c.id)
            ).scalar_one()
            self._change(
                conn,
                alert_id,
                now_ns,
                actor,
                "note",
                f"operator response: cause: {cause}; corrective action: {corrective_action}",
            )
        return OperatorResponse(response_id, alert_id, factory, actor, now_ns, cause, corrective_action)

    def responses(self, alert_id: int) -> builtins.list[OperatorResponse]:
        r = alert_responses.c
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(r.id, r.alert_id, r.factory, r.actor, r.ts_ns, r.cause, r.corrective_action)
                .where(r.alert_id == alert_id)
                .order_by(r.id)
            ).all()
        return [
            OperatorResponse(int(i), int(a), str(f), str(who), int(t), str(c), str(x))
            for i, a, f, who, t, c, x in rows
        ]

    def responses_for(self, alert_ids: Iterable[int]) -> dict[int, builtins.list[OperatorResponse]]:
        """The operator's responses of each of ``alert_ids`` (an inbox page's), in one query."""
        ids = sorted(set(alert_ids))
        found: dict[int, builtins.list[OperatorResponse]] = {i: [] for i in ids}
        if not ids:
            return found
        r = alert_responses.c
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(r.id, r.alert_id, r.factory, r.actor, r.ts_ns, r.cause, r.corrective_action)
                .where(r.alert_id.in_(ids))
                .order_by(r.alert_id, r.id)
            ).all()
        for i, a, f, who, t, c, x in rows:
            found[int(a)].append(OperatorResponse(int(i), int(a), str(f), str(who), int(t), str(c), str(x)))
        return found

    # -- reading -------------------------------------------------------------------------------
    def get(self, alert_id: int) -> Alert | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(alerts).where(_c.id == alert_id)).first()
        return _alert(row._mapping) if row else None

    def active(self, key: AlertKey) -> Alert | None:
        """The case of ``key`` whose condition is ongoing."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(alerts).where(_key_is(key), _IS_ONGOING)).first()
        return _alert(row._mapping) if row else None

    def latest_for_key(self, key: AlertKey) -> Alert | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(alerts).where(_key_is(key)).order_by(_c.id.desc()).limit(1)).first()
        return _alert(row._mapping) if row else None

    def list(
        self,
        state: str | None = None,
        factory: str | None = None,
        limit: int = 500,
        severity: str | None = None,
        condition: str | None = None,
    ) -> builtins.list[Alert]:
        found, _ = self.page(
            InboxFilter(state=state, condition=condition, severity=severity, factory=factory), limit
        )
        return found

    def page(
        self, where: InboxFilter, limit: int, before_id: int | None = None
    ) -> tuple[builtins.list[Alert], int | None]:
        """The cases ``where`` selects, newest first: at most ``limit`` with an id below
        ``before_id``, and the ``before_id`` of the next page (None: this is the last one)."""
        query = sa.select(alerts).where(*inbox_conditions(where))
        if before_id is not None:
            query = query.where(_c.id < before_id)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(_c.id.desc()).limit(limit + 1)).all()
        found = [_alert(row._mapping) for row in rows[:limit]]
        return found, (found[-1].id if len(rows) > limit else None)

    def count(self, where: InboxFilter) -> int:
        """How many cases ``where`` selects."""
        with self.db.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(alerts).where(*inbox_conditions(where))
                ).scalar_one()
            )

    def ongoing_keys(self) -> set[AlertKey]:
        return {a.key for a in self.list(condition=ONGOING, limit=1_000_000)}

    def audit(self, alert_id: int) -> builtins.list[AuditEntry]:
        a = alert_audit.c
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(a.alert_id, a.ts_ns, a.actor, a.action, a.detail)
                .where(a.alert_id == alert_id)
                .order_by(a.seq)
            ).all()
        return [AuditEntry(int(i), int(t), str(who), str(what), str(d)) for i, t, who, what, d in rows]

    # -- exceedances: written once ------------------------------------------------------------------
    def record_exceedance(
        self,
        key: AlertKey,
        averaging: str,
        period_start_ns: int,
        period_end_ns: int,
        average: float,
        limit: float,
        unit: str,
        basis: str,
        method: str,
        origin: str,
        now_ns: int,
        *,
        retroactive: bool = False,
        provisional: bool = False,
    ) -> Exceedance:
        """Record a legal period above a limit for the case of ``key`` that is ongoing (or its
        latest case). A record is never changed afterwards (a provisional one is decided once)."""
        factory, device, channel, rule = key
        with self.db.write() as conn:
            case = conn.execute(
                sa.select(_c.id).where(_key_is(key)).order_by(_IS_ONGOING.desc(), _c.id.desc()).limit(1)
            ).scalar_one_or_none()
            record_id = conn.execute(
                exceedances.insert()
                .values(
                    case_id=case,
                    factory=factory,
                    device=device,
                    channel=channel,
                    rule=rule,
                    averaging=averaging,
                    period_start_ns=period_start_ns,
                    period_end_ns=period_end_ns,
                    average=average,
                    limit_value=limit,
                    unit=unit,
                    basis=basis,
                    method=method,
                    origin=origin,
                    retroactive=int(retroactive),
                    provisional=int(provisional),
                    recorded_ns=now_ns,
                )
                .returning(exceedances.c.id)
            ).scalar_one()
            row = conn.execute(sa.select(exceedances).where(exceedances.c.id == record_id)).one()
        return _exceedance(row._mapping)

    def decide_provisional(self, key: AlertKey, period_start_ns: int, outcome: str, now_ns: int) -> int:
        """Decide the undecided provisional records of ``key`` for the period: ``confirmed`` or
        ``withdrawn``. Returns how many were decided; a decided record is never decided again."""
        if outcome not in PROVISIONAL_OUTCOMES:
            raise ValueError(f"outcome {outcome!r}: one of {', '.join(PROVISIONAL_OUTCOMES)}")
        e = exceedances.c
        factory, device, channel, rule = key
        with self.db.write() as conn:
            return int(
                conn.execute(
                    exceedances.update()
                    .where(
                        e.factory == factory,
                        e.device == device,
                        e.channel == channel,
                        e.rule == rule,
                        e.period_start_ns == period_start_ns,
                        e.provisional == 1,
                        e.outcome.is_(None),
                    )
                    .values(outcome=outcome, decided_ns=now_ns)
                ).rowcount
            )

    def exceedances(
        self,
        case_id: int | None = None,
        factory: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 500,
    ) -> builtins.list[Exceedance]:
        e = exceedances.c
        query = sa.select(exceedances)
        if case_id is not None:
            query = query.where(e.case_id == case_id)
        if factory is not None:
            query = query.where(e.factory == factory)
        if start_ns is not None:
            query = query.where(e.period_end_ns > start_ns)
        if end_ns is not None:
            query = query.where(e.period_start_ns < end_ns)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(e.period_start_ns.desc(), e.id.desc()).limit(limit)).all()
        return [_exceedance(r._mapping) for r in rows]

    # -- notifications -------------------------------------------------------------------------
    def claim_notification(
        self, alert_id: int, step: int, notifier: str, recipient: str, now_ns: int
    ) -> bool:
        """Record that (alert, step, notifier, recipient) is being notified; False when it was
        already (the caller then does not send it again)."""
        try:
            with self.db.write() as conn:
                conn.execute(
                    alert_notifications.insert().values(
                        alert_id=alert_id, step=step, notifier=notifier, recipient=recipient, ts_ns=now_ns
                    )
                )
        except IntegrityError:
            return False
        return True

    def notifications(self, alert_id: int) -> builtins.list[tuple[int, str, str]]:
        n = alert_notifications.c
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(n.step, n.notifier, n.recipient)
                .where(n.alert_id == alert_id)
                .order_by(n.step, n.notifier, n.recipient)
            ).all()
        return [(int(s), str(who), str(to)) for s, who, to in rows]


def _params_text(params: dict[str, str]) -> str:
    return json.dumps(params, ensure_ascii=False, sort_keys=True)


def _alert(m: RowMapping) -> Alert:
    return Alert(
        id=int(m["id"]),
        factory=str(m["factory"]),
        device=str(m["device"]),
        parameter=str(m["parameter"]),
        rule=str(m["rule"]),
        severity=str(m["severity"]),
        state=str(m["state"]),
        opened_ns=int(m["opened_ns"]),
        updated_ns=int(m["updated_ns"]),
        message=str(m["message"]),
        value=None if m["value"] is None else float(m["value"]),
        limit=None if m["limit_value"] is None else float(m["limit_value"]),
        unit=str(m["unit"]),
        resolved_ns=None if m["resolved_ns"] is None else int(m["resolved_ns"]),
        provisional=bool(m["provisional"]),
        retroactive=bool(m["retroactive"]),
        period_start_ns=None if m["period_start_ns"] is None else int(m["period_start_ns"]),
        assignee=m["assignee"],
        acknowledged_ns=None if m["acknowledged_ns"] is None else int(m["acknowledged_ns"]),
        acknowledged_by=m["acknowledged_by"],
        closed_ns=None if m["closed_ns"] is None else int(m["closed_ns"]),
        escalation_step=int(m["escalation_step"]),
        flaps=int(m["flaps"]),
        template=str(m["template"] or ""),
        params=json.loads(m["params"]) if m["params"] else {},
        condition=str(m["condition"]),
        condition_since_ns=None if m["condition_since_ns"] is None else int(m["condition_since_ns"]),
        ended_ns=None if m["ended_ns"] is None else int(m["ended_ns"]),
        previous_id=None if m["previous_id"] is None else int(m["previous_id"]),
        resolution=str(m["resolution"] or ""),
        current_value=None if m["current_value"] is None else float(m["current_value"]),
        current_ns=None if m["current_ns"] is None else int(m["current_ns"]),
    )


def _exceedance(m: RowMapping) -> Exceedance:
    return Exceedance(
        id=int(m["id"]),
        case_id=None if m["case_id"] is None else int(m["case_id"]),
        factory=str(m["factory"]),
        device=str(m["device"]),
        channel=str(m["channel"]),
        rule=str(m["rule"]),
        averaging=str(m["averaging"]),
        period_start_ns=int(m["period_start_ns"]),
        period_end_ns=int(m["period_end_ns"]),
        average=float(m["average"]),
        limit=float(m["limit_value"]),
        unit=str(m["unit"]),
        basis=str(m["basis"]),
        method=str(m["method"]),
        origin=str(m["origin"]),
        retroactive=bool(m["retroactive"]),
        provisional=bool(m["provisional"]),
        outcome=m["outcome"],
        decided_ns=None if m["decided_ns"] is None else int(m["decided_ns"]),
        recorded_ns=int(m["recorded_ns"]),
    )


def open_alert_store(url: str | None, path: Path) -> AlertStore:
    """An alert store on a state database of its own: PostgreSQL when ``url`` is given, else the
    SQLite file ``path``. The server shares one database between its stores instead."""
    return AlertStore(open_state_db(url, path), owns_db=True)
