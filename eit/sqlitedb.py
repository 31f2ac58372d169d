"""The platform's own SQLite files (the edge outbox, the embedded store): one way to open them and
one way to write to them. The server's state database (statedb/) opens its file the same way,
through SQLAlchemy."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_durable(path: Path, timeout_s: float = 30.0) -> sqlite3.Connection:
    """Open (creating its folder) a SQLite file for durable use.

    Autocommit mode, so transactions are explicit (:func:`immediate`); WAL, so readers do not
    block the writer; synchronous=FULL, so a committed transaction is on disk when COMMIT returns
    (what lets the ingest acknowledge a message and the agent move on from a scan). The connection
    may be shared between threads behind the caller's lock; a busy file is waited on for
    ``timeout_s``.
    """
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=timeout_s)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """A write transaction: BEGIN IMMEDIATE, COMMIT when the block ends, ROLLBACK on any error.

    SQLite rolls a transaction back by itself on some errors (a full disk, SQLITE_FULL): then
    there is nothing left to roll back, and the error raised is the one that happened, not
    "cannot rollback". A failed COMMIT is rolled back too, so the connection is usable again."""
    cur = db.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        cur.close()
