"""Signed scans end to end through a real Mosquitto: `eit edge keygen` makes the keys, `eit devices
key add` registers them, `eit edge run` signs every scan and `eit serve` stores each reading as
verified. Then, between the meter and the store: a message replayed verbatim is absorbed and
counted (a repeat, not tampering), a message with a changed value is stored flagged
bad_signature, and a message deleted from the chain shows as an unexplained gap."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.keys import key_path, load_signer
from edge.outbox import Outbox, message_payload
from eit.signing import BAD_SIGNATURE, VERIFIED
from eit.storeschema import ChainEvents
from eit.timeutil import now_ns, ns_to_iso
from ingest.store.sqlite import SqliteStore
from testbed.services import (
    EIT,
    REPO,
    EitProcess,
    Mosquitto,
    free_port,
    wait_for,
    write_edge_config,
    write_serve_config,
)

pytestmark = pytest.mark.integration

FACTORY = "kaeng-khoi-biomass"
DEVICE = "boiler-1"
HOUR_NS = 3600 * 1_000_000_000


def eit(*args: str) -> str:
    out = subprocess.run([*EIT, *args], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


class Capture:
    """Every message on the device's data topic, as it went through the broker."""

    def __init__(self, port: int) -> None:
        self.payloads: list[bytes] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"capture-{uuid.uuid4().hex[:6]}")
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"eit/{FACTORY}/{DEVICE}/data", qos=1)
        self.client.loop_start()

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.payloads.append(bytes(msg.payload))

    def publish(self, payload: bytes) -> None:
        self.client.publish(f"eit/{FACTORY}/{DEVICE}/data", payload, qos=1).wait_for_publish(10)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def metric(port: int, name: str, labels: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_signed_scans_through_mosquitto_detect_replay_tampering_and_deletion(
    tmp_path: Path, broker: Mosquitto
) -> None:
    http_port = free_port()
    serve_config = write_serve_config(
        tmp_path / "serve", broker.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}", http_port=http_port
    )
    edge_config = write_edge_config(tmp_path / "edge", broker.port)
    data = yaml.safe_load(edge_config.read_text())
    data["signing"] = {"keys": str(tmp_path / "edge" / "keys")}
    edge_config.write_text(yaml.safe_dump(data))

    # Keys made at the agent, public keys registered on the server (the commands keygen prints).
    printed = eit("edge", "keygen", "--config", str(edge_config))
    commands = re.findall(r"register on the server: eit (devices key add .+) --config SERVER\.yaml", printed)
    assert len(commands) == len(data["devices"])
    since = ns_to_iso(now_ns() - HOUR_NS)
    for command in commands:
        eit(*command.split(), "--config", str(serve_config), "--valid-from", since)

    serve = EitProcess(["serve", "--config", str(serve_config)], tmp_path / "serve.log").start()
    capture = Capture(broker.port)
    store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
    try:
        wait_for(lambda: "connected to broker" in serve.output(), 30, "eit serve to connect")
        agent = EitProcess(["edge", "run", "--config", str(edge_config)], tmp_path / "edge.log").start()
        try:
            wait_for(
                lambda: store.count(FACTORY, DEVICE, "so2", verified=VERIFIED) >= 4,
                60,
                "four verified scans of the boiler in the store",
            )
        finally:
            assert agent.terminate() == 0
        wait_for(
            lambda: metric(http_port, "eit_scans_verified_total", 'result="verified"') >= 4, 30, "metrics"
        )
        stored = store.readings(FACTORY, DEVICE, "so2", 0, now_ns() + HOUR_NS)
        assert stored and all(r.verified == VERIFIED for r in stored)
        assert store.query_points(ChainEvents.NAME, {"device": DEVICE}, 0, now_ns() + HOUR_NS) == []

        # A message replayed verbatim: absorbed (stored once), counted as a repeat, no event.
        wait_for(lambda: len(capture.payloads) >= 2, 10, "captured messages")
        replayed = capture.payloads[0]
        before = store.count(FACTORY, DEVICE)
        repeats = metric(http_port, "eit_chain_events_total", 'kind="repeat"')
        capture.publish(replayed)
        wait_for(
            lambda: metric(http_port, "eit_chain_events_total", 'kind="repeat"') > repeats, 20, "the repeat"
        )
        assert store.count(FACTORY, DEVICE) == before

        # A changed copy of a scan already stored verified: kept as a dead letter, counted; the
        # verified reading stays as it was.
        doc = json.loads(capture.payloads[-1])
        last = doc["scans"][-1]
        original = last["values"]["so2"]
        last["values"]["so2"] = round(original + 100.0, 3)
        capture.publish(json.dumps(doc).encode())
        copy = 'reason="unverified_copy"'
        wait_for(
            lambda: metric(http_port, "eit_dead_letters_total", copy) == 1, 20, "the changed copy refused"
        )
        kept = store.readings(FACTORY, DEVICE, "so2", 0, now_ns() + HOUR_NS)
        assert [(r.value, r.verified) for r in kept if r.seq == last["seq"]] == [(original, VERIFIED)]

        # The chain goes on from the agent's outbox (its key and its last hash): of four new scans
        # the second is deleted between the agent and the broker and the fourth has a value changed.
        signer = load_signer(key_path(tmp_path / "edge" / "keys", DEVICE), "edge.yaml", "signing.keys")
        outbox = Outbox(tmp_path / "edge" / f"outbox-{FACTORY}.db", factory=FACTORY, signers={DEVICE: signer})
        head = outbox.last_seq(DEVICE)
        for i in range(4):
            outbox.append(DEVICE, now_ns() - (4 - i) * 1_000_000, {"so2": 20.0 + i, "o2": 8.0}, {})
        pending = {p.seq: p for p in outbox.pending(DEVICE)}
        outbox.close()
        capture.publish(message_payload([pending[head + 1]]))
        capture.publish(message_payload([pending[head + 3]]))
        capture.publish(message_payload([pending[head + 4]]).replace(b'"so2":23.0', b'"so2":2.0'))

        def gaps() -> list[tuple[object, ...]]:
            points = store.query_points(ChainEvents.NAME, {"device": DEVICE}, 0, now_ns() + HOUR_NS)
            f = ChainEvents
            return [(p.fields[f.KIND], p.fields[f.FIRST_SEQ], p.fields[f.LAST_SEQ]) for p in points]

        wait_for(lambda: gaps() == [("unexplained_gap", head + 2, head + 2)], 20, "the gap reported")

        def verified_by_seq() -> dict[int | None, tuple[float, str]]:
            rows = store.readings(FACTORY, DEVICE, "so2", 0, now_ns() + HOUR_NS)
            return {r.seq: (r.value, r.verified) for r in rows}

        # The changed new scan is stored, flagged: never lost, never counted as verified.
        wait_for(lambda: head + 4 in verified_by_seq(), 20, "the changed scan stored")
        assert verified_by_seq()[head + 4] == (2.0, BAD_SIGNATURE)
        assert verified_by_seq()[head + 3] == (22.0, VERIFIED)
    finally:
        capture.stop()
        store.close()
        serve.terminate()
