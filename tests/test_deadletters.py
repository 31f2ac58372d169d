"""Dead letters that cannot grow without bound, on SQLite and PostgreSQL: keyed (a redelivered
bad message is kept once, counted, with its first and last times), every field capped, at most
``max_per_factory`` per factory (the oldest go first, counted), none past the retention; the
dead letters of earlier releases keyed and merged by migration 0004; and `eit dead-letters`
escaping what a sender put in them before it reaches a terminal."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from eit.registry import load_registry
from ingest.deadletters import (
    MAX_DETAIL_CHARS,
    MAX_LOCATION_CHARS,
    MAX_TOPIC_CHARS,
    DeadLetter,
    DeadLetterStore,
    letter_key,
    open_dead_letters,
    payload_text,
    printable,
)
from ingest.metrics import IngestMetrics
from ingest.service import Incoming, Ingest
from ingest.settings import DeadLetterSettings
from ingest.store.sqlite import SqliteStore
from statedb import StateDb, migrate, open_state_db
from statedb.engine import open_postgresql, open_sqlite
from statedb.migrations import known_migrations
from statedb.tables import dead_letters, schema_version
from testbed.services import EIT, REPO, write_serve_config
from tests.conftest import EXAMPLE_SITE

KK = "kaeng-khoi-biomass"
TOPIC = f"eit/{KK}/boiler-1/data"
T0 = 1_795_752_000 * 1_000_000_000
DAY = 86_400 * 1_000_000_000


# A fixture that starts its service itself marks its param: conftest sees only requested fixtures.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str | None, Path]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return url, tmp_path / "state.db"


@pytest.fixture
def db(target: tuple[str | None, Path]) -> Iterator[StateDb]:
    opened = open_state_db(*target)
    yield opened
    opened.close()


def letter(
    ns: int, payload: str = "so2=41", *, topic: str = TOPIC, factory: str = KK, detail: str = "x"
) -> DeadLetter:
    return DeadLetter(ns, topic, "not_json", detail, "", payload, factory=factory)


def test_a_redelivered_dead_letter_is_kept_once_with_its_count_and_first_and_last_times(db: StateDb) -> None:
    letters = DeadLetterStore(db)
    letters.add([letter(T0, detail="first")])
    letters.add([letter(T0 + 5, detail="again"), letter(T0 + 9, detail="latest")])  # twice in one batch
    letters.add([letter(T0 + 7, detail="late")])  # delivered late: the last time stays the latest
    letters.add([letter(T0 + 8, "another payload")])
    kept = {d.payload: d for d in letters.recent()}
    assert set(kept) == {"so2=41", "another payload"}
    again = kept["so2=41"]
    assert (again.count, again.received_ns, again.last_received_ns) == (4, T0, T0 + 9)
    assert again.detail == "latest"  # the detail of its latest time
    assert letters.counts() == {"not_json": 2}
    assert [d.payload for d in letters.recent()] == ["so2=41", "another payload"]  # last seen first


def test_the_key_covers_the_whole_payload_when_only_64_kib_are_kept(db: StateDb) -> None:
    letters = DeadLetterStore(db)
    first = b"x" * 100_000 + b"1"
    second = b"x" * 100_000 + b"2"
    letters.add([letter(T0, payload_text(first)), letter(T0 + 1, payload_text(second))])
    kept = letters.recent()
    assert len(kept) == 2
    for d in kept:
        assert d.payload.startswith("x" * 65_536) and "100,001 bytes in all, sha256 " in d.payload
        assert len(d.payload) < 65_536 + 120


def test_every_field_is_capped_and_nul_and_lone_surrogates_kept_as_escapes(db: StateDb) -> None:
    letters = DeadLetterStore(db)
    huge = DeadLetter(
        T0,
        "eit/" + "t" * 70_000,
        "not_json",
        "d" * 100_000,
        "scans[0].values." + "\ud800" + "c" * 10_000,
        "p\x00" * 200_000,
    )
    letters.add([huge])
    [kept] = letters.recent()
    assert len(kept.topic) == MAX_TOPIC_CHARS and kept.topic.endswith("...")
    assert len(kept.detail) == MAX_DETAIL_CHARS
    assert len(kept.location) == MAX_LOCATION_CHARS and kept.location.startswith("scans[0].values.\\ud800")
    assert "\x00" not in kept.payload and "sha256" in kept.payload


def test_each_factory_keeps_at_most_its_cap_and_the_oldest_go_first(db: StateDb) -> None:
    letters = DeadLetterStore(db, settings=DeadLetterSettings(max_per_factory=5))
    evicted = letters.add([letter(T0 + i, f"kk {i}") for i in range(8)])
    other = letters.add([letter(T0 + i, f"other {i}", factory="siam-cassava-starch") for i in range(3)])
    assert (evicted.cap, evicted.factories, other.cap) == (3, [KK], 0)
    kept = [d.payload for d in letters.recent(100)]
    assert sorted(p for p in kept if p.startswith("kk")) == [f"kk {i}" for i in range(3, 8)]
    assert len([p for p in kept if p.startswith("other")]) == 3
    # A repeat of a kept letter is no new row; a new one pushes out the one seen longest ago.
    assert letters.add([letter(T0 + 20, "kk 3")]).cap == 0
    assert letters.add([letter(T0 + 21, "kk 8")]).cap == 1
    assert sorted(p for p in (d.payload for d in letters.recent(100)) if p.startswith("kk")) == [
        "kk 3", "kk 5", "kk 6", "kk 7", "kk 8"
    ]  # fmt: skip


def test_dead_letters_past_the_retention_go_and_a_lowered_cap_applies_at_start(db: StateDb) -> None:
    letters = DeadLetterStore(db, settings=DeadLetterSettings(retention_days=1))
    letters.add([letter(T0 - 3 * DAY, "old"), letter(T0 - 2 * DAY, "older than a day")], now_ns=T0 - 2 * DAY)
    evicted = letters.add([letter(T0, "new")])  # swept on the letters' own clock
    assert evicted.retention == 2
    assert [d.payload for d in letters.recent()] == ["new"]
    letters.add([letter(T0 + i + 1, f"n{i}") for i in range(4)])
    lowered = DeadLetterStore(db, settings=DeadLetterSettings(max_per_factory=2, retention_days=1))
    pruned = lowered.prune(T0 + DAY // 2)
    assert (pruned.cap, pruned.retention) == (3, 0)
    assert [d.payload for d in lowered.recent()] == ["n3", "n2"]


def test_the_ingest_counts_what_the_caps_let_go_and_unregistered_senders_share_one_allowance(
    tmp_path: Path,
) -> None:
    letters = open_dead_letters(None, tmp_path / "state.db", DeadLetterSettings(max_per_factory=3))
    ingest = Ingest(load_registry(EXAMPLE_SITE), SqliteStore(tmp_path / "r.db"), letters, IngestMetrics(), [])
    # Made-up factories (and a broken topic) share the one allowance of unregistered senders.
    made_up = [Incoming(i, 1, f"eit/made-up-{i}/d/data", b"junk") for i in range(6)]
    ingest.process([*made_up, Incoming(9, 1, "eit/no-kind", b"junk"), Incoming(10, 1, TOPIC, b"junk")])
    factories = sorted(d.factory for d in letters.recent(100))
    assert factories == ["", "", "", KK]
    evicted = ingest.metrics.registry.get_sample_value("eit_dead_letters_evicted_total", {"cause": "cap"})
    assert evicted == 4
    ingest.store.close()
    letters.close()


def _migrated_to(db: StateDb, version: int) -> None:
    for migration in known_migrations()[:version]:
        with db.write() as conn:
            schema_version.create(conn, checkfirst=True)
            migration.upgrade(conn)
            conn.execute(
                schema_version.insert().values(version=migration.version, name=migration.name, applied_ns=T0)
            )


def test_migration_0004_keys_merges_and_caps_the_dead_letters_of_earlier_releases(
    target: tuple[str | None, Path],
) -> None:
    url, path = target
    db = open_postgresql(url) if url else open_sqlite(path)
    try:
        _migrated_to(db, 3)
        old = [
            (T0, TOPIC, "not_json", "d1", "", "so2=41"),
            (T0 + 5, TOPIC, "not_json", "d2", "", "so2=41"),  # a redelivery of release 0.1's
            (T0 + 2, "eit/" + "t" * 1000, "bad_topic", "long", "", "x"),
            (T0 + 3, f"eit/{KK}/boiler-1/status", "bad_status", "s", "", "sleepy"),
        ]
        with db.write() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO dead_letters (received_ns, topic, reason, detail, location, payload)"
                    " VALUES (:ns, :topic, :reason, :detail, :location, :payload)"
                ),
                [
                    dict(zip(("ns", "topic", "reason", "detail", "location", "payload"), row, strict=True))
                    for row in old
                ],
            )
        assert migrate(db) == list(range(4, len(known_migrations()) + 1))
        letters = DeadLetterStore(db)
        kept = {d.payload: d for d in letters.recent()}
        assert set(kept) == {"so2=41", "x", "sleepy"}
        assert (
            kept["so2=41"].id,
            kept["so2=41"].count,
            kept["so2=41"].received_ns,
            kept["so2=41"].last_received_ns,
        ) == (1, 2, T0, T0 + 5)
        assert (kept["so2=41"].factory, kept["sleepy"].factory, kept["x"].factory) == (KK, KK, "")
        assert len(kept["x"].topic) == MAX_TOPIC_CHARS
        # Keyed as new dead letters are: the same message rejected again joins its row.
        assert kept["so2=41"].key == letter_key(TOPIC, "not_json", "", "so2=41")
        letters.add([DeadLetter(T0 + 9, TOPIC, "not_json", "d3", "", "so2=41", factory=KK)])
        again = {d.payload: d for d in letters.recent()}["so2=41"]
        assert (again.id, again.count, again.last_received_ns) == (1, 3, T0 + 9)
        with db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one() == 3
    finally:
        db.close()


def test_eit_dead_letters_escapes_control_characters_in_what_senders_sent(tmp_path: Path) -> None:
    config = write_serve_config(tmp_path, 1883)
    letters = DeadLetterStore(open_state_db(None, tmp_path / "data" / "state.db"), owns_db=True)
    hostile = "\x1b[2J\x1b]0;owned\x07\rclean\u202eevil\x9b31m ก"
    letters.add(
        [
            DeadLetter(
                T0,
                f"eit/{KK}/boiler-1/data",
                "bad_value",
                f"'so2': text ({hostile!s})",
                "scans[0]",
                hostile,
                factory=KK,
            )
        ]
    )
    letters.close()

    def eit(*args: str) -> str:
        done = subprocess.run(
            [*EIT, "dead-letters", "--config", str(config), *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    text = eit()
    for raw in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert raw not in text
    assert "\\x1b[2J\\x1b]0;owned\\x07\\x0dclean\\u202eevil\\x9b31m ก" in text  # shown, Thai as it is
    listed = eit("--json")
    for raw in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert raw not in listed
    [row] = json.loads(listed)
    assert row["payload"] == hostile and row["count"] == 1  # the JSON still says exactly what came
    assert printable(hostile) in text
