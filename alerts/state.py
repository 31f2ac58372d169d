"""Alert lifecycle stores: the embedded database (SQLite, the default) and PostgreSQL.

Both keep the same three tables and run the same SQL (placeholders and a few column types
differ), so one test suite runs against both:

- ``alerts``: one row per alert; the database itself guarantees one active (open or
  acknowledged) alert per (factory, device, parameter, rule) with a partial unique index;
- ``alert_audit``: every change, who made it, when and what;
- ``alert_notifications``: each notification claimed before it is sent, unique per (alert,
  escalation step, notifier, recipient), so an alert is notified once per channel per step, even
  across restarts and with several processes.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

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
)
from eit.sqlitedb import immediate, open_durable

_COLUMNS = (
    "id, factory, device, parameter, rule, severity, state, opened_ns, updated_ns, message, value,"
    " limit_value, unit, resolved_ns, provisional, retroactive, period_start_ns, assignee,"
    " acknowledged_ns, acknowledged_by, closed_ns, escalation_step, flaps, template, params"
)
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

_TABLES = """
CREATE TABLE IF NOT EXISTS alerts (
    id              {id_column},
    factory         TEXT    NOT NULL,
    device          TEXT    NOT NULL,
    parameter       TEXT    NOT NULL,
    rule            TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    opened_ns       BIGINT  NOT NULL,
    updated_ns      BIGINT  NOT NULL,
    message         TEXT    NOT NULL,
    value           {real},
    limit_value     {real},
    unit            TEXT    NOT NULL DEFAULT '',
    resolved_ns     BIGINT
);
CREATE TABLE IF NOT EXISTS alert_audit (
    alert_id  BIGINT NOT NULL,
    seq       {id_column},
    ts_ns     BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    detail    TEXT   NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS alert_notifications (
    alert_id  BIGINT NOT NULL,
    step      INTEGER NOT NULL,
    notifier  TEXT   NOT NULL,
    recipient TEXT   NOT NULL,
    ts_ns     BIGINT NOT NULL,
    PRIMARY KEY (alert_id, step, notifier, recipient)
);
"""
# Columns added after the first release: added to an existing table when missing.
_ADDED_COLUMNS = (
    ("provisional", "INTEGER NOT NULL DEFAULT 0"),
    ("retroactive", "INTEGER NOT NULL DEFAULT 0"),
    ("period_start_ns", "BIGINT"),
    ("assignee", "TEXT"),
    ("acknowledged_ns", "BIGINT"),
    ("acknowledged_by", "TEXT"),
    ("closed_ns", "BIGINT"),
    ("escalation_step", "INTEGER NOT NULL DEFAULT 0"),
    ("flaps", "INTEGER NOT NULL DEFAULT 0"),
    ("template", "TEXT NOT NULL DEFAULT ''"),
    ("params", "TEXT NOT NULL DEFAULT '{}'"),
)
_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active
    ON alerts (factory, device, parameter, rule) WHERE state IN ('open', 'acknowledged');
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, id);
CREATE INDEX IF NOT EXISTS alerts_key ON alerts (factory, device, parameter, rule, id);
CREATE INDEX IF NOT EXISTS alert_audit_alert ON alert_audit (alert_id, seq);
"""


class AlertStore(Protocol):
    """What the engine, the notifiers, the HTTP API and the command line use."""

    kind: str

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
    ) -> Alert | None: ...

    def update(self, alert_id: int, now_ns: int, action: str, detail: str = "", **fields: Any) -> Alert: ...

    def reopen(self, alert_id: int, now_ns: int, detail: str = "") -> Alert | None: ...

    def resolve(self, key: AlertKey, now_ns: int, actor: str = ENGINE, note: str = "") -> Alert | None: ...

    def resolve_id(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert: ...

    def acknowledge(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert: ...

    def assign(self, alert_id: int, actor: str, assignee: str, now_ns: int) -> Alert: ...

    def add_note(self, alert_id: int, actor: str, text: str, now_ns: int) -> Alert: ...

    def close_alert(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert: ...

    def escalate(self, alert_id: int, step: int, now_ns: int, detail: str = "") -> Alert | None: ...

    def get(self, alert_id: int) -> Alert | None: ...

    def active(self, key: AlertKey) -> Alert | None: ...

    def latest_for_key(self, key: AlertKey) -> Alert | None: ...

    def list(
        self,
        state: str | None = None,
        factory: str | None = None,
        limit: int = 500,
        severity: str | None = None,
    ) -> list[Alert]: ...

    def open_keys(self) -> set[AlertKey]: ...

    def audit(self, alert_id: int) -> builtins.list[AuditEntry]: ...

    def claim_notification(
        self, alert_id: int, step: int, notifier: str, recipient: str, now_ns: int
    ) -> bool: ...

    def close(self) -> None: ...


class _SqlAlertStore:
    """The lifecycle in SQL; subclasses provide the connection, transactions and dialect."""

    kind = "sql"
    _ph = "?"
    _integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def _sql(self, sql: str) -> str:
        return sql if self._ph == "?" else sql.replace("?", self._ph)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def close(self) -> None:
        raise NotImplementedError

    def _fetch_alert(self, cur: Any, alert_id: int) -> Alert:
        cur.execute(self._sql(f"SELECT {_COLUMNS} FROM alerts WHERE id=?"), (alert_id,))
        row = cur.fetchone()
        if row is None:
            raise LifecycleError(f"no alert #{alert_id}")
        return _alert(row)

    def _audit(self, cur: Any, alert_id: int, now_ns: int, actor: str, action: str, detail: str) -> None:
        cur.execute(
            self._sql(
                "INSERT INTO alert_audit (alert_id, ts_ns, actor, action, detail) VALUES (?, ?, ?, ?, ?)"
            ),
            (alert_id, now_ns, actor, action, detail),
        )

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
            with self._tx() as cur:
                cur.execute(
                    self._sql(
                        "INSERT INTO alerts (factory, device, parameter, rule, severity, state, opened_ns,"
                        " updated_ns, message, value, limit_value, unit, provisional, retroactive,"
                        " period_start_ns, template, params)"
                        " VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
                    ),
                    (
                        factory,
                        device,
                        parameter,
                        rule,
                        severity,
                        now_ns,
                        now_ns,
                        message,
                        value,
                        limit,
                        unit,
                        int(provisional),
                        int(retroactive),
                        period_start_ns,
                        template,
                        json.dumps(params or {}, ensure_ascii=False, sort_keys=True),
                    ),
                )
                alert_id = int(cur.fetchone()[0])
                self._audit(cur, alert_id, now_ns, ENGINE, "opened", message)
                return self._fetch_alert(cur, alert_id)
        except self._integrity_errors:
            return None

    def update(self, alert_id: int, now_ns: int, action: str, detail: str = "", **fields: Any) -> Alert:
        """Change what the engine knows of an active alert (value, message, provisional ...)."""
        unknown = set(fields) - ENGINE_FIELDS
        if unknown:
            raise ValueError(f"not engine fields: {', '.join(sorted(unknown))}")
        values = {k: (int(v) if isinstance(v, bool) else v) for k, v in fields.items()}
        if "params" in values:
            values["params"] = json.dumps(values["params"], ensure_ascii=False, sort_keys=True)
        with self._tx() as cur:
            sets = ", ".join(f"{k}=?" for k in values)
            cur.execute(
                self._sql(f"UPDATE alerts SET {sets}, updated_ns=? WHERE id=?"),
                (*values.values(), now_ns, alert_id),
            )
            self._audit(cur, alert_id, now_ns, ENGINE, action, detail)
            return self._fetch_alert(cur, alert_id)

    def reopen(self, alert_id: int, now_ns: int, detail: str = "") -> Alert | None:
        """A resolved alert whose condition came back (flapping): open again, flaps + 1."""
        try:
            with self._tx() as cur:
                alert = self._fetch_alert(cur, alert_id)
                if alert.state != RESOLVED:
                    raise LifecycleError(f"alert #{alert_id} is {alert.state}: only a resolved alert reopens")
                cur.execute(
                    self._sql(
                        "UPDATE alerts SET state='open', resolved_ns=NULL, acknowledged_ns=NULL,"
                        " acknowledged_by=NULL, flaps=flaps+1, updated_ns=? WHERE id=?"
                    ),
                    (now_ns, alert_id),
                )
                self._audit(cur, alert_id, now_ns, ENGINE, "reopened", detail)
                return self._fetch_alert(cur, alert_id)
        except self._integrity_errors:
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
        with self._tx() as cur:
            alert = self._fetch_alert(cur, alert_id)
            if alert.state not in ACTIVE_STATES:
                raise LifecycleError(f"alert #{alert_id} is {alert.state}: only an active alert resolves")
            cur.execute(
                self._sql("UPDATE alerts SET state=?, resolved_ns=?, updated_ns=? WHERE id=?"),
                (RESOLVED, now_ns, now_ns, alert_id),
            )
            self._audit(cur, alert_id, now_ns, actor, "resolved", note)
            return self._fetch_alert(cur, alert_id)

    def escalate(self, alert_id: int, step: int, now_ns: int, detail: str = "") -> Alert | None:
        """Raise the escalation step of an unacknowledged open alert (None when it no longer is)."""
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "UPDATE alerts SET escalation_step=?, updated_ns=? WHERE id=? AND state='open'"
                    " AND escalation_step<?"
                ),
                (step, now_ns, alert_id, step),
            )
            if cur.rowcount != 1:
                return None
            self._audit(cur, alert_id, now_ns, ENGINE, "escalated", detail or f"step {step}")
            return self._fetch_alert(cur, alert_id)

    # -- the officers' changes -----------------------------------------------------------------
    def acknowledge(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert:
        with self._tx() as cur:
            alert = self._fetch_alert(cur, alert_id)
            if alert.state != OPEN:
                raise LifecycleError(
                    f"alert #{alert_id} is {alert.state}: only an open alert is acknowledged"
                )
            cur.execute(
                self._sql(
                    "UPDATE alerts SET state=?, acknowledged_ns=?, acknowledged_by=?, updated_ns=?,"
                    " assignee=COALESCE(assignee, ?) WHERE id=?"
                ),
                (ACKNOWLEDGED, now_ns, actor, now_ns, actor, alert_id),
            )
            self._audit(cur, alert_id, now_ns, actor, "acknowledged", note)
            return self._fetch_alert(cur, alert_id)

    def assign(self, alert_id: int, actor: str, assignee: str, now_ns: int) -> Alert:
        with self._tx() as cur:
            alert = self._fetch_alert(cur, alert_id)
            if alert.state == CLOSED:
                raise LifecycleError(f"alert #{alert_id} is closed: it cannot be assigned")
            cur.execute(
                self._sql("UPDATE alerts SET assignee=?, updated_ns=? WHERE id=?"),
                (assignee, now_ns, alert_id),
            )
            self._audit(cur, alert_id, now_ns, actor, "assigned", assignee)
            return self._fetch_alert(cur, alert_id)

    def add_note(self, alert_id: int, actor: str, text: str, now_ns: int) -> Alert:
        if not text.strip():
            raise LifecycleError("a note needs text")
        with self._tx() as cur:
            self._fetch_alert(cur, alert_id)
            cur.execute(self._sql("UPDATE alerts SET updated_ns=? WHERE id=?"), (now_ns, alert_id))
            self._audit(cur, alert_id, now_ns, actor, "note", text)
            return self._fetch_alert(cur, alert_id)

    def close_alert(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> Alert:
        with self._tx() as cur:
            alert = self._fetch_alert(cur, alert_id)
            if alert.state != RESOLVED:
                raise LifecycleError(f"alert #{alert_id} is {alert.state}: resolve it before closing it")
            cur.execute(
                self._sql("UPDATE alerts SET state=?, closed_ns=?, updated_ns=? WHERE id=?"),
                (CLOSED, now_ns, now_ns, alert_id),
            )
            self._audit(cur, alert_id, now_ns, actor, "closed", note)
            return self._fetch_alert(cur, alert_id)

    # -- reading -------------------------------------------------------------------------------
    def get(self, alert_id: int) -> Alert | None:
        with self._tx() as cur:
            cur.execute(self._sql(f"SELECT {_COLUMNS} FROM alerts WHERE id=?"), (alert_id,))
            row = cur.fetchone()
        return _alert(row) if row else None

    def active(self, key: AlertKey) -> Alert | None:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    f"SELECT {_COLUMNS} FROM alerts WHERE factory=? AND device=? AND parameter=? AND rule=?"
                    " AND state IN ('open', 'acknowledged')"
                ),
                key,
            )
            row = cur.fetchone()
        return _alert(row) if row else None

    def latest_for_key(self, key: AlertKey) -> Alert | None:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    f"SELECT {_COLUMNS} FROM alerts WHERE factory=? AND device=? AND parameter=? AND rule=?"
                    " ORDER BY id DESC LIMIT 1"
                ),
                key,
            )
            row = cur.fetchone()
        return _alert(row) if row else None

    def list(
        self,
        state: str | None = None,
        factory: str | None = None,
        limit: int = 500,
        severity: str | None = None,
    ) -> list[Alert]:
        sql = f"SELECT {_COLUMNS} FROM alerts"
        clauses, params = [], []
        if state == "active":
            clauses.append("state IN ('open', 'acknowledged')")
        elif state is not None:
            clauses.append("state=?")
            params.append(state)
        if factory is not None:
            clauses.append("factory=?")
            params.append(factory)
        if severity is not None:
            clauses.append("severity=?")
            params.append(severity)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._tx() as cur:
            cur.execute(self._sql(sql), [*params, limit])
            rows = cur.fetchall()
        return [_alert(row) for row in rows]

    def open_keys(self) -> set[AlertKey]:
        return {a.key for a in self.list(state="active", limit=1_000_000)}

    def audit(self, alert_id: int) -> builtins.list[AuditEntry]:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "SELECT alert_id, ts_ns, actor, action, detail FROM alert_audit"
                    " WHERE alert_id=? ORDER BY seq"
                ),
                (alert_id,),
            )
            rows = cur.fetchall()
        return [AuditEntry(int(a), int(t), str(who), str(what), str(d)) for a, t, who, what, d in rows]

    def claim_notification(
        self, alert_id: int, step: int, notifier: str, recipient: str, now_ns: int
    ) -> bool:
        """Record that (alert, step, notifier, recipient) is being notified; False when it was
        already (the caller then does not send it again)."""
        try:
            with self._tx() as cur:
                cur.execute(
                    self._sql(
                        "INSERT INTO alert_notifications (alert_id, step, notifier, recipient, ts_ns)"
                        " VALUES (?, ?, ?, ?, ?)"
                    ),
                    (alert_id, step, notifier, recipient, now_ns),
                )
        except self._integrity_errors:
            return False
        return True

    def notifications(self, alert_id: int) -> builtins.list[tuple[int, str, str]]:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "SELECT step, notifier, recipient FROM alert_notifications WHERE alert_id=?"
                    " ORDER BY step, notifier, recipient"
                ),
                (alert_id,),
            )
            return [(int(s), str(n), str(r)) for s, n, r in cur.fetchall()]


class SqliteAlertStore(_SqlAlertStore):
    """The embedded default: a SQLite file (shared with the dead letters)."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = open_durable(path)
        self._db.executescript(_TABLES.format(id_column="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL"))
        have = {row[1] for row in self._db.execute("PRAGMA table_info(alerts)")}
        for name, decl in _ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE alerts ADD COLUMN {name} {decl}")
        self._db.execute("DROP INDEX IF EXISTS alerts_one_open")  # the first release's (open only)
        self._db.executescript(_INDEXES)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, immediate(self._db) as cur:
            yield cur

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _alert(row: Any) -> Alert:
    (
        aid,
        factory,
        device,
        parameter,
        rule,
        severity,
        state,
        opened,
        updated,
        message,
        value,
        limit,
        unit,
        resolved,
        provisional,
        retroactive,
        period_start,
        assignee,
        ack_ns,
        ack_by,
        closed,
        step,
        flaps,
        template,
        params,
    ) = row
    return Alert(
        id=int(aid),
        factory=str(factory),
        device=str(device),
        parameter=str(parameter),
        rule=str(rule),
        severity=str(severity),
        state=str(state),
        opened_ns=int(opened),
        updated_ns=int(updated),
        message=str(message),
        value=None if value is None else float(value),
        limit=None if limit is None else float(limit),
        unit=str(unit),
        resolved_ns=None if resolved is None else int(resolved),
        provisional=bool(provisional),
        retroactive=bool(retroactive),
        period_start_ns=None if period_start is None else int(period_start),
        assignee=assignee,
        acknowledged_ns=None if ack_ns is None else int(ack_ns),
        acknowledged_by=ack_by,
        closed_ns=None if closed is None else int(closed),
        escalation_step=int(step),
        flaps=int(flaps),
        template=str(template or ""),
        params=json.loads(params) if params else {},
    )


def open_alert_store(url: str | None, path: Path) -> _SqlAlertStore:
    """The SQLite file ``path`` by default; PostgreSQL when ``url`` is a postgresql:// URL."""
    if url:
        from alerts.state_pg import PostgresAlertStore

        return PostgresAlertStore(url)
    return SqliteAlertStore(path)


# The name the first release used.
AlertStoreSqlite = SqliteAlertStore
