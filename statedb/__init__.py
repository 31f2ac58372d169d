"""The server's state database: alerts with their audit trail, notification claims and operator
responses, the notifiers' delivery queue, the HTTP API's accounts and tokens, the ingest's dead
letters and the rules' pending work.

One SQLAlchemy Core layer for SQLite (the default, the file of ``state.path``) and PostgreSQL
(``state.url``): the tables (statedb/tables.py), numbered migrations (statedb/migrations/), and
the engine with its read and write transactions (statedb/engine.py). The stores that use it
(alerts/state.py, server/accounts.py, ingest/deadletters.py) hold only their queries.
"""

from __future__ import annotations

from pathlib import Path

from statedb.engine import StateDb, open_postgresql, open_sqlite
from statedb.errors import SchemaVersionError, StateDbError, StateDbUnavailable
from statedb.migrations import migrate

__all__ = [
    "SchemaVersionError",
    "StateDb",
    "StateDbError",
    "StateDbUnavailable",
    "migrate",
    "open_state_db",
]


def open_state_db(url: str | None, path: Path) -> StateDb:
    """PostgreSQL when ``url`` is given, else the SQLite file ``path`` (``:memory:`` for a private
    in-memory database); migrated to this release's schema before it is returned."""
    db = open_postgresql(url) if url else open_sqlite(path)
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db
