"""The platform's own SQLite files (the edge outbox, the embedded store): one way to open them and
one way to write to them. The server's state database (statedb/) opens its file the same way,
through SQLAlchemy."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("eit.sqlitedb")


def open_durable(path: Path, timeout_s: float = 30.0) -> sqlite3.Connection:
    """Open (creating its folder) a SQLite file for durable use.

    Autocommit mode, so transactions are explicit (:func:`immediate`); WAL, so readers do not
    block the writer; synchronous=FULL, so a committed transaction is on disk when COMMIT returns
    (what lets the ingest acknowledge a message and the agent move on from a scan). The connection
    may be shared between threads behind the caller's lock; a busy file is waited on for
    ``timeout_s``. The file is readable by its owner only (and so are its -wal and -shm, which
    SQLite creates with the database file's mode).
    """
    if str(path) != ":memory:":
        create_owner_only(path)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=timeout_s)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


OWNER_ONLY = 0o600


def create_owner_only(path: Path) -> None:
    """Create ``path`` (and its folder) readable by its owner only, and take the other users'
    access away from a file (and its -wal and -shm) made before under a looser umask.

    An existing file is never opened here: closing any descriptor of a file drops every POSIX
    lock this process holds on it, so opening and closing it beside this process's open SQLite
    connections would take their locks away, and another connection, finding the file unlocked,
    would checkpoint and delete the WAL under them ("disk I/O error"). Only a file that did not
    exist (O_EXCL) is created and closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, OWNER_ONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                os.chmod(file, OWNER_ONLY)
        except FileNotFoundError:
            continue
        except PermissionError:
            log.warning("%s is readable by others and not ours to change: chmod 600 it", file)


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
