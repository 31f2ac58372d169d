"""Signed scans without a broker: the canonical form (golden), the agent's outbox signing and its
chain across restarts, the reported drops, the registered keys and their rotation, the ingest's
verification flag on each reading and the chain events it stores."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.keys import load_signer, make_key
from edge.outbox import Outbox, message_payload
from eit import wire
from eit.devicekeys import add_key, load_device_keys
from eit.errors import ConfigError
from eit.model import Reading
from eit.registry import load_registry
from eit.signing import (
    BAD_SIGNATURE,
    GENESIS,
    UNKNOWN_KEY,
    UNSIGNED,
    VERIFIED,
    Signer,
    canonical,
    public_text,
    scan_hash,
    verify,
)
from eit.store import Store
from eit.storeschema import ChainEvents
from eit.timeutil import now_ns, parse_iso_ns
from ingest.deadletters import open_dead_letters
from ingest.metrics import IngestMetrics
from ingest.service import Incoming, Ingest
from ingest.store.sqlite import SqliteStore
from tests.conftest import EXAMPLE_SITE

FACTORY = "kaeng-khoi-biomass"
DEVICE = "boiler-1"
TOPIC = f"eit/{FACTORY}/{DEVICE}/data"
STATUS_TOPIC = f"eit/{FACTORY}/{DEVICE}/status"
SECOND = 1_000_000_000


def fixed_signer(seed: int = 0) -> Signer:
    return Signer.of(Ed25519PrivateKey.from_private_bytes(bytes((seed + i) % 256 for i in range(32))))


# -- the canonical form: golden ---------------------------------------------------------------------


def test_canonical_form_signature_and_hash_are_the_golden_ones() -> None:
    # A change here changes what every agent signs: it needs a new wire version, not a new golden.
    signer = fixed_signer()
    assert signer.key_id == "Vkdap1RjR0w"
    assert public_text(signer.private.public_key()) == "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
    body = canonical(
        FACTORY,
        DEVICE,
        1842,
        1795752000000000000,
        {"so2": 123.4, "o2": 8.2, "flow": 51234},
        {"so2": "C", "o2": "N"},
        signer.key_id,
        GENESIS,
    )
    assert body == (
        b'{"d":"boiler-1","f":"kaeng-khoi-biomass","flags":{"so2":"C"},"k":"Vkdap1RjR0w",'
        b'"prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","seq":1842,"ts":1795752000000000000,'
        b'"v":2,"values":{"flow":51234.0,"o2":8.2,"so2":123.4}}'
    )
    sig = signer.sign(body)
    assert sig == "nq7FNcL7X61z6ndfAMz4vGkuilyYDVGKYk_tRwEDl-8L2tvROs5qlua2sMrFHHewOpeQrSAKzhoWtc2ol2a4AQ"
    assert scan_hash(body, sig) == "MXKAbBDRG439WBrSJtACMoZorJyUOjoS8bW-U6AzKgE"
    assert verify(signer.private.public_key(), body, sig)
    assert not verify(signer.private.public_key(), body.replace(b"123.4", b"123.5"), sig)
    assert not verify(fixed_signer(1).private.public_key(), body, sig)
    assert not verify(signer.private.public_key(), body, "not-a-signature")


def test_the_canonical_form_does_not_depend_on_key_order_or_integer_values() -> None:
    a = canonical(FACTORY, DEVICE, 1, 5, {"a": 1, "b": 2.5}, {}, "k", GENESIS)
    b = canonical(FACTORY, DEVICE, 1, 5, {"b": 2.5, "a": 1.0}, {"a": "N"}, "k", GENESIS)
    assert a == b


# -- the agent's outbox ---------------------------------------------------------------------------------


def signed_outbox(path: Path, signer: Signer, max_bytes: int | None = None) -> Outbox:
    return Outbox(path, max_bytes, factory=FACTORY, signers={DEVICE: signer})


def test_outbox_signs_each_scan_and_the_chain_goes_on_across_a_restart(tmp_path: Path) -> None:
    signer = fixed_signer()
    outbox = signed_outbox(tmp_path / "o.db", signer)
    t0 = now_ns() // SECOND * SECOND
    outbox.append(DEVICE, t0, {"so2": 10.0}, {})
    outbox.append(DEVICE, t0 + SECOND, {"so2": 11.0}, {"so2": "C"})
    outbox.close()
    outbox = signed_outbox(tmp_path / "o.db", signer)  # the agent restarted
    outbox.append(DEVICE, t0 + 2 * SECOND, {"so2": 12.0}, {})
    pending = outbox.pending(DEVICE)
    outbox.close()
    payload = message_payload(pending)
    assert json.loads(payload)["v"] == 2
    decoded = wire.decode(payload)
    prev = GENESIS
    for scan in decoded.scans:
        body = canonical(FACTORY, DEVICE, scan.seq, scan.ts_ns, scan.values, scan.flags, signer.key_id, prev)
        assert scan.prev == prev and scan.key == signer.key_id
        assert scan.sig is not None and verify(signer.private.public_key(), body, scan.sig)
        prev = scan_hash(body, scan.sig)
    assert [s.seq for s in decoded.scans] == [1, 2, 3]


def test_an_unsigning_outbox_still_sends_v1(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.append(DEVICE, now_ns(), {"so2": 10.0}, {})
    assert json.loads(message_payload(outbox.pending(DEVICE)))["v"] == 1
    outbox.close()


def test_outbox_keeps_the_seq_ranges_it_dropped(tmp_path: Path) -> None:
    outbox = signed_outbox(tmp_path / "o.db", fixed_signer(), max_bytes=64 * 1024)
    t0 = now_ns()
    values = {f"c{i}": float(i) for i in range(40)}
    n = 0
    while not outbox.dropped(DEVICE):
        n += 1
        outbox.append(DEVICE, t0 + n * SECOND, values, {})
        assert n < 10_000
    ranges = outbox.dropped_seqs(DEVICE)
    assert ranges and ranges[0][0] == 1
    assert sum(last - first + 1 for first, last in ranges) == outbox.dropped(DEVICE)["size"]
    assert outbox.pending(DEVICE)[0].seq == ranges[-1][1] + 1
    outbox.close()


# -- keys ----------------------------------------------------------------------------------------------


def test_keygen_writes_an_owner_only_key_and_the_agent_refuses_one_others_can_read(tmp_path: Path) -> None:
    made = make_key(tmp_path / "keys", DEVICE)
    assert made.made
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    again = make_key(tmp_path / "keys", DEVICE)
    assert (again.made, again.key_id, again.public_key) == (False, made.key_id, made.public_key)
    assert load_signer(made.path, "edge.yaml", "signing.keys").key_id == made.key_id
    os.chmod(made.path, 0o644)
    with pytest.raises(ConfigError) as err:
        load_signer(made.path, "edge.yaml", "signing.keys")
    assert (
        "edge.yaml" in str(err.value) and str(made.path) in str(err.value) and "chmod 600" in str(err.value)
    )
    rotated = make_key(tmp_path / "keys", DEVICE, rotate=True)
    assert rotated.made and rotated.key_id != made.key_id
    assert len(list((tmp_path / "keys").glob(f"{DEVICE}.key.*"))) == 1


def test_a_bad_keys_file_names_the_file_the_key_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "device-keys.yaml"
    path.write_text(
        f"keys:\n  - factory: {FACTORY}\n    device: {DEVICE}\n    public_key: nonsense\n"
        '    valid_from: "2026-01-01T00:00:00Z"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_device_keys(path)
    assert str(path) in str(err.value) and "keys[0].public_key" in str(err.value) and ":4" in str(err.value)


def test_rotation_closes_the_old_key_where_the_new_one_begins(tmp_path: Path) -> None:
    path = tmp_path / "device-keys.yaml"
    old, new = fixed_signer(), fixed_signer(7)
    t0, t1 = parse_iso_ns("2026-01-01T00:00:00Z"), parse_iso_ns("2026-06-01T00:00:00Z")
    add_key(path, FACTORY, DEVICE, public_text(old.private.public_key()), t0, rotate=False)
    with pytest.raises(ConfigError, match="use rotate"):
        add_key(path, FACTORY, DEVICE, public_text(new.private.public_key()), t1, rotate=False)
    add_key(path, FACTORY, DEVICE, public_text(new.private.public_key()), t1, rotate=True)
    keys = load_device_keys(path)
    assert [(k.id, k.valid_from_ns, k.valid_to_ns) for k in keys.of(FACTORY, DEVICE)] == [
        (old.key_id, t0, t1),
        (new.key_id, t1, None),
    ]
    assert [k.id for k in keys.valid_at(FACTORY, DEVICE, t1 - 1)] == [old.key_id]
    assert [k.id for k in keys.valid_at(FACTORY, DEVICE, t1)] == [new.key_id]


# -- the ingest --------------------------------------------------------------------------------------


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    ingest = Ingest(
        load_registry(EXAMPLE_SITE),
        SqliteStore(tmp_path / "r.db"),
        open_dead_letters(None, tmp_path / "s.db"),
        IngestMetrics(),
        [],
        device_keys=tmp_path / "device-keys.yaml",
    )
    yield ingest
    ingest.store.close()
    ingest.deadletters.close()


def register(ingest: Ingest, signer: Signer, from_ns: int, *, rotate: bool = False) -> None:
    assert ingest.verifier.keyring.path is not None
    add_key(
        ingest.verifier.keyring.path,
        FACTORY,
        DEVICE,
        public_text(signer.private.public_key()),
        from_ns,
        rotate=rotate,
    )
    ingest.verifier.keyring.load()


def feed(ingest: Ingest, *payloads: bytes, topic: str = TOPIC) -> None:
    result = ingest.decode_batch([Incoming(i, 1, topic, p) for i, p in enumerate(payloads)], now_ns())
    assert result.dead == [], [(d.reason, d.detail) for d in result.dead]
    ingest.store_batch(result)


def metric(ingest: Ingest, name: str, labels: dict[str, str]) -> float:
    return ingest.metrics.registry.get_sample_value(name, labels) or 0.0


def stored_verified(ingest: Ingest, start_ns: int) -> dict[int, str]:
    rows = ingest.store.readings(FACTORY, DEVICE, "so2", start_ns, start_ns + 10_000 * SECOND)
    return {r.seq or 0: r.verified for r in rows}


def events(ingest: Ingest) -> list[tuple[object, ...]]:
    points = ingest.store.query_points(ChainEvents.NAME, {"device": DEVICE}, 0, 2**62)
    f = ChainEvents
    return [
        (p.fields[f.KIND], p.fields[f.FIRST_SEQ], p.fields[f.LAST_SEQ], p.fields[f.MISSING]) for p in points
    ]


def scans(outbox: Outbox, n: int, t0: int, first: int = 0) -> list[bytes]:
    """n scans appended and one message per scan (as an agent sends them one at a time)."""
    for i in range(first, first + n):
        outbox.append(DEVICE, t0 + i * SECOND, {"so2": 10.0 + i, "o2": 8.0}, {})
    return [message_payload([p]) for p in outbox.pending(DEVICE)[-n:]]


def test_signed_scans_are_stored_verified_and_tampered_ones_flagged_not_lost(
    tmp_path: Path, ingest: Ingest
) -> None:
    signer = fixed_signer()
    t0 = now_ns() // SECOND * SECOND - 600 * SECOND
    register(ingest, signer, t0 - 3600 * SECOND)
    outbox = signed_outbox(tmp_path / "o.db", signer)
    msgs = scans(outbox, 3, t0)
    tampered = msgs[1].replace(b'"so2":11.0', b'"so2":1.0')
    assert tampered != msgs[1]
    feed(ingest, msgs[0], tampered, msgs[2])
    assert stored_verified(ingest, t0) == {1: VERIFIED, 2: BAD_SIGNATURE, 3: VERIFIED}
    # Stored, flagged: the tampered value is there, its flag (validity) untouched.
    bad = ingest.store.readings(FACTORY, DEVICE, "so2", t0 + SECOND, t0 + 2 * SECOND)
    assert [(r.value, r.flag) for r in bad] == [(1.0, "N")]
    assert metric(ingest, "eit_scans_verified_total", {"result": VERIFIED}) == 2
    assert metric(ingest, "eit_scans_verified_total", {"result": BAD_SIGNATURE}) == 1
    # The bad scan does not advance the chain: scan 3 names scan 2's real hash, which the
    # ingest never verified, so it sees a chain break only if it trusted the tampered one.
    assert ingest.store.count(FACTORY, DEVICE, "so2", t0, t0 + 10 * SECOND, verified=VERIFIED) == 2
    outbox.close()


def test_unsigned_scans_from_a_device_with_a_key_are_stored_flagged(tmp_path: Path, ingest: Ingest) -> None:
    t0 = now_ns() // SECOND * SECOND - 600 * SECOND
    register(ingest, fixed_signer(), t0 - SECOND)
    plain = Outbox(tmp_path / "o.db")
    plain.append(DEVICE, t0, {"so2": 5.0}, {})
    plain.append(DEVICE, t0 - 10 * SECOND, {"so2": 6.0}, {})  # before the key was registered
    feed(ingest, message_payload(plain.pending(DEVICE)))
    assert stored_verified(ingest, t0 - 20 * SECOND) == {1: UNSIGNED, 2: ""}
    assert metric(ingest, "eit_scans_verified_total", {"result": UNSIGNED}) == 1
    plain.close()


def test_a_scan_signed_with_a_key_after_its_validity_is_unknown_key(tmp_path: Path, ingest: Ingest) -> None:
    old, new = fixed_signer(), fixed_signer(9)
    t0 = now_ns() // SECOND * SECOND - 600 * SECOND
    register(ingest, old, t0 - 3600 * SECOND)
    register(ingest, new, t0 + 2 * SECOND, rotate=True)  # rotated between the scans
    outbox = signed_outbox(tmp_path / "o.db", old)
    msgs = scans(outbox, 4, t0)  # seq 1-2 before the rotation, 3-4 after, all with the old key
    outbox.signers[DEVICE] = new
    msgs += scans(outbox, 1, t0, first=4)  # seq 5 with the new key
    feed(ingest, *msgs)
    assert stored_verified(ingest, t0) == {
        1: VERIFIED,
        2: VERIFIED,
        3: UNKNOWN_KEY,
        4: UNKNOWN_KEY,
        5: VERIFIED,
    }
    outbox.close()


def test_a_scan_replayed_under_another_device_fails_its_signature(tmp_path: Path, ingest: Ingest) -> None:
    signer = fixed_signer()
    t0 = now_ns() // SECOND * SECOND - 600 * SECOND
    register(ingest, signer, t0 - SECOND)
    assert ingest.verifier.keyring.path is not None
    add_key(
        ingest.verifier.keyring.path,
        FACTORY,
        "meter-1",
        public_text(signer.private.public_key()),
        t0,
        rotate=False,
    )
    ingest.verifier.keyring.load()
    outbox = signed_outbox(tmp_path / "o.db", signer)
    msg = scans(outbox, 1, t0)[0]
    ingest.decode_batch([Incoming(1, 1, f"eit/{FACTORY}/meter-1/data", msg)], now_ns())
    assert metric(ingest, "eit_scans_verified_total", {"result": BAD_SIGNATURE}) == 1
    outbox.close()


def test_the_chain_tells_gaps_reported_drops_reorders_repeats_and_conflicts(
    tmp_path: Path, ingest: Ingest
) -> None:
    signer = fixed_signer()
    t0 = now_ns() // SECOND * SECOND - 3000 * SECOND
    register(ingest, signer, t0 - SECOND)
    outbox = signed_outbox(tmp_path / "o.db", signer)
    m = scans(outbox, 12, t0)  # seq 1..12
    feed(ingest, m[0], m[1])
    feed(ingest, m[1])  # a redelivery: absorbed, no event
    assert events(ingest) == []
    assert metric(ingest, "eit_chain_events_total", {"kind": "repeat"}) == 1
    feed(ingest, m[3])  # seq 3 deleted on the way
    assert events(ingest) == [("unexplained_gap", 3, 3, 1)]
    feed(ingest, m[5], m[4])  # 5 overtook... 6 before 5: a gap then filled
    assert ("reordered", 5, 5, 0) in events(ingest)
    # seq 8-9 dropped by the agent, which says so in its status before the rest arrives.
    status = {"state": "online", "outbox_dropped": 2, "outbox_dropped_seqs": [[8, 9]]}
    feed(ingest, json.dumps(status).encode(), topic=STATUS_TOPIC)
    feed(ingest, m[6], m[9])
    assert ("reported_drop", 8, 9, 2) in events(ingest)
    # seq 11 lost, and a status telling it comes later: the gap becomes a reported drop.
    feed(ingest, m[11])
    assert ("unexplained_gap", 11, 11, 1) in events(ingest)
    status = {"state": "online", "outbox_dropped": 3, "outbox_dropped_seqs": [[8, 9], [11, 11]]}
    feed(ingest, json.dumps(status).encode(), topic=STATUS_TOPIC)
    assert ("reported_drop", 11, 11, 1) in events(ingest)
    assert ("unexplained_gap", 11, 11, 1) not in events(ingest)
    # A second, different scan signed under seq 2 (the agent's outbox lost and remade).
    other = signed_outbox(tmp_path / "other.db", signer)
    forged = scans(other, 2, t0 + 100 * SECOND)
    feed(ingest, forged[1])
    assert ("conflict", 2, 2, 1) in events(ingest)
    outbox.close()
    other.close()


def test_a_chain_break_is_seen_when_a_scan_names_another_previous_scan(
    tmp_path: Path, ingest: Ingest
) -> None:
    signer = fixed_signer()
    t0 = now_ns() // SECOND * SECOND - 600 * SECOND
    register(ingest, signer, t0 - SECOND)
    a = signed_outbox(tmp_path / "a.db", signer)
    b = signed_outbox(tmp_path / "b.db", signer)
    first = scans(a, 1, t0)
    scans(b, 1, t0 + 50 * SECOND)
    second_of_b = scans(b, 1, t0 + SECOND, first=1)  # seq 2, naming b's seq 1
    feed(ingest, first[0], second_of_b[0])
    assert events(ingest) == [("chain_break", 2, 2, 1)]
    a.close()
    b.close()


def test_a_gap_across_an_ingest_restart_is_seen_from_the_stored_seq(tmp_path: Path, ingest: Ingest) -> None:
    signer = fixed_signer()
    t0 = now_ns() // SECOND * SECOND - 600 * SECOND
    register(ingest, signer, t0 - SECOND)
    outbox = signed_outbox(tmp_path / "o.db", signer)
    m = scans(outbox, 5, t0)
    feed(ingest, m[0], m[1])
    restarted = Ingest(
        ingest.registry,
        ingest.store,
        ingest.deadletters,
        IngestMetrics(),
        [],
        device_keys=ingest.verifier.keyring.path,
    )
    feed(restarted, m[4])
    assert events(restarted) == [("unexplained_gap", 3, 4, 2)]
    outbox.close()


# -- wire v2 ------------------------------------------------------------------------------------------


def test_a_signed_payload_matches_the_v2_schema_and_v1_refuses_signature_fields(tmp_path: Path) -> None:
    import jsonschema

    outbox = signed_outbox(tmp_path / "o.db", fixed_signer())
    payload = scans(outbox, 2, now_ns())[0]
    schema = wire.schema(2)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    doc = json.loads(payload)
    cls(schema).validate(doc)
    doc["v"] = 1
    decoded = wire.decode(json.dumps(doc).encode())
    assert decoded.scans == [] and decoded.rejected[0].reason == "bad_scan"
    # A signature field that is not text keeps the scan (flagged later), not a lost reading.
    doc["v"] = 2
    doc["scans"][0]["sig"] = 12
    decoded = wire.decode(json.dumps(doc).encode())
    assert len(decoded.scans) == 1 and decoded.scans[0].sig == ""
    outbox.close()


def test_a_changed_copy_of_a_verified_scan_is_a_dead_letter_and_the_verified_reading_stays(
    tmp_path: Path, ingest: Ingest
) -> None:
    signer = fixed_signer()
    t0 = now_ns() // SECOND * SECOND - 600 * SECOND
    register(ingest, signer, t0 - SECOND)
    outbox = signed_outbox(tmp_path / "o.db", signer)
    m = scans(outbox, 2, t0)
    feed(ingest, m[0], m[1])
    changed = m[1].replace(b'"so2":11.0', b'"so2":99.0')
    unsigned = json.loads(m[1])
    for name in ("k", "prev", "sig"):
        del unsigned["scans"][0][name]
    result = ingest.decode_batch(
        [Incoming(1, 1, TOPIC, changed), Incoming(2, 1, TOPIC, json.dumps(unsigned).encode())], now_ns()
    )
    assert [d.reason for d in result.dead] == ["unverified_copy", "unverified_copy"]
    assert result.readings == []
    assert "seq 2" in result.dead[0].detail and "99.0" in result.dead[0].payload
    ingest.store_batch(result)
    assert [
        (r.value, r.verified) for r in ingest.store.readings(FACTORY, DEVICE, "so2", t0, t0 + 5 * SECOND)
    ] == [
        (10.0, VERIFIED),
        (11.0, VERIFIED),
    ]
    outbox.close()


def test_the_key_file_is_pkcs8_pem_that_openssl_tools_read_and_write(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from eit.signing import private_from_pem, private_pem

    made = make_key(tmp_path / "keys", DEVICE)
    theirs = serialization.load_pem_private_key(made.path.read_bytes(), password=None)
    assert isinstance(theirs, Ed25519PrivateKey)
    assert public_text(theirs.public_key()) == made.public_key
    written_by_them = theirs.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert private_pem(private_from_pem(written_by_them, "theirs")) == written_by_them
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        private_from_pem(written_by_them.replace(b"MC4CAQAw", b"MC4CAQEw"), "changed")


# -- the stores keep the verification beside each reading ---------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.integration)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "readings.db")
    else:
        from ingest.store.influx import InfluxStore

        s = InfluxStore(request.getfixturevalue("influxdb").url, request.getfixturevalue("influx_database"))
    yield s
    s.close()


def test_each_store_keeps_and_counts_the_verified_field(any_store: Store) -> None:
    t0 = parse_iso_ns("2026-11-27T04:00:00Z")
    results = [VERIFIED, VERIFIED, BAD_SIGNATURE, UNSIGNED, ""]
    any_store.write(
        [Reading(FACTORY, DEVICE, "so2", t0 + i * SECOND, 1.0, "N", i + 1, v) for i, v in enumerate(results)]
    )
    got = any_store.readings(FACTORY, DEVICE, "so2", t0, t0 + 10 * SECOND)
    assert [r.verified for r in got] == results
    assert any_store.count(FACTORY, DEVICE, "so2", t0, t0 + 10 * SECOND) == 5
    assert any_store.count(FACTORY, DEVICE, "so2", t0, t0 + 10 * SECOND, verified=VERIFIED) == 2
    assert any_store.count(FACTORY, DEVICE, None, t0, t0 + 10 * SECOND, verified=BAD_SIGNATURE) == 1
    # The field is evidence beside the reading: equality and the averages ignore it.
    assert got[0] == Reading(FACTORY, DEVICE, "so2", t0, 1.0, "N", 1)


def test_an_embedded_store_from_before_signing_gets_the_verified_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "readings.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE readings (factory TEXT NOT NULL, device TEXT NOT NULL, channel TEXT NOT NULL,"
        " ts_ns INTEGER NOT NULL, value REAL NOT NULL, flag TEXT NOT NULL DEFAULT 'N', seq INTEGER,"
        " PRIMARY KEY (factory, device, channel, ts_ns)) WITHOUT ROWID"
    )
    old.execute("INSERT INTO readings VALUES (?, ?, 'so2', 5, 1.5, 'N', 1)", (FACTORY, DEVICE))
    old.commit()
    old.close()
    store = SqliteStore(path)
    store.write([Reading(FACTORY, DEVICE, "so2", 6, 2.5, "N", 2, VERIFIED)])
    assert [(r.value, r.verified) for r in store.readings(FACTORY, DEVICE, "so2", 0, 10)] == [
        (1.5, ""),
        (2.5, VERIFIED),
    ]
    store.close()


def test_an_outbox_from_before_signing_is_upgraded_and_signs_on(tmp_path: Path) -> None:
    plain = Outbox(tmp_path / "o.db")
    plain.append(DEVICE, now_ns(), {"so2": 1.0}, {})
    plain.close()
    outbox = signed_outbox(tmp_path / "o.db", fixed_signer())
    outbox.append(DEVICE, now_ns(), {"so2": 2.0}, {})
    first, second = outbox.pending(DEVICE)
    assert (first.signed, second.signed) == (False, True)
    decoded = wire.decode(message_payload([first, second]))
    assert decoded.scans[0].sig is None and decoded.scans[1].prev == GENESIS
    outbox.close()


def test_the_agent_config_names_the_keys_folder_and_edge_check_tells_what_is_missing(tmp_path: Path) -> None:
    from edge.check import Report, _check_signing
    from edge.config import parse_edge_config

    raw = {
        "factory": FACTORY,
        "signing": {"keys": "keys"},
        "outbox": {"path": str(tmp_path / "o.db")},
        "devices": [{"id": DEVICE, "driver": "sim", "sim": {"channels": {"so2": {"mean": 30, "sd": 3}}}}],
    }
    config = parse_edge_config(raw, "edge.yaml", tmp_path)
    assert config.signing_keys == tmp_path / "keys"
    report = Report()
    _check_signing(config, report)
    assert report.failures == [f"signing {DEVICE}"]
    assert "eit edge keygen --config edge.yaml" in "\n".join(report.lines)
    made = make_key(tmp_path / "keys", DEVICE)
    report = Report()
    _check_signing(config, report)
    assert report.failures == [] and made.public_key in "\n".join(report.lines)
    with pytest.raises(ConfigError, match=r"edge\.yaml.*signing\.oops"):
        parse_edge_config({**raw, "signing": {"keys": "k", "oops": 1}}, "edge.yaml", tmp_path)


def test_the_signing_benchmark_runs_and_prints_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.signing_cost import main

    assert main(["--scans", "20", "--runs", "1", "--channels", "3"]) == 0
    out = capsys.readouterr().out
    for step in ("outbox append, signed", "signing alone", "v2 signed", "verification alone"):
        assert step in out


def test_eit_devices_key_add_rotate_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import build_parser
    from testbed.services import write_serve_config

    config = str(write_serve_config(tmp_path / "serve", 1883))

    def eit(*argv: str) -> int:
        args = build_parser().parse_args(list(argv))
        result: int = args.func(args)
        return result

    old, new = fixed_signer(), fixed_signer(3)
    key = ["--device", DEVICE, "--config", config]
    # `=`: a base64url key may begin with '-', which would read as an option after a space.
    old_key = [f"--public-key={public_text(old.private.public_key())}"]
    new_key = [f"--public-key={public_text(new.private.public_key())}"]
    assert eit("devices", "key", "add", FACTORY, *key, *old_key, "--valid-from", "2026-01-01T00:00:00Z") == 0
    assert eit("devices", "key", "add", FACTORY, *key, *new_key) == 2
    assert "use rotate" in capsys.readouterr().err
    assert (
        eit("devices", "key", "rotate", FACTORY, *key, *new_key, "--valid-from", "2026-06-01T00:00:00Z") == 0
    )
    elsewhere = ["--device", "chimney-9", "--config", config]
    assert eit("devices", "key", "add", FACTORY, *elsewhere, *new_key) == 2
    assert "no device 'chimney-9'" in capsys.readouterr().err
    assert eit("devices", "key", "add", "nowhere", *key, "--public-key", "x") == 2
    capsys.readouterr()
    assert eit("devices", "key", "list", "--config", config) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed == [
        f"{FACTORY}/{DEVICE}\t{old.key_id}\t2026-01-01T00:00:00Z\t2026-06-01T00:00:00Z",
        f"{FACTORY}/{DEVICE}\t{new.key_id}\t2026-06-01T00:00:00Z\topen",
    ]
    dashed = next(
        fixed_signer(seed)
        for seed in range(1000)
        if public_text(fixed_signer(seed).private.public_key())[0] == "-"
    )
    dashed_key = public_text(dashed.private.public_key())
    assert (
        eit(
            "devices",
            "key",
            "add",
            FACTORY,
            "--device",
            "meter-1",
            "--config",
            config,
            f"--public-key={dashed_key}",
        )
        == 0
    )
    capsys.readouterr()
    # The file is where the ingest of `eit serve` reads it: data_dir/device-keys.yaml.
    assert len(load_device_keys(tmp_path / "serve" / "data" / "device-keys.yaml").keys) == 3


def test_a_broken_keys_file_stops_the_ingest_at_start_and_is_survived_later(tmp_path: Path) -> None:
    from ingest.verify import KeyRing

    path = tmp_path / "device-keys.yaml"
    path.write_text("keys:\n  - factory: f\n")
    with pytest.raises(ConfigError, match="keys\\[0\\]"):
        KeyRing(path)
    signer = fixed_signer()
    path.unlink()
    add_key(path, FACTORY, DEVICE, public_text(signer.private.public_key()), 0, rotate=False)
    problems: list[str] = []
    ring = KeyRing(path, on_error=problems.append)
    path.write_text("keys: [oops\n")  # a broken edit while the ingest runs
    ring.load()
    assert problems and [k.id for k in ring.current().keys] == [signer.key_id]


def test_the_outbox_tells_which_devices_a_bound_dropped_scans_of(tmp_path: Path) -> None:
    told: list[str] = []
    outbox = Outbox(tmp_path / "o.db", 64 * 1024, factory=FACTORY, on_drop=told.append)
    values = {f"c{i}": float(i) for i in range(40)}
    n = 0
    while not told:
        n += 1
        outbox.append(DEVICE, now_ns() + n, values, {})
        assert n < 10_000
    assert set(told) == {DEVICE} and outbox.dropped(DEVICE)
    outbox.close()
