"""Partition leases (ingest/leases.py) on the state database, and the cluster's topology names
(ingest/partitions.py) and settings: what the workers' fencing rests on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from eit.errors import ConfigError
from ingest.leases import PartitionLeases
from ingest.partitions import binding_key, partition_of, queue_name, topic_of
from ingest.settings import IngestSettings
from server.config import parse_serve_config
from statedb import StateDbUnavailable, open_state_db
from testbed.services import REPO, wait_for


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def test_a_lease_is_one_holders_until_it_expires_then_the_next_takes_it_anew(
    db_path: Path,
) -> None:
    db = open_state_db(None, db_path)
    a = PartitionLeases(db, "eit.partition", "worker-a", lease_s=0.5)
    b = PartitionLeases(db, "eit.partition", "worker-b", lease_s=0.5)
    held = a.acquire(3)
    assert held is not None and held.token == 1
    assert b.acquire(3) is None, "held by a"
    assert b.acquire(4) is not None, "another partition is free"
    wait_for(lambda: b.acquire(3) is not None, 5, "a's lease to expire")
    assert [(r.partition, r.owner, r.token) for r in sorted(a.all(), key=lambda r: r.partition)] == [
        (3, "worker-b", 2),
        (4, "worker-b", 1),
    ]
    assert a.renew(held) is None, "a lost it: no renewal"
    db.close()


def test_a_lease_that_lapsed_by_its_holders_clock_is_never_renewed(db_path: Path) -> None:
    db = open_state_db(None, db_path)
    a = PartitionLeases(db, "eit.partition", "worker-a", lease_s=0.3)
    held = a.acquire(0)
    assert held is not None
    renewed = a.renew(held)
    assert renewed is not None and renewed.token == held.token
    wait_for(lambda: time.monotonic() > renewed.valid_until, 5, "the lease to lapse")
    assert a.renew(renewed) is None, "a paused holder does not renew across the pause"
    again = a.acquire(0)
    assert again is not None and again.token == held.token + 1, "taken afresh, with a new token"
    db.close()


def test_a_released_lease_is_free_at_once(db_path: Path) -> None:
    db = open_state_db(None, db_path)
    a = PartitionLeases(db, "eit.partition", "worker-a", lease_s=60)
    b = PartitionLeases(db, "eit.partition", "worker-b", lease_s=60)
    held = a.acquire(1)
    assert held is not None
    a.release(held)
    taken = b.acquire(1)
    assert taken is not None and taken.token == 2
    db.close()


def test_leases_of_two_queue_sets_are_apart(db_path: Path) -> None:
    db = open_state_db(None, db_path)
    assert PartitionLeases(db, "set-a", "w1", 60).acquire(0) is not None
    assert PartitionLeases(db, "set-b", "w2", 60).acquire(0) is not None
    db.close()


def test_a_factorys_partition_is_stable_and_its_topics_map_both_ways() -> None:
    assert partition_of("kaeng-khoi-biomass", 32) == partition_of("kaeng-khoi-biomass", 32)
    assert {partition_of(f"f{i:04d}", 8) for i in range(64)} == set(range(8)), "factories spread"
    assert queue_name("eit.partition", 7) == "eit.partition.007"
    assert binding_key("kaeng-khoi-biomass") == "eit.kaeng-khoi-biomass.#"
    assert topic_of("eit.kaeng-khoi-biomass.boiler-1.data") == "eit/kaeng-khoi-biomass/boiler-1/data"


def test_the_amqp_transport_needs_its_settings_and_errors_name_file_and_key() -> None:
    site = str(REPO / "examples" / "town" / "site.yaml")
    with pytest.raises(ConfigError) as missing:
        parse_serve_config({"site": site, "ingest": {"transport": "amqp"}}, "serve.yaml", REPO)
    assert [str(p) for p in missing.value.problems] == [
        "serve.yaml: ingest: ingest.transport is amqp but ingest.amqp (urls, partitions) is missing"
    ]
    wrong = {"site": site, "ingest": {"transport": "amqp", "amqp": {"urls": [], "partitons": 3}}}
    with pytest.raises(ConfigError) as bad:
        parse_serve_config(wrong, "serve.yaml", REPO)
    problems = [str(p) for p in bad.value.problems]
    assert any(p.startswith("serve.yaml: ingest.amqp.urls:") for p in problems)
    assert any(p.startswith("serve.yaml: ingest.amqp.partitons: unknown key") for p in problems), problems
    assert IngestSettings().transport == "mqtt", "the single machine stays the default"


@pytest.mark.integration
def test_a_holder_stopped_mid_transaction_neither_blocks_the_others_nor_keeps_its_lease(
    postgres_url: str, tmp_path: Path
) -> None:
    """A worker stopped (SIGSTOP, a hung host) between its UPDATE of a lease row and the COMMIT
    holds the row's lock: the next worker's acquire meets it and answers "held" at once, its own
    renewals go on, and the server ends the stopped transaction, so the lease expires as any other."""
    db_a, db_b = open_state_db(postgres_url, tmp_path), open_state_db(postgres_url, tmp_path)
    lease_s = 1.0
    a = PartitionLeases(db_a, "eit.partition", "worker-a", lease_s=lease_s)
    b = PartitionLeases(db_b, "eit.partition", "worker-b", lease_s=lease_s)
    held, own = a.acquire(3), b.acquire(4)
    assert held is not None and own is not None
    with pytest.raises(StateDbUnavailable), a._write() as stopped:  # a's renewal, stopped before COMMIT
        stopped.execute(text("UPDATE partition_leases SET expires_ns = expires_ns WHERE partition = 3"))
        started = time.monotonic()
        assert b.acquire(3) is None, "a's row is locked: held by another"
        assert time.monotonic() - started < lease_s / 2, "the lock was waited on too long"
        renewed = b.renew(own)
        assert renewed is not None, "b's own lease is renewed meanwhile"
        time.sleep(lease_s)  # a stays stopped: the server ends its idle transaction
    wait_for(lambda: b.acquire(3) is not None, 5, "a's lease to expire and b to take it")
    db_a.close()
    db_b.close()
