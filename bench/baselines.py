"""The baselines the ingest is measured against, in the same run, fed by the same publisher.

- B0, the broker's limit: ``mosquitto_sub`` (QoS 1) writing to /dev/null, until it has the count.
- B1, a bare paho-mqtt subscriber that only counts (this module, run as ``python -m
  bench.baselines b1``): the same client library, protocol (MQTT 5), QoS and receive maximum as the
  ingest, and nothing else.
- B2, a bulk write of the same line protocol the ingest writes, to InfluxDB in 5,000-line batches
  (:func:`bulk_write`): the store's limit through its HTTP API from one Python client.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import requests
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.loadgen import READINGS_PER_SCAN, value_rows
from bench.site import CHANNELS, DEVICE, load_factory
from eit.wire import DATA_SUBSCRIPTION
from ingest.service import RECEIVE_MAXIMUM

B2_BATCH_LINES = 5000


def count_subscriber(port: int, count: int, timeout_s: float) -> dict[str, Any]:
    """B1: subscribe with QoS 1, count messages until ``count``; times of the first and last."""
    done = threading.Event()
    state = {"n": 0, "first_t": 0.0, "last_t": 0.0}
    ready = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(DATA_SUBSCRIPTION, qos=1)

    def on_subscribe(client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        ready.set()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["first_t"] = time.time()
        if n >= count:
            state["last_t"] = time.time()
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="eit-bench-b1", protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    client.connect("127.0.0.1", port, keepalive=30, properties=props)
    client.loop_start()
    if not ready.wait(30):
        raise SystemExit("b1: not subscribed within 30 s")
    print("ready", flush=True)
    done.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    return {
        "messages": state["n"],
        "first_t": state["first_t"],
        "last_t": state["last_t"],
        "cpu_s": time.process_time(),  # the whole process: connecting, counting, paho's thread
    }


def b2_lines(readings: int, start_ns: int) -> Iterator[str]:
    """The line protocol the ingest writes for ``readings`` readings of the load factories (one
    scan per factory in turn, like the publisher), built by the ingest's own function."""
    from eit.model import Reading
    from ingest.store.influx import line_protocol

    rows = value_rows()
    scans = readings // READINGS_PER_SCAN
    factories = 600
    for k in range(scans):
        values = json.loads(b"{" + rows[k % len(rows)] + b"}")
        ts = start_ns + k * 1000
        batch = [
            Reading(load_factory(k % factories), DEVICE, cid, ts, float(values[cid]), "N", k // factories + 1)
            for cid, *_ in CHANNELS
        ]
        yield from line_protocol(batch)


def bulk_write(url: str, database: str, readings: int, start_ns: int) -> dict[str, float]:
    """B2: POST the lines in 5,000-line batches; only the HTTP writes are timed."""
    session = requests.Session()
    session.post(f"{url}/query", params={"q": f'CREATE DATABASE "{database}"'}, timeout=30).raise_for_status()
    lines = list(b2_lines(readings, start_ns))
    bodies = ["\n".join(lines[i : i + B2_BATCH_LINES]).encode() for i in range(0, len(lines), B2_BATCH_LINES)]
    started = time.perf_counter()
    for body in bodies:
        resp = session.post(f"{url}/write", params={"db": database}, data=body, timeout=60)
        if resp.status_code != 204:
            raise RuntimeError(f"B2: InfluxDB refused a batch: {resp.status_code} {resp.text[:200]}")
    seconds = time.perf_counter() - started
    return {"readings": float(len(lines)), "seconds": seconds, "readings_per_s": len(lines) / seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.baselines")
    sub = p.add_subparsers(dest="cmd", required=True)
    b1 = sub.add_parser("b1", help="a bare paho-mqtt subscriber that counts to --count messages")
    b1.add_argument("--port", type=int, required=True)
    b1.add_argument("--count", type=int, required=True)
    b1.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    result = count_subscriber(args.port, args.count, args.timeout)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
