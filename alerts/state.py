"""Alert state in the embedded database (SQLite): one open alert per key, and its history."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from alerts.model import OPEN, RESOLVED, Alert, AlertKey

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    factory     TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    parameter   TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    opened_ns   INTEGER NOT NULL,
    updated_ns  INTEGER NOT NULL,
    message     TEXT    NOT NULL,
    value       REAL,
    limit_value REAL,
    unit        TEXT    NOT NULL DEFAULT '',
    resolved_ns INTEGER
);
-- The database itself guarantees one open alert per (factory, device, parameter, rule).
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open
    ON alerts (factory, device, parameter, rule) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, id);
"""

_COLUMNS = (
    "id, factory, device, parameter, rule, severity, state, opened_ns, updated_ns, message,"
    " value, limit_value, unit, resolved_ns"
)


class AlertStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def open_alert(
        self,
        key: AlertKey,
        severity: str,
        message: str,
        now_ns: int,
        value: float | None = None,
        limit: float | None = None,
        unit: str = "",
    ) -> Alert | None:
        """Open an alert for ``key``; returns None when one is already open."""
        factory, device, parameter, rule = key
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO alerts (factory, device, parameter, rule, severity, state, opened_ns,"
                    " updated_ns, message, value, limit_value, unit)"
                    " VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?)",
                    (factory, device, parameter, rule, severity, now_ns, now_ns, message, value, limit, unit),
                )
            except sqlite3.IntegrityError:
                return None
            alert_id = cur.lastrowid
        assert alert_id is not None
        return self.get(alert_id)

    def resolve(self, key: AlertKey, now_ns: int) -> Alert | None:
        """Resolve the open alert for ``key``; returns it, or None when none was open."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM alerts WHERE factory=? AND device=? AND parameter=? AND rule=?"
                " AND state='open'",
                key,
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE alerts SET state=?, resolved_ns=?, updated_ns=? WHERE id=?",
                (RESOLVED, now_ns, now_ns, row[0]),
            )
        return self.get(int(row[0]))

    def get(self, alert_id: int) -> Alert | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id=?", (alert_id,)).fetchone()
        return _alert(row) if row else None

    def list(self, state: str | None = None, factory: str | None = None, limit: int = 500) -> list[Alert]:
        sql = f"SELECT {_COLUMNS} FROM alerts"
        clauses, params = [], []
        if state is not None:
            clauses.append("state=?")
            params.append(state)
        if factory is not None:
            clauses.append("factory=?")
            params.append(factory)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*params, limit]).fetchall()
        return [_alert(row) for row in rows]

    def open_keys(self) -> set[AlertKey]:
        return {a.key for a in self.list(state=OPEN, limit=1_000_000)}

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
    )
