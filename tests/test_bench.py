"""The benchmark harness itself (bench/): what it publishes is valid, and a short run of every
pass accounts for every reading. The figures it measures are not asserted here: performance is
measured by `eit bench`, never by a timed test."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.loadgen import READINGS_PER_SCAN, Publisher, value_rows
from bench.run import Profile, run, table
from bench.site import PROBE_CHANNEL, PROBE_LIMIT, PROBE_VALUE, write_site
from eit import wire
from eit.registry import load_registry
from ingest.validate import Validator
from testbed.services import EIT, REPO, Mosquitto, wait_for


def test_the_load_and_the_probes_are_valid_scans_of_the_bench_town(tmp_path: Path) -> None:
    registry = load_registry(write_site(tmp_path / "site.yaml", factories=3, probes=2))
    validator = Validator(registry)
    now = 1795770000 * 10**9
    for factory, rows in (("f0002", value_rows()), ("p0001", value_rows(11, {PROBE_CHANNEL: PROBE_VALUE}))):
        for row in rows[:20]:
            payload = b'{"v":1,"scans":[{"seq":5,"ts":1795770000.000001,"values":{%s}}]}' % row
            topic = wire.parse_topic(f"eit/{factory}/stack/data")
            checked = validator.check(topic, wire.decode(payload), now)
            assert checked.rejected == []
            assert len(checked.readings) == READINGS_PER_SCAN
            flags = {r.flag for r in checked.readings}
            assert flags == {"N"}, f"a load value outside its measuring range: {row!r}"
            co = next(r.value for r in checked.readings if r.channel == PROBE_CHANNEL)
            assert (co > PROBE_LIMIT) is factory.startswith("p")


# Its outages are of its own processes and it asserts what every pass accounts for, never a
# figure: it runs in the parallel pass.
@pytest.mark.integration
def test_a_short_run_of_every_pass_stores_every_reading_once(report: Callable[[str], None]) -> None:
    tiny = Profile(
        "tiny",
        throughput_readings=6_000,
        latency_s=2,
        probe_every_s=0.2,
        overload_s=0.3,
        influx_down_s=1,
        broker_down_s=1,
        ingest_down_s=1,
        settle_s=1,
        recovery_s=3,
    )
    results = run(tiny, keep=False, passes={"sqlite", "overload", "outages"})
    for key in ("b0", "b1", "b2", "ingest_influx", "ingest_sqlite"):
        assert results[key]["readings_per_s"] > 0, key
    accountings = {
        "ingest_influx": results["ingest_influx"]["accounting"],
        "ingest_sqlite": results["ingest_sqlite"]["accounting"],
        "overload": results["overload"]["accounting"],
        **{f"outage {k}": v["accounting"] for k, v in results["outages"].items()},
    }
    assert set(results["outages"]) == {"influxdb_down", "broker_down", "ingest_killed"}
    for name, acc in accountings.items():
        report(f"{name}: published {acc['published']}, in the store {acc['in_store']}")
        assert acc["published"] > 0 and acc["lost"] == 0 and acc["doubled"] == 0, (name, acc)
    latency = results["latency"]
    assert latency["alerts"] == latency["probes"] > 0
    assert not math.isnan(latency["p99_ms"])
    text = table(results)
    assert "x B1" in text and "p99" in text and "InfluxDB down" in text
    json.dumps(results, default=str)  # --json writes it


def test_eit_bench_has_its_own_help() -> None:
    out = subprocess.run([*EIT, "bench", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--quick" in out.stdout and "--full" in out.stdout
    bad = subprocess.run([*EIT, "bench", "--fastest"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--fastest" in bad.stderr


class Collector:
    """A paho subscriber to the load's topics, QoS 1, with a persistent session (fixed client id,
    clean session 0): the broker keeps what it has not delivered while either side is away."""

    SENTINEL_TOPIC = "eit/sentinel/end/data"

    def __init__(self, port: int, client_id: str) -> None:
        self.port = port
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._sentinel = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *a: c.subscribe("eit/+/+/data", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(30), "not subscribed"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.SENTINEL_TOPIC:
            self._sentinel.set()
            return
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def drain(self) -> None:
        """Wait until whatever the broker holds for this subscriber has arrived: a sentinel message
        published now is queued behind it (Mosquitto handles messages in order, and everything
        published before was acknowledged, hence queued, already)."""
        publish.single(self.SENTINEL_TOPIC, b"end", qos=1, hostname="127.0.0.1", port=self.port)
        assert self._sentinel.wait(30), "the sentinel message did not arrive"

    def by_scan(self) -> tuple[dict[tuple[str, int], set[bytes]], int]:
        """{(factory, seq): the payloads received for it}, and the number of messages received."""
        with self._lock:
            received = list(self.received)
        scans: dict[tuple[str, int], set[bytes]] = {}
        for topic, payload in received:
            factory = topic.split("/")[1]
            seq = int(json.loads(payload)["scans"][0]["seq"])
            scans.setdefault((factory, seq), set()).add(payload)
        return scans, len(received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.integration
def test_the_publisher_delivers_every_message_with_its_topic_and_payload(broker: Mosquitto) -> None:
    collector = Collector(broker.port, "eit-test-lg-collector")
    sent: list[tuple[str, bytes]] = []
    pub = Publisher("127.0.0.1", broker.port, "eit-test-lg-pub", inflight=64)
    try:
        assert pub.connected.wait(10)
        pub._next_id = 65_400  # start near the end of the packet id space: the ids wrap to 1
        rows = value_rows()
        for i in range(3_000):
            topic = f"eit/f{i % 7:04d}/stack/data"
            payload = b'{"v":1,"scans":[{"seq":%d,"ts":1795770000.%06d,"values":{%s}}]}' % (
                i // 7 + 1,
                i,
                rows[i % len(rows)],
            )
            pub.publish(topic, payload)
            sent.append((topic, payload))
        wait_for(lambda: pub.acked == len(sent), 30, "the broker's acks")
        wait_for(lambda: len(collector.received) >= len(sent), 30, "every message at the subscriber")
        collector.drain()  # nothing more may come
    finally:
        pub.close()
        collector.close()
    assert pub.acked == len(sent) and pub.disconnects == 0
    assert sorted(collector.received) == sorted(sent)
    assert not pub._reader.is_alive() and not pub._writer.is_alive()


@pytest.mark.integration
@pytest.mark.serial  # the broker is stopped at a set time into the run
def test_a_broker_outage_mid_run_loses_no_message(broker: Mosquitto, report: Callable[[str], None]) -> None:
    collector = Collector(broker.port, "eit-test-lg-outage-collector")
    cmd = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(broker.port),
        "--factories",
        "40",
        "--rate",
        str(1_500 * READINGS_PER_SCAN),
        "--duration",
        "7",
        "--inflight",
        "200",
        "--client-id",
        "eit-test-lg-outage",
        "--ack-timeout",
        "60",
    ]
    loadgen = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2.5)  # scenario time: the broker stops 2.5 s into the run ...
        broker.stop()  # SIGTERM: Mosquitto saves the sessions and their queued messages
        time.sleep(2.5)  # ... for 2.5 s
        broker.start()
        out, err = loadgen.communicate(timeout=120)
        assert loadgen.returncode == 0, err.decode(errors="replace")
        summary = json.loads(out.decode().strip().splitlines()[-1])
        published = summary["messages"]
        assert summary["acked"] == published > 0
        assert summary["disconnects"] >= 1
        wait_for(lambda: len(collector.by_scan()[0]) >= published, 60, "every scan at the subscriber")
        collector.drain()  # and any redelivery still queued
        scans, received = collector.by_scan()
    finally:
        if loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait(10)
        collector.close()
    report(f"published {published}, received {received} ({received - len(scans)} redelivered)")
    assert len(scans) == published
    per_factory: dict[str, set[int]] = {}
    for factory, seq in scans:
        per_factory.setdefault(factory, set()).add(seq)
    assert len(per_factory) == 40
    for factory, seqs in per_factory.items():
        assert seqs == set(range(1, max(seqs) + 1)), f"{factory}: a gap in the seqs"
    # A scan received twice is a redelivery of the same message, not the scan published again.
    assert all(len(payloads) == 1 for payloads in scans.values())


def _packet(conn: socket.socket) -> tuple[int, bytes]:
    """One MQTT packet read from ``conn``: (first byte, the rest after the remaining length)."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            assert chunk, "the publisher closed the connection"
            data += chunk
        return data

    first = exactly(1)[0]
    length, shift = 0, 0
    while True:
        byte = exactly(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    return first, exactly(length)


def _publish(conn: socket.socket) -> tuple[int, int, bytes]:
    """(first byte, packet id, payload) of the next packet, which must be a QoS 1 PUBLISH."""
    first, body = _packet(conn)
    assert first & 0xF6 == 0x32, f"not a QoS 1 PUBLISH: {first:#x}"
    n = int.from_bytes(body[:2], "big")
    assert body[2 : 2 + n] == b"eit/f0001/stack/data"
    return first, int.from_bytes(body[2 + n : 4 + n], "big"), body[4 + n :]


def _accept_session(server: socket.socket) -> socket.socket:
    conn, _ = server.accept()
    conn.settimeout(10)
    first, body = _packet(conn)
    assert first == 0x10
    assert body[:8] == b"\x00\x04MQTT\x04\x00"  # MQTT 3.1.1, clean session 0
    assert body[10:] == b"\x00\x07lg-unit"
    conn.sendall(b"\x20")  # the CONNACK in two pieces
    time.sleep(0.02)  # scenario time: the pieces reach the publisher apart
    conn.sendall(b"\x02\x00\x00")
    return conn


def test_the_publisher_resends_the_unacknowledged_with_dup_then_the_queue() -> None:
    """Against a scripted broker: acks that come a byte at a time, at most ``inflight`` messages
    unacknowledged, and after a dropped connection the unacknowledged ones first, with DUP and
    their packet ids, then the queued ones; nothing sent twice otherwise."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    pub = Publisher("127.0.0.1", server.getsockname()[1], "lg-unit", inflight=4)
    try:
        conn = _accept_session(server)
        assert pub.connected.wait(5)
        for i in range(10):
            pub.publish("eit/f0001/stack/data", b"m%d" % i)
        first_four = [_publish(conn) for _ in range(4)]
        assert [(f, pid, p) for f, pid, p in first_four] == [(0x32, i + 1, b"m%d" % i) for i in range(4)]
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(1)  # the window is full: nothing more until an ack
        conn.settimeout(10)
        for byte in b"\x40\x02\x00\x01\x40\x02\x00\x02":  # PUBACK 1 and 2, a byte at a time
            conn.sendall(bytes((byte,)))
            time.sleep(0.01)  # scenario time: a byte at a time, each read on its own
        assert [_publish(conn) for _ in range(2)] == [(0x32, 5, b"m4"), (0x32, 6, b"m5")]
        wait_for(lambda: pub.acked == 2, 5, "two acks")
        conn.close()  # the broker goes away with 3, 4, 5 and 6 unacknowledged
        wait_for(lambda: pub.disconnects == 1 and not pub.connected.is_set(), 5, "the drop")
        pub.publish("eit/f0001/stack/data", b"m10")
        pub.publish("eit/f0001/stack/data", b"m11")

        conn = _accept_session(server)
        assert pub.connected.wait(5)
        resent = [_publish(conn) for _ in range(4)]
        assert resent == [(0x3A, i + 1, b"m%d" % i) for i in range(2, 6)]  # DUP, same ids
        conn.sendall(b"".join(b"\x40\x02" + pid.to_bytes(2, "big") for pid in (3, 4, 5, 6)))
        rest = []
        for n in (4, 2):  # the window again: 4, then 2 after their acks
            batch = [_publish(conn) for _ in range(n)]
            conn.sendall(b"".join(b"\x40\x02" + pid.to_bytes(2, "big") for _f, pid, _p in batch))
            rest += batch
        assert [(f, p) for f, _pid, p in rest] == [(0x32, b"m%d" % i) for i in range(6, 12)]
        assert len({pid for _f, pid, _p in rest} | {3, 4, 5, 6}) == 10  # no id still in flight reused
        wait_for(lambda: pub.acked == 12, 5, "every ack")
        pub.close()
        assert _packet(conn) == (0xE0, b"")  # DISCONNECT
        assert conn.recv(1) == b""
        assert pub.disconnects == 1
    finally:
        pub.close()
        server.close()
