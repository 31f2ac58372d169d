"""Numbered migrations of the state database.

Each migration is a module here named ``NNNN_what_it_does.py`` with one function,
``upgrade(conn)``. They run in number order when the database is opened, each in a write
transaction of its own (DDL is transactional on SQLite and PostgreSQL: a migration that fails
leaves nothing behind), and the ``schema_version`` table records each one that ran. Processes
starting together take turns: SQLite's write lock, PostgreSQL's advisory lock.

A migration holds its own DDL, never the tables of statedb/tables.py (those are the shape of
today and will change): it must do the same thing to every database whenever it runs. To add a
table, add the next module (``0003_cases.py`` creating ``cases``) and the table to
statedb/tables.py; tests/test_statedb.py checks that the two agree on both databases.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eit.timeutil import now_ns
from statedb.engine import StateDb
from statedb.errors import SchemaVersionError, StateDbError
from statedb.tables import schema_version

log = logging.getLogger("statedb.migrations")

_MODULE = re.compile(r"(\d{4})_([a-z0-9_]+)")
# Serialises migrations between PostgreSQL clients (any constant of our own).
_ADVISORY_LOCK = 4242000


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    upgrade: Callable[[Connection], None]


def known_migrations() -> list[Migration]:
    """The migrations of this release, in order. Each number is used once; a number may be
    missing (kept for a migration that is not part of this release), which
    :func:`migrate` applies whenever it arrives, as it applies every version a database lacks."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        match = _MODULE.fullmatch(module.name)
        if match is None:
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        found.append(Migration(int(match.group(1)), match.group(2), loaded.upgrade))
    found.sort(key=lambda m: m.version)
    numbers = [m.version for m in found]
    if len(set(numbers)) != len(numbers) or (numbers and numbers[0] != 1):
        raise StateDbError(f"state database migrations must be numbered from 1, each number once: {numbers}")
    return found


def applied_versions(db: StateDb) -> set[int]:
    """The migrations recorded in the database (none for a new or a previous release's one)."""
    with db.read() as conn:
        if not sa.inspect(conn).has_table(schema_version.name):
            return set()
        return {int(v) for v in conn.execute(sa.select(schema_version.c.version)).scalars()}


def migrate(db: StateDb) -> list[int]:
    """Bring ``db`` to this release's schema; returns the versions applied now (often none)."""
    todo = known_migrations()
    newest = todo[-1].version if todo else 0
    done = applied_versions(db)
    if done and max(done) > newest:
        raise SchemaVersionError(
            f"state database {db.where} is at schema version {max(done)}, made by a newer release;"
            f" this release knows versions up to {newest}: run the newer release (or restore a backup)"
        )
    applied = []
    for migration in todo:
        if migration.version in done:
            continue
        with db.write() as conn:
            if db.kind == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
            schema_version.create(conn, checkfirst=True)
            ran = conn.execute(
                sa.select(schema_version.c.version).where(schema_version.c.version == migration.version)
            ).first()
            if ran is not None:
                continue  # another process ran it while this one waited for the lock
            migration.upgrade(conn)
            conn.execute(
                schema_version.insert().values(
                    version=migration.version, name=migration.name, applied_ns=now_ns()
                )
            )
        log.info("state database %s: migration %04d %s applied", db.where, migration.version, migration.name)
        applied.append(migration.version)
    return applied
