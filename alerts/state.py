"""The alert lifecycle store, in the server's state database (statedb: SQLite or PostgreSQL, one
implementation for both):

- ``alerts``: one row per alert; the database itself guarantees one active (open or
  acknowledged) alert per (factory, device, parameter, rule) with a partial unique index;
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
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from alerts.model import (
    ACKNOWLEDGED,
    ACTIVE_STATES,
    CLOSED,
    ENGINE,
    OPEN,
    RESOLVED,
    Alert,
    AlertKey,
    AuditEntry,
    LifecycleError,
    OperatorResponse,
    ResponseError,
)
from statedb import StateDb, open_state_db
from statedb.tables import alert_audit, alert_notifications, alert_responses, alerts

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
}
MAX_RESPONSE_LENGTH = 4000

_c = alerts.c


def _key_is(key: AlertKey) -> sa.ColumnElement[bool]:
    factory, device, parameter, rule = key
    return sa.and_(_c.factory == factory, _c.device == device, _c.parameter == parameter, _c.rule == rule)


_IS_ACTIVE = _c.state.in_(ACTIVE_STATES)


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
    ) -> Alert | None:
        """Open an alert for ``key``; returns None when one is already active."""
        factory, device, parameter, rule = key
        try:
            with self.db.write() as conn:
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
                        params=_params_text(params or {}),
                    )
                    .returning(_c.id)
                ).scalar_one()
                self._audit(conn, alert_id, now_ns, ENGINE, "opened", message)
                return self._fetch_alert(conn, alert_id, for_update=False)
        except IntegrityError:
            return None

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

    def reopen(self, alert_id: int, now_ns: int, detail: str = "") -> Alert | None:
        """A resolved alert whose condition came back (flapping): open again, flaps + 1. None when
        another alert of its key is active meanwhile."""
        try:
            with self.db.write() as conn:
                alert = self._fetch_alert(conn, alert_id)
                if alert.state != RESOLVED:
                    raise LifecycleError(f"alert #{alert_id} is {alert.state}: only a resolved alert reopens")
                return self._change(
                    conn,
                    alert_id,
                    now_ns,
                    ENGINE,
                    "reopened",
                    detail,
                    state=OPEN,
                    resolved_ns=None,
                    acknowledged_ns=None,
                    acknowledged_by=None,
                    flaps=_c.flaps + 1,
                )
        except IntegrityError:
            return None

    def resolve(self, key: AlertKey, now_ns: int, actor: str = ENGINE, note: str = "") -> Alert | None:
        """Resolve the active alert for ``key``; returns it, or None when none was active."""
        active = self.active(key)
        if active is None:
            return None
        try:
            return self.resolve_id(active.id, actor, now_ns, note)
        except LifecycleError:
            return None  # resolved by someone else in between

    def resolve_id(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert:
        with self.db.write() as conn:
            alert = self._fetch_alert(conn, alert_id)
            if alert.state not in ACTIVE_STATES:
                raise LifecycleError(f"alert #{alert_id} is {alert.state}: only an active alert resolves")
            return self._change(
                conn, alert_id, now_ns, actor, "resolved", note, state=RESOLVED, resolved_ns=now_ns
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
            self._fetch_alert(conn, alert_id)
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

    # -- reading -------------------------------------------------------------------------------
    def get(self, alert_id: int) -> Alert | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(alerts).where(_c.id == alert_id)).first()
        return _alert(row._mapping) if row else None

    def active(self, key: AlertKey) -> Alert | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(alerts).where(_key_is(key), _IS_ACTIVE)).first()
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
    ) -> builtins.list[Alert]:
        query = sa.select(alerts)
        if state == "active":
            query = query.where(_IS_ACTIVE)
        elif state is not None:
            query = query.where(_c.state == state)
        if factory is not None:
            query = query.where(_c.factory == factory)
        if severity is not None:
            query = query.where(_c.severity == severity)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(_c.id.desc()).limit(limit)).all()
        return [_alert(row._mapping) for row in rows]

    def open_keys(self) -> set[AlertKey]:
        return {a.key for a in self.list(state="active", limit=1_000_000)}

    def audit(self, alert_id: int) -> builtins.list[AuditEntry]:
        a = alert_audit.c
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(a.alert_id, a.ts_ns, a.actor, a.action, a.detail)
                .where(a.alert_id == alert_id)
                .order_by(a.seq)
            ).all()
        return [AuditEntry(int(i), int(t), str(who), str(what), str(d)) for i, t, who, what, d in rows]

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
    )


def open_alert_store(url: str | None, path: Path) -> AlertStore:
    """An alert store on a state database of its own: PostgreSQL when ``url`` is given, else the
    SQLite file ``path``. The server shares one database between its stores instead."""
    return AlertStore(open_state_db(url, path), owns_db=True)
