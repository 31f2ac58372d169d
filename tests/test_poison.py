"""Poison through a real Mosquitto into `eit serve`: one bad message, data or status, retained or
not, becomes one dead letter with its reason; the message is acknowledged; the valid scan
published after it is stored; and `eit serve` goes on, across restarts and a fresh session.

Each payload here stopped data collection for the whole town before the contract's bounds
(eit/bounds.py): seq 2^63 ended the SQLite writer thread, a year 9999 or year 1 time the decode
thread, a retained status with a 5000-digit number or 10^5 levels of nesting the decode thread
at every start, and the message, never acknowledged, came back each time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from eit.timeutil import ns_to_iso
from ingest.deadletters import DeadLetter, open_dead_letters
from ingest.store.sqlite import SqliteStore
from testbed.services import EitProcess, Mosquitto, wait_for, write_serve_config

pytestmark = pytest.mark.integration

F = "kaeng-khoi-biomass"
DATA = f"eit/{F}/boiler-1/data"
STATUS = f"eit/{F}/boiler-1/status"
METER_STATUS = f"eit/{F}/meter-1/status"


def scan_payload(seq: int, ts: str | None = None) -> bytes:
    ts = ts or ns_to_iso(time.time_ns())
    return json.dumps(
        {"v": 1, "scans": [{"seq": seq, "ts": ts, "values": {"so2": 40.0, "o2": 9.0}}]}
    ).encode()


# (topic, payload, the dead letter's reason)
POISON: list[tuple[str, bytes, str]] = [
    (DATA, scan_payload(2**63), "seq_out_of_range"),
    (DATA, scan_payload(1, "9999-12-31T23:59:59-01:00"), "time_out_of_range"),
    (DATA, scan_payload(1, "0001-01-01T00:00:00Z"), "time_out_of_range"),
    (STATUS, b'{"state":"online","outbox_pending":' + b"7" * 5000 + b"}", "number_too_long"),
    (STATUS, b'{"state":"online","x":' + b"[" * 10**5 + b"]" * 10**5 + b"}", "too_deep"),
    (DATA, b'{"v":1,"scans":' + b"[" * 10**5 + b"]" * 10**5 + b"}", "too_deep"),
    (
        DATA,
        b'{"v":1,"scans":[{"seq":1,"ts":"2026-11-27T04:00:00Z","values":{"so2":1}}],'
        b'"scans":[{"seq":2,"ts":"2026-11-27T04:00:01Z","values":{"so2":2}}]}',
        "duplicate_key",
    ),
    (DATA, b'{"v":1,"scans":[' + b" " * (2 * 1024 * 1024) + b"]}", "too_large"),
]


class Publisher:
    """A plain paho client, as any factory login could use."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(broker.port)
    yield p
    p.close()


class Serve:
    def __init__(self, tmp: Path, broker: Mosquitto) -> None:
        self.tmp = tmp
        self.broker = broker
        self.runs = 0
        self.client_id = f"ingest-{uuid.uuid4().hex[:6]}"
        self.config = write_serve_config(tmp / "serve", broker.port, client_id=self.client_id)
        self.proc: EitProcess | None = None

    def start(self, client_id: str | None = None) -> EitProcess:
        if client_id is not None:  # a fresh session: a new ingest client id
            self.config = write_serve_config(self.tmp / "serve", self.broker.port, client_id=client_id)
        self.runs += 1
        self.proc = EitProcess(
            ["serve", "--config", str(self.config)], self.tmp / f"serve-{self.runs}.log"
        ).start()
        wait_for(lambda: "connected to broker" in self.output(), 30, "eit serve to connect")
        return self.proc

    def stop(self) -> None:
        assert self.proc is not None
        assert self.proc.terminate() == 0, self.output()

    def output(self) -> str:
        assert self.proc is not None
        return self.proc.output()

    def stored_seqs(self) -> set[int]:
        store = SqliteStore(self.tmp / "serve" / "data" / "readings.db")
        try:
            return {r.seq for r in store.readings(F, "boiler-1", "so2", 0, 2**62) if r.seq is not None}
        finally:
            store.close()

    def wait_stored(self, seq: int) -> None:
        wait_for(lambda: seq in self.stored_seqs(), 20, f"the valid scan {seq} in the store")

    def dead_letters(self) -> list[DeadLetter]:
        letters = open_dead_letters(None, self.tmp / "serve" / "data" / "state.db")
        try:
            return letters.recent(1000)
        finally:
            letters.close()


def test_each_poison_message_is_one_dead_letter_and_the_next_valid_scan_is_stored(
    tmp_path: Path, broker: Mosquitto, publisher: Publisher
) -> None:
    serve = Serve(tmp_path, broker)
    serve.start()
    try:
        for index, (topic, payload, _) in enumerate(POISON):
            publisher.publish(topic, payload)
            publisher.publish(DATA, scan_payload(100 + index))
            serve.wait_stored(100 + index)
        letters = serve.dead_letters()
        assert sorted(d.reason for d in letters) == sorted(reason for _, _, reason in POISON)
        assert all(d.count == 1 for d in letters)
        too_large = next(d for d in letters if d.reason == "too_large")
        assert "2,097,170 bytes" in too_large.detail and "sha256" in too_large.payload
        assert len(too_large.payload) < 70 * 1024  # kept cut at 64 KiB, with its size and hash
        assert "Traceback" not in serve.output(), serve.output()
        # Every poison message was acknowledged: after a restart none comes back (a repeat would
        # count on its dead letter), and the ingest takes new scans as before.
        serve.stop()
        serve.start()
        publisher.publish(DATA, scan_payload(200))
        serve.wait_stored(200)
        assert [(d.reason, d.count) for d in serve.dead_letters()] == [(d.reason, 1) for d in letters]
        assert serve.stored_seqs() == {100 + i for i in range(len(POISON))} | {200}
    finally:
        serve.stop()


def test_retained_poison_is_dead_lettered_once_across_restarts_and_a_fresh_session(
    tmp_path: Path, broker: Mosquitto, publisher: Publisher
) -> None:
    retained = {
        STATUS: (b'{"state":"online","outbox_pending":' + b"7" * 5000 + b"}", "number_too_long"),
        METER_STATUS: (b'{"state":"online","x":' + b"[" * 10**5 + b"]" * 10**5 + b"}", "too_deep"),
        DATA: (scan_payload(2**63), "seq_out_of_range"),
    }
    serve = Serve(tmp_path, broker)
    serve.start()
    try:
        for topic, (payload, _) in retained.items():
            publisher.publish(topic, payload, retain=True)
        publisher.publish(DATA, scan_payload(1))
        serve.wait_stored(1)
        serve.stop()
        # Published while the ingest is away: it waits in the ingest's persistent session.
        publisher.publish(DATA, scan_payload(2))
        serve.start()  # the same session: the broker sends the retained poison again
        serve.wait_stored(2)
        publisher.publish(DATA, scan_payload(3))
        serve.wait_stored(3)
        serve.stop()
        serve.start(client_id=f"fresh-{uuid.uuid4().hex[:6]}")  # a new session: retained poison first
        publisher.publish(DATA, scan_payload(4))
        serve.wait_stored(4)
        # The fresh session's subscription brings the retained poison again; seq 4 may be stored
        # before those three are dead-lettered, so wait for the third delivery of each.
        wait_for(
            lambda: sorted(d.count for d in serve.dead_letters()) == [3, 3, 3],
            30,
            "the fresh session's retained poison dead-lettered",
        )
        letters = {d.topic: d for d in serve.dead_letters()}
        assert {topic: d.reason for topic, d in letters.items()} == {t: r for t, (_, r) in retained.items()}
        # Kept once each, however often the broker delivered them: once per subscription.
        assert {d.count for d in letters.values()} == {3}, [(d.topic, d.count) for d in letters.values()]
        assert "Traceback" not in serve.output(), serve.output()
        assert serve.stored_seqs() == {1, 2, 3, 4}
    finally:
        serve.stop()
