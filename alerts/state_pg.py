"""The alert lifecycle store on PostgreSQL (psycopg 3): the same SQL as the embedded store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from alerts.state import _ADDED_COLUMNS, _INDEXES, _TABLES, _SqlAlertStore
from eit.errors import EitError


class AlertStoreUnavailable(EitError):
    """The alert database cannot be reached."""


class PostgresAlertStore(_SqlAlertStore):
    kind = "postgresql"
    _ph = "%s"
    _integrity_errors = (psycopg.errors.IntegrityError,)

    def __init__(self, url: str, connect_timeout_s: int = 10) -> None:
        self.url = url
        self._lock = threading.RLock()
        try:
            self._db = psycopg.connect(url, connect_timeout=connect_timeout_s, autocommit=False)
        except psycopg.OperationalError as exc:
            raise AlertStoreUnavailable(f"PostgreSQL alert store: {exc}".strip()) from exc
        with self._db.transaction(), self._db.cursor() as cur:
            # Serialise schema creation between processes starting together.
            cur.execute("SELECT pg_advisory_xact_lock(4242001)")
            tables = _TABLES.format(
                id_column="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", real="DOUBLE PRECISION"
            )
            for statement in tables.split(";"):
                if statement.strip():
                    cur.execute(statement)
            for name, decl in _ADDED_COLUMNS:
                cur.execute(f"ALTER TABLE alerts ADD COLUMN IF NOT EXISTS {name} {decl}")
            for statement in _INDEXES.split(";"):
                if statement.strip():
                    cur.execute(statement)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            try:
                with self._db.transaction(), self._db.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                raise AlertStoreUnavailable(f"PostgreSQL alert store: {exc}".strip()) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
