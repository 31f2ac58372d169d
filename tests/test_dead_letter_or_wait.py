"""Dead letter or wait (docs/architecture.md): one test per row of the table.

A dead letter is only for what is wrong with a message itself; whatever is about the store is an
outage: the batch waits, unacknowledged, retried, and :attr:`Ingest.store_outage` says why and
since when, until an operator has fixed the store; then every reading is stored and none is a
dead letter. The stores are real: InfluxDB 1.x with authentication, a retention policy and its
``max-values-per-tag`` limit, SQLite, and a full disk (a small tmpfs: mounting one needs root).
Two rows need a fault no real part makes on purpose (an exception nobody foresaw): those inject
it, and say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import requests

from eit.model import Reading
from eit.registry import Registry, load_registry
from eit.store import Store, StoreError
from eit.timeutil import NS_PER_S, now_ns, ns_to_iso
from ingest.deadletters import open_dead_letters
from ingest.metrics import IngestMetrics
from ingest.service import BatchResult, Incoming, Ingest
from ingest.settings import IngestSettings
from ingest.store.influx import InfluxStore, write_refusal
from ingest.store.sqlite import SqliteStore
from testbed.services import REPO, InfluxDB, wait_for
from tests.conftest import EXAMPLE_SITE

F, D = "kaeng-khoi-biomass", "boiler-1"
TOPIC = f"eit/{F}/{D}/data"
ADMIN = ("admin", "admin-password")
HOUR_NS = 3600 * NS_PER_S


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(EXAMPLE_SITE)


@pytest.fixture(scope="module")
def secured_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """A real InfluxDB 1.x with authentication on, and its admin."""
    server = InfluxDB(tmp_path_factory.mktemp("influx-auth"), auth_enabled=True).start()
    influxql(server, f"CREATE USER {ADMIN[0]} WITH PASSWORD '{ADMIN[1]}' WITH ALL PRIVILEGES", auth=None)
    yield server
    server.stop()


def influxql(server: InfluxDB, q: str, auth: tuple[str, str] | None = ADMIN) -> None:
    resp = requests.post(f"{server.url}/query", params={"q": q}, auth=auth, timeout=10)
    assert resp.status_code == 200 and "error" not in resp.text, resp.text


def ingest_on(store: Store, tmp_path: Path, registry: Registry) -> Ingest:
    letters = open_dead_letters(None, tmp_path / "state.db")
    return Ingest(registry, store, letters, IngestMetrics(), [], IngestSettings(retry_max_s=0.5))


def message(times_ns: list[int], values: dict[str, float] | None = None, mid: int = 1) -> Incoming:
    scans = [
        {"seq": i + 1, "ts": ns_to_iso(ts), "values": values or {"so2": 40.0 + i % 7, "o2": 9.0}}
        for i, ts in enumerate(times_ns)
    ]
    return Incoming(mid, 1, TOPIC, json.dumps({"v": 1, "scans": scans}).encode())


def batch(ingest: Ingest, *messages: Incoming) -> BatchResult:
    result = ingest.decode_batch(list(messages), now_ns())
    assert result.dead == [], result.dead
    return result


def recent(n: int) -> list[int]:
    """n scan times, a second apart, ending now."""
    end = now_ns() - now_ns() % NS_PER_S
    return [end - (n - i) * NS_PER_S for i in range(n)]


def metric(ingest: Ingest, name: str, labels: dict[str, str] | None = None) -> float:
    return ingest.metrics.registry.get_sample_value(name, labels or {}) or 0.0


def held_until_fixed(ingest: Ingest, result: BatchResult, cause: str, fix: Callable[[], object]) -> None:
    """Store ``result`` on a thread of its own: it must wait (the outage named by ``cause``, no
    dead letter, nothing acknowledged) until ``fix`` has run, then be stored whole."""
    readings = len(result.readings)
    stored = threading.Event()
    failed: list[BaseException] = []

    def store() -> None:
        try:
            ingest.store_batch(result)
            stored.set()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failed.append(exc)

    writer = threading.Thread(target=store, daemon=True)
    writer.start()
    try:
        wait_for(
            lambda: ingest.store_outage is not None or bool(failed), 30, "the ingest to report the outage"
        )
        assert not failed, failed
        outage = ingest.store_outage
        assert outage is not None and cause in outage.reason, outage
        assert outage.what == "store" and outage.since_ns <= now_ns()
        assert metric(ingest, "eit_store_outage") == 1
        assert metric(ingest, "eit_store_outage_since_seconds") == pytest.approx(outage.since_ns / 1e9)
        wait_for(lambda: (ingest.store_outage or outage).attempts >= 2, 30, "a retry")
        assert not stored.is_set(), "the batch went on during the outage"
        fix()
    except BaseException:
        ingest.stop()  # ends the retries: the thread gives up and leaves
        raise
    assert stored.wait(60), f"the batch was not stored once the store was fixed: {failed}"
    writer.join(5)
    assert ingest.store_outage is None and metric(ingest, "eit_store_outage") == 0
    assert result.dead == [] and ingest.deadletters.counts() == {}
    assert len(result.readings) == readings
    assert metric(ingest, "eit_readings_stored_total") == readings


# -- what is wrong with one message: a dead letter ---------------------------------------------


def test_an_exception_no_reason_foresaw_makes_its_message_an_internal_error_dead_letter(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = ingest_on(SqliteStore(tmp_path / "r.db"), tmp_path, registry)
    check = ingest.validator.check

    def check_failing_on_seq_666(
        topic: object, decoded: object, now: int, verified: object = None
    ) -> object:  # an injected fault
        if any(scan.seq == 666 for scan in decoded.scans):  # type: ignore[attr-defined]
            raise ZeroDivisionError("an injected fault")
        return check(topic, decoded, now, verified)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest.validator, "check", check_failing_on_seq_666)
    times = recent(2)
    bad = Incoming(
        1,
        1,
        TOPIC,
        json.dumps(
            {"v": 1, "scans": [{"seq": 666, "ts": ns_to_iso(times[0]), "values": {"so2": 1}}]}
        ).encode(),
    )
    ingest.process([bad, message(times[1:], mid=2)])
    assert ingest.store.count() == 2  # the other message: so2 and o2
    [letter] = ingest.deadletters.recent()
    assert (letter.reason, letter.detail) == ("internal_error", "ZeroDivisionError: an injected fault")
    assert json.loads(letter.payload)["scans"][0]["seq"] == 666
    assert metric(ingest, "eit_dead_letters_total", {"reason": "internal_error"}) == 1


def test_sqlite_integer_overflow_dead_letters_that_reading_alone(tmp_path: Path, registry: Registry) -> None:
    ingest = ingest_on(SqliteStore(tmp_path / "r.db"), tmp_path, registry)
    times = recent(400)
    result = batch(ingest, message(times))
    # The wire decoder refuses seq 2^63; another decoder (or a bug) may not: the store finds it.
    result.readings.insert(123, Reading(F, D, "so2", times[0] - NS_PER_S, 41.0, "N", 2**63))
    ingest.store_batch(result)
    assert ingest.store.count() == 800 and len(result.readings) == 800
    [letter] = ingest.deadletters.recent()
    assert (letter.reason, letter.location, letter.topic) == ("value_out_of_range", "so2", TOPIC)
    assert "too large" in letter.detail
    assert json.loads(letter.payload)["seq"] == 2**63
    assert ingest.store_outage is None


def test_influxdb_field_type_conflict_dead_letters_that_reading_alone(
    tmp_path: Path, registry: Registry, influxdb: InfluxDB, influx_database: str
) -> None:
    store = InfluxStore(influxdb.url, influx_database)
    ingest = ingest_on(store, tmp_path, registry)
    # Ten days ago (another shard than today's) another writer stored `value` as text: InfluxDB
    # refuses a float `value` in that shard from now on; today's shard takes it.
    old = now_ns() - 10 * 24 * HOUR_NS
    store.write_lines([f'readings,channel=note,device=x,factory=x value="text" {old}'])
    times = recent(300)
    result = batch(ingest, message(times), message([old + NS_PER_S], {"so2": 42.0}, mid=2))
    ingest.store_batch(result)
    assert store.count(factory=F) == 600
    [letter] = ingest.deadletters.recent()
    assert (letter.reason, letter.location) == ("field_type_conflict", "so2")
    assert "field type conflict" in letter.detail
    assert json.loads(letter.payload)["ts"] == ns_to_iso(old + NS_PER_S)
    store.close()


def test_influxdb_points_beyond_the_retention_policy_are_dead_letters_with_the_reason(
    tmp_path: Path, registry: Registry, influxdb: InfluxDB, influx_database: str
) -> None:
    requests.post(
        f"{influxdb.url}/query",
        params={"q": f'CREATE DATABASE "{influx_database}" WITH DURATION 1h'},
        timeout=10,
    ).raise_for_status()

    class CountingWrites(InfluxStore):  # the real store, its writes counted
        writes = 0

        def write(self, readings: Sequence[Reading]) -> None:
            self.writes += 1
            super().write(readings)

    store = CountingWrites(influxdb.url, influx_database)
    ingest = ingest_on(store, tmp_path, registry)
    old = now_ns() - 3 * HOUR_NS
    # A backlog of 300 scans older than the retention, then the 100 latest ones.
    result = batch(ingest, message([old + i * NS_PER_S for i in range(300)], mid=2), message(recent(100)))
    ingest.store_batch(result)
    assert store.count(factory=F) == 200
    letters = ingest.deadletters.recent(1000)
    assert len(letters) == 600
    assert {(d.reason, d.location) for d in letters} == {
        ("beyond_retention", "o2"),
        ("beyond_retention", "so2"),
    }
    assert all("points beyond retention policy" in d.detail for d in letters)
    # InfluxDB says how many of a write it dropped: a half dropped whole needs no more writes.
    assert store.writes <= 25, store.writes
    store.close()


# -- what is about the store: the batch waits ----------------------------------------------------


@pytest.mark.integration  # starts an InfluxDB of its own
def test_influxdb_401_waits_until_the_credentials_work(
    tmp_path: Path, registry: Registry, secured_influx: InfluxDB
) -> None:
    user, database = f"ingest_{uuid.uuid4().hex[:6]}", f"d_{uuid.uuid4().hex[:6]}"
    influxql(secured_influx, f'CREATE DATABASE "{database}"')
    store = InfluxStore(secured_influx.url, database, username=user, password="its-password")
    ingest = ingest_on(store, tmp_path, registry)

    def create_the_user() -> None:
        influxql(secured_influx, f"CREATE USER {user} WITH PASSWORD 'its-password'")
        influxql(secured_influx, f'GRANT ALL ON "{database}" TO {user}')

    held_until_fixed(ingest, batch(ingest, message(recent(50))), "401", create_the_user)
    assert store.count(factory=F) == 100
    store.close()


@pytest.mark.integration  # starts an InfluxDB of its own
def test_influxdb_403_waits_until_the_user_may_write(
    tmp_path: Path, registry: Registry, secured_influx: InfluxDB
) -> None:
    user, database = f"ingest_{uuid.uuid4().hex[:6]}", f"d_{uuid.uuid4().hex[:6]}"
    influxql(secured_influx, f'CREATE DATABASE "{database}"')
    influxql(secured_influx, f"CREATE USER {user} WITH PASSWORD 'pw'")
    influxql(secured_influx, f'GRANT READ ON "{database}" TO {user}')
    store = InfluxStore(secured_influx.url, database, username=user, password="pw")
    ingest = ingest_on(store, tmp_path, registry)
    grant = lambda: influxql(secured_influx, f'GRANT ALL ON "{database}" TO {user}')  # noqa: E731
    held_until_fixed(ingest, batch(ingest, message(recent(50))), "403", grant)
    assert store.count(factory=F) == 100
    store.close()


@pytest.mark.integration  # starts an InfluxDB of its own
def test_a_missing_influxdb_database_waits_until_it_is_created(
    tmp_path: Path, registry: Registry, secured_influx: InfluxDB
) -> None:
    # A user who may not create databases (as on InfluxDB 2.x/3.x, whose DBRP mapping is the
    # operator's): its write answers 404 database not found until the operator makes it.
    user, database = f"ingest_{uuid.uuid4().hex[:6]}", f"d_{uuid.uuid4().hex[:6]}"
    influxql(secured_influx, f"CREATE USER {user} WITH PASSWORD 'pw'")
    store = InfluxStore(secured_influx.url, database, username=user, password="pw")
    ingest = ingest_on(store, tmp_path, registry)

    def create_the_database() -> None:
        influxql(secured_influx, f'CREATE DATABASE "{database}"')
        influxql(secured_influx, f'GRANT ALL ON "{database}" TO {user}')

    held_until_fixed(ingest, batch(ingest, message(recent(50))), "database not found", create_the_database)
    assert store.count(factory=F) == 100
    store.close()


@pytest.mark.integration  # starts an InfluxDB of its own
def test_influxdb_max_values_per_tag_waits_until_the_limit_is_raised(
    tmp_path: Path, registry: Registry, influx_database: str
) -> None:
    server = InfluxDB(tmp_path / "influx-limited", max_values_per_tag=3).start()
    try:
        store = InfluxStore(server.url, influx_database)
        # Three channels of other devices take the three values InfluxDB allows the tag.
        store.write_lines(
            [f"readings,channel=c{i},device=x,factory=x value=1.0 {now_ns()}" for i in range(3)]
        )
        ingest = ingest_on(store, tmp_path, registry)

        def raise_the_limit() -> None:  # the operator's fix: a higher limit, InfluxDB restarted
            server.stop()
            server.reconfigure(max_values_per_tag=0)
            server.start()

        held_until_fixed(
            ingest, batch(ingest, message(recent(50))), "max-values-per-tag limit exceeded", raise_the_limit
        )
        assert store.count(factory=F) == 100
        store.close()
    finally:
        server.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full disk is a small tmpfs here, and mounting one needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with a file of its own; returns the file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    assert os.statvfs(disk).f_bavail == 0
    return filler


def test_a_full_disk_under_sqlite_waits_until_there_is_room(
    tmp_path: Path, registry: Registry, small_disk: Path
) -> None:
    store = SqliteStore(small_disk / "readings.db")
    ingest = ingest_on(store, tmp_path, registry)  # the dead letters elsewhere: only the store is full
    store.write([Reading(F, D, "so2", now_ns() - HOUR_NS, 1.0)])
    filler = fill(small_disk)
    held_until_fixed(ingest, batch(ingest, message(recent(2000))), "database or disk is full", filler.unlink)
    assert store.count(factory=F) == 4001
    store.close()


@pytest.mark.integration  # starts an InfluxDB of its own
def test_a_full_disk_under_influxdb_waits_until_there_is_room(
    tmp_path: Path, registry: Registry, small_disk: Path
) -> None:
    server = InfluxDB(tmp_path / "influx-small-disk", storage=small_disk).start()
    try:
        store = InfluxStore(server.url, "eit")
        store.write([Reading(F, D, "so2", now_ns() - HOUR_NS, 1.0)])
        ingest = ingest_on(store, tmp_path, registry)
        filler = fill(small_disk)

        def make_room() -> None:
            # InfluxDB 1.x keeps a failed write-ahead log write as the log's state until it
            # restarts: the operator frees the disk and restarts it.
            filler.unlink()
            server.stop()
            server.start()

        held_until_fixed(ingest, batch(ingest, message(recent(2000))), "no space left on device", make_room)
        assert store.count(factory=F) == 4001
        store.close()
    finally:
        server.stop()


@pytest.mark.integration  # starts an InfluxDB of its own
def test_an_unreachable_influxdb_waits_until_it_answers(tmp_path: Path, registry: Registry) -> None:
    server = InfluxDB(tmp_path / "influx-late")  # not started yet
    try:
        store = InfluxStore(server.url, "eit", timeout_s=2)
        ingest = ingest_on(store, tmp_path, registry)
        held_until_fixed(ingest, batch(ingest, message(recent(50))), "cannot be reached", server.start)
        assert store.count(factory=F) == 100
        store.close()
    finally:
        server.stop()


def test_an_exception_no_reason_foresaw_from_the_store_dead_letters_the_reading_alone(
    tmp_path: Path, registry: Registry
) -> None:
    real = SqliteStore(tmp_path / "r.db")

    class StoreFailingOnOneValue:  # an injected fault: the real store, but 13.13 raises
        kind = "sqlite"

        def write(self, readings: list[Reading]) -> None:
            if any(r.value == 13.13 for r in readings):
                raise KeyError("an injected fault")
            real.write(readings)

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    ingest = ingest_on(StoreFailingOnOneValue(), tmp_path, registry)  # type: ignore[arg-type]
    times = recent(100)
    result = batch(ingest, message(times), message([times[0] - NS_PER_S], {"so2": 13.13}, mid=2))
    ingest.store_batch(result)
    assert real.count() == 200
    [letter] = ingest.deadletters.recent()
    assert (letter.reason, letter.detail, letter.location) == (
        "internal_error",
        "KeyError: 'an injected fault'",
        "so2",
    )
    real.close()


# -- the table's texts, as InfluxDB 1.x and 2.x word them ------------------------------------------


@pytest.mark.parametrize(
    ("status", "text", "outcome"),
    [
        (401, '{"error":"authorization failed"}', "wait"),
        (401, '{"code":"unauthorized","message":"unauthorized access"}', "wait"),
        (403, '{"error":"\\"w\\" user is not authorized to write to database \\"d\\""}', "wait"),
        (404, '{"error":"database not found: \\"d\\""}', "wait"),
        (404, '{"code":"not found","message":"bucket \\"b\\" not found"}', "wait"),
        (429, '{"code":"too many requests","message":"org exceeded its write quota"}', "wait"),
        (500, '{"error":"engine: error writing WAL entry: write x.wal: no space left on device"}', "wait"),
        (503, "", "wait"),
        (
            400,
            '{"error":"partial write: max-values-per-tag limit exceeded (3/3): measurement=\\"readings\\""}',
            "wait",
        ),
        (400, '{"error":"partial write: max-series-per-database limit exceeded: (1000000)"}', "wait"),
        (400, '{"error":"partial write: points beyond retention policy dropped=1"}', "beyond_retention"),
        (
            422,
            '{"code":"unprocessable entity","message":"failure writing points to database: partial write:'
            ' points beyond retention policy dropped=1"}',
            "beyond_retention",
        ),
        (
            400,
            '{"error":"partial write: field type conflict: input field \\"value\\" ..."}',
            "field_type_conflict",
        ),
        (400, '{"error":"unable to parse \'readings value=x 1\': invalid boolean"}', "store_refused"),
    ],
)
def test_influxdb_write_refusals_are_classified_by_what_they_are_about(
    status: int, text: str, outcome: str
) -> None:
    error = write_refusal(status, text, "InfluxDB refused the write")
    if outcome == "wait":
        assert not isinstance(error, StoreError), error
    else:
        assert isinstance(error, StoreError) and error.reason == outcome, error
    assert str(status) in str(error)


def test_every_row_of_the_table_in_the_architecture_notes_names_a_test_that_exists() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text[text.index("### The table") : text.index("### Dead letters cannot grow")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "tests/" in line]
    assert len(rows) >= 18
    for row in rows:
        path, name = row.rstrip(" |").rsplit("| ", 1)[1].split("::")
        assert f"def {name}(" in (REPO / path).read_text(), row
