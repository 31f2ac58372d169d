"""The state database itself (statedb/): its migrations on both databases, SQLite's locks,
durability and file modes, PostgreSQL's errors, and the dead letters it now keeps on both."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import statedb.migrations as migrations
from alerts.state import AlertStore
from eit.sqlitedb import open_durable
from ingest.deadletters import DeadLetter, DeadLetterStore
from statedb import SchemaVersionError, StateDb, StateDbUnavailable, open_state_db
from statedb.engine import open_sqlite
from statedb.migrations import known_migrations, migrate
from statedb.tables import metadata, schema_version
from testbed.services import EIT, REPO, free_port

KEY = ("kaeng-khoi-biomass", "boiler-1", "so2", "limit")


# A fixture that starts its service itself marks its param: conftest sees only requested fixtures.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str | None, Path]:
    """(state.url, state.path) of an empty state database of each kind."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return url, tmp_path / "state.db"


@pytest.fixture
def db(target: tuple[str | None, Path]) -> Iterator[StateDb]:
    opened = open_state_db(*target)
    yield opened
    opened.close()


def _shape(db: StateDb) -> dict[str, object]:
    """Tables with their columns (name, nullable), primary keys and indexes, as the database has
    them."""
    with db.read() as conn:
        inspector = sa.inspect(conn)
        return {
            name: (
                [(c["name"], bool(c["nullable"])) for c in inspector.get_columns(name)],
                sorted(inspector.get_pk_constraint(name)["constrained_columns"]),
                sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(name)
                ),
            )
            for name in sorted(inspector.get_table_names())
        }


def _declared() -> dict[str, object]:
    return {
        table.name: (
            [(c.name, bool(c.nullable)) for c in table.columns],
            sorted(c.name for c in table.primary_key.columns),
            sorted((str(i.name), tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes),
        )
        for table in sorted(metadata.tables.values(), key=lambda t: t.name)
    }


def test_migrations_make_the_tables_the_code_declares(db: StateDb) -> None:
    assert _shape(db) == _declared()


def test_each_migration_runs_once_and_is_recorded(db: StateDb) -> None:
    with db.read() as conn:
        rows = conn.execute(sa.select(schema_version.c.version, schema_version.c.name)).all()
    assert [(v, n) for v, n in rows] == [(m.version, m.name) for m in known_migrations()]
    versions = [m.version for m in known_migrations()]
    assert versions[0] == 1 and versions == sorted(set(versions))
    assert migrate(db) == []


def test_a_migration_numbered_below_the_newest_applied_is_applied_when_it_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = known_migrations()
    without_third = [m for m in every if m.version != 3]
    monkeypatch.setattr(migrations, "known_migrations", lambda: without_third)
    db = open_sqlite(tmp_path / "state.db")
    try:
        assert migrate(db) == [m.version for m in without_third]
        monkeypatch.setattr(migrations, "known_migrations", lambda: every)
        assert migrate(db) == [3]
        assert _shape(db) == _declared()
    finally:
        db.close()


def test_a_database_of_a_newer_release_is_refused_with_its_version(
    db: StateDb, target: tuple[str | None, Path]
) -> None:
    with db.write() as conn:
        conn.execute(schema_version.insert().values(version=999, name="from_the_future", applied_ns=1))
    with pytest.raises(SchemaVersionError, match="schema version 999, made by a newer release"):
        open_state_db(*target)


def test_processes_starting_together_migrate_a_new_database_once(target: tuple[str | None, Path]) -> None:
    errors: list[BaseException] = []
    opened: list[StateDb] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        try:
            opened.append(open_state_db(*target))  # an engine each, as separate processes have
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with opened[0].read() as conn:
        versions = list(conn.execute(sa.select(schema_version.c.version)).scalars())
    assert sorted(versions) == [m.version for m in known_migrations()]
    for one in opened:
        one.close()


# -- SQLite ----------------------------------------------------------------------------------------


def test_sqlite_reads_take_no_write_lock_and_writes_wait_for_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_state_db(None, path).close()
    db = open_sqlite(path, busy_timeout_s=0.3)
    alerts = AlertStore(db)
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        assert alerts.list() == [] and alerts.get(1) is None  # reads go on
        started = time.monotonic()
        with pytest.raises(StateDbUnavailable, match=r"state\.db: database is locked"):
            alerts.open_alert(KEY, "critical", "m", 1)
        assert time.monotonic() - started >= 0.3  # the busy timeout, waited at BEGIN
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert alerts.open_alert(KEY, "critical", "m", 1) is not None
    db.close()


def test_sqlite_is_wal_and_commits_durably(tmp_path: Path) -> None:
    db = open_state_db(None, tmp_path / "state.db")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    db.close()


def test_sqlite_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "data" / "state.db"
        db = open_state_db(None, path)
        letters = DeadLetterStore(db)
        letters.add([DeadLetter(1, "eit/f/d/data", "not_json", "x", "", "x")])
        files = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
        db.close()
        assert files == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}
        # A file an earlier release made readable by all is taken back when opened.
        loose = tmp_path / "old.db"
        sqlite3.connect(str(loose)).close()
        os.chmod(loose, 0o644)
        open_state_db(None, loose).close()
        assert loose.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old_umask)


# The probe runs in another process: POSIX locks are per process. It asks for SQLite's SHARED
# byte range (SHARED_FIRST = 0x40000002, 510 bytes) for writing, which every open connection of
# a WAL database keeps read-locked; a process that gets it would take itself for the last one.
_SHARED_RANGE_PROBE = """
import fcntl, sys
with open(sys.argv[1], "r+b") as f:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)
    except OSError:
        print("held")
    else:
        print("free")
"""


def _shared_range(path: Path) -> str:
    probe = subprocess.run(
        [sys.executable, "-c", _SHARED_RANGE_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return probe.stdout.strip()


def test_opening_another_connection_keeps_the_locks_of_the_open_ones(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = open_state_db(None, path)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        assert _shared_range(path) == "held"
        # A second opening in the same process (the API and the engine each open the file).
        open_state_db(None, path).close()
        assert _shared_range(path) == "held", "opening the file again dropped the open connection's locks"
    db.close()


def test_opening_the_embedded_store_again_keeps_the_locks_of_its_open_connections(tmp_path: Path) -> None:
    # The same for the files eit/sqlitedb.py opens (the embedded store, the agent's outbox): the
    # ingest and the rules each hold a connection to readings.db in one process.
    path = tmp_path / "readings.db"
    first = open_durable(path)
    first.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    first.execute("SELECT count(*) FROM t").fetchone()
    assert _shared_range(path) == "held"
    open_durable(path).close()
    assert _shared_range(path) == "held", "opening the file again dropped the open connection's locks"
    first.close()


def test_an_in_memory_database_is_shared_by_threads(tmp_path: Path) -> None:
    db = open_state_db(None, Path(":memory:"))
    alerts = AlertStore(db)
    results: list[object] = []

    def open_one(i: int) -> None:
        results.append(alerts.open_alert((*KEY[:3], f"rule-{i}"), "critical", "m", i))

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(alerts.list()) == 6 and None not in results
    db.close()


# -- PostgreSQL ------------------------------------------------------------------------------------


def test_an_unreachable_postgresql_is_named_quickly_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://eit:s3cret-pw@127.0.0.1:{free_port()}/eit"
    started = time.monotonic()
    with pytest.raises(StateDbUnavailable) as caught:
        open_state_db(url, tmp_path / "unused.db")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith("state database postgresql://eit:***@127.0.0.1:") and "s3cret" not in message


def test_eit_commands_name_an_unreachable_state_database_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"site: {REPO / 'examples' / 'town' / 'site.yaml'}\ndata_dir: {tmp_path / 'data'}\n"
        f"state:\n  url: postgresql://eit@127.0.0.1:{free_port()}/eit\n"
    )
    for command in (["alerts"], ["dead-letters"], ["users", "list"]):
        out = subprocess.run(
            [*EIT, *command, "--config", str(config)], capture_output=True, text=True, cwd=REPO, timeout=60
        )
        assert out.returncode == 1, (command, out.stderr)
        assert out.stderr.startswith("eit: state database postgresql://eit@127.0.0.1:"), out.stderr
        assert "Traceback" not in out.stderr


# -- dead letters, on both -------------------------------------------------------------------------


def test_dead_letters_are_kept_in_either_database_with_what_was_rejected(db: StateDb) -> None:
    letters = DeadLetterStore(db)
    letters.add(
        [
            DeadLetter(10, "eit/kaeng-khoi-biomass/boiler-1/data", "not_json", "not JSON", "", "so2=41"),
            DeadLetter(
                11, "eit/kaeng-khoi-biomass/boiler-1/data", "bad_value", "text", "scans[0]", "a\x00b ก"
            ),
        ]
    )
    newest, oldest = letters.recent()
    assert (oldest.reason, oldest.payload, newest.location) == ("not_json", "so2=41", "scans[0]")
    # PostgreSQL's text holds no NUL: both databases keep it as its escape, the rest unchanged.
    assert newest.payload == "a\\x00b ก"
    assert letters.counts() == {"not_json": 1, "bad_value": 1}
    assert [d.id for d in letters.recent(reason="not_json")] == [oldest.id]
