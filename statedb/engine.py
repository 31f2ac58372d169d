"""The connection to the state database, SQLite or PostgreSQL, and its two kinds of transaction.

- PostgreSQL (``state.url``): a pool of psycopg 3 connections, each tested before use
  (``pool_pre_ping``), so a server restart costs the next caller one reconnect, not an error; a
  connection attempt gives up after a few seconds, so an unreachable server answers quickly.
- SQLite (``state.path``, the default): WAL, so readers never wait for the writer;
  synchronous=FULL, so a committed change is on disk when COMMIT returns (as every SQLite file of
  the platform, eit/sqlitedb.py); a busy file is waited on. Reads begin a deferred transaction,
  which takes no write lock; only writes begin IMMEDIATE. Writers of one process queue on a lock
  of their own rather than on SQLite's busy handler. The file and its -wal and -shm files are
  readable by their owner only: they hold password hashes.

Every failure to reach the database is raised as :class:`StateDbUnavailable`, naming it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from eit.sqlitedb import create_owner_only
from statedb.errors import StateDbError, StateDbUnavailable

log = logging.getLogger("statedb")

SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 5
# The HTTP API's worker threads, the rules, the notifiers and the ingest share the pool; a caller
# waits this long for a free connection before the database counts as unavailable.
POSTGRES_POOL_SIZE = 5
POSTGRES_POOL_OVERFLOW = 10
POSTGRES_POOL_TIMEOUT_S = 10.0
_WRITE = "statedb_write"

Kind = Literal["sqlite", "postgresql"]


class StateDb:
    """One state database: its engine, what it is (``kind``, ``where``) and its transactions.

    ``read()`` and ``write()`` give a connection inside a transaction that commits when the block
    ends and rolls back when it raises. The stores that share the database (alerts, accounts,
    dead letters) take one of these and never nest transactions."""

    def __init__(self, engine: Engine, kind: Kind, where: str, *, single_connection: bool = False) -> None:
        self.engine = engine
        self.kind: Kind = kind
        self.where = where
        # SQLite: writers of this process queue here, not in SQLite's busy handler (which polls).
        # An in-memory database is one connection: readers queue too.
        lock = threading.Lock()
        sqlite = kind == "sqlite"
        self._write_guard: AbstractContextManager[Any] = lock if sqlite else nullcontext()
        self._read_guard: AbstractContextManager[Any] = lock if single_connection else nullcontext()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: a consistent view, without SQLite's write lock."""
        with self._read_guard, self._translated(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite: it waits for other writers at its
        start, never half-way)."""
        with self._write_guard, self._translated(), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def ping(self) -> None:
        """Raises :class:`StateDbUnavailable` when the database cannot be reached."""
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except exc.IntegrityError:
            raise  # the callers' business: a unique key taken, a claim made already
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
            raise StateDbUnavailable(f"state database {self.where}: {_reason(error)}") from error
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                raise StateDbUnavailable(f"state database {self.where}: {_reason(error)}") from error
            raise StateDbError(f"state database {self.where}: {_reason(error)}") from error

    def __repr__(self) -> str:
        return f"StateDb({self.kind}, {self.where})"


def _reason(error: Exception) -> str:
    """The driver's own message on one line (psycopg's span several)."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error)
    return " ".join(text.split()) or type(error).__name__


def postgresql_url(url: str) -> URL:
    """A ``postgresql://`` (or ``postgres://``) URL of the configuration, for SQLAlchemy's psycopg 3
    dialect."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise StateDbError(f"state database: expected a postgresql:// URL, got {scheme or url!r}")
    return sa.make_url(f"postgresql+psycopg://{rest}")


def open_postgresql(url: str) -> StateDb:
    target = postgresql_url(url)
    engine = sa.create_engine(
        target,
        pool_pre_ping=True,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_POOL_OVERFLOW,
        pool_timeout=POSTGRES_POOL_TIMEOUT_S,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )
    where = target.set(drivername="postgresql").render_as_string(hide_password=True)
    return StateDb(engine, "postgresql", where)


def open_sqlite(path: Path, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> StateDb:
    """The SQLite file ``path`` (its folder created), or a private in-memory database for
    ``:memory:`` (one connection, shared by the threads in turn)."""
    memory = str(path) == ":memory:"
    if memory:
        engine = sa.create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        create_owner_only(path)  # SQLite creates -wal and -shm with the file's mode
        engine = sa.create_engine(
            sa.URL.create("sqlite", database=str(path)),
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        )
    event.listen(engine, "connect", _sqlite_connected)
    event.listen(engine, "begin", _sqlite_begin)
    return StateDb(engine, "sqlite", str(path), single_connection=memory)


def _sqlite_connected(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun by _sqlite_begin, not by the driver's own guesswork.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")
