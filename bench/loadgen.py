"""The benchmark's publisher: many simulated 12-channel stack analyzers, in one process.

Each scan is one message on ``eit/<factory>/stack/data`` in wire format v1, QoS 1, stamped with
the wall clock when it is published, exactly as an edge agent publishes. Scans are offered at a
paced rate (readings/s) or as fast as the process can, for a count or a duration. Like an edge
agent, it keeps what the broker has not acknowledged: the MQTT session is persistent and paho
holds unacknowledged and unsent messages in memory, resending them after a reconnect, so a broker
outage loses nothing on this side (the edge agent's own on-disk outbox is tested elsewhere).

With ``--probe-every S`` it also publishes a probe scan every S seconds, each from a new probe
factory, with CO above that factory's instantaneous permit limit; the send times are in the
summary so the harness can pair them with the alerts it receives.

Run by bench/run.py as ``python -m bench.loadgen ...``; prints one JSON summary line at the end.
SIGTERM or SIGINT stops publishing early; the summary still comes after the acks are in.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.site import CHANNELS, DEVICE, PROBE_CHANNEL, PROBE_VALUE, load_factory, probe_factory

READINGS_PER_SCAN = len(CHANNELS)
_VARIANTS = 251  # distinct value rows, cycled (noise, so that no flatline rule fires)


def value_rows(seed: int = 7, override: dict[str, float] | None = None) -> list[bytes]:
    """The ``values`` objects of scans (as JSON text) with +-10 % noise around typical values."""
    rnd = random.Random(seed)
    rows = []
    for _ in range(_VARIANTS):
        parts = []
        for cid, _unit, _rng, typical in CHANNELS:
            value = (override or {}).get(cid, typical * (0.9 + 0.2 * rnd.random()))
            parts.append(f'"{cid}":{value:.4g}')
        rows.append(",".join(parts).encode())
    return rows


class Publisher:
    def __init__(self, host: str, port: int, client_id: str, inflight: int) -> None:
        self.acked = 0
        self.disconnects = 0
        self.last_ack_t = 0.0
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
        )
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)  # unbounded: keep everything the broker has not acked
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self.disconnects += 1

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self.acked += 1
            self.last_ack_t = time.time()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pub = Publisher(args.host, args.port, args.client_id, args.inflight)
    if not pub.connected.wait(30):
        raise SystemExit(f"loadgen: no connection to the broker at {args.host}:{args.port}")
    topics = [f"eit/{load_factory(i)}/{DEVICE}/data" for i in range(args.factories)]
    seqs = [0] * args.factories
    last_us = [0] * args.factories
    rows = value_rows()
    probe_rows = value_rows(11, {PROBE_CHANNEL: PROBE_VALUE})
    template = b'{"v":1,"scans":[{"seq":%d,"ts":%d.%06d,"values":{%s}}]}'
    max_messages = args.count // READINGS_PER_SCAN if args.count else None
    rate_msgs = args.rate / READINGS_PER_SCAN if args.rate else 0.0
    probes: dict[str, float] = {}
    next_probe = 0
    probe_at = time.time() + args.probe_every if args.probe_every else float("inf")

    sent = 0
    first_t = time.time()
    end_t = first_t + args.duration if args.duration else float("inf")
    n = args.factories
    while not stop.is_set():
        now = time.time()
        if now >= end_t or (max_messages is not None and sent >= max_messages):
            break
        if rate_msgs:
            due = int((now - first_t) * rate_msgs) + 1
            if max_messages is not None:
                due = min(due, max_messages)
            burst = due - sent
            if burst <= 0:
                time.sleep(min(0.002, max(0.0, (sent + 1) / rate_msgs - (now - first_t))))
                continue
        else:
            burst = 200 if max_messages is None else min(200, max_messages - sent)
        # While connected, stay at most ``window`` messages ahead of the broker's acks (paho's
        # queue is the sender's backlog); while disconnected, keep scanning, as an agent does.
        while pub.connected.is_set() and sent - pub.acked > args.window and not stop.is_set():
            time.sleep(0.0005)
        for _ in range(burst):
            i = sent % n
            us = max(int(time.time() * 1_000_000), last_us[i] + 1)
            last_us[i] = us
            seqs[i] += 1
            pub.publish(
                topics[i], template % (seqs[i], us // 1_000_000, us % 1_000_000, rows[sent % _VARIANTS])
            )
            sent += 1
        if now >= probe_at and next_probe < args.probes:
            factory = probe_factory(next_probe)
            us = int(time.time() * 1_000_000)
            pub.publish(
                f"eit/{factory}/{DEVICE}/data",
                template % (1, us // 1_000_000, us % 1_000_000, probe_rows[next_probe % _VARIANTS]),
            )
            probes[factory] = us / 1_000_000
            next_probe += 1
            probe_at += args.probe_every
    last_t = time.time()
    total = sent + next_probe
    deadline = time.monotonic() + args.ack_timeout
    while pub.acked < total and time.monotonic() < deadline:
        time.sleep(0.05)
    pub.close()
    return {
        "messages": sent,
        "readings": sent * READINGS_PER_SCAN,
        "probe_messages": next_probe,
        "probe_readings": next_probe * READINGS_PER_SCAN,
        "acked": pub.acked,
        "first_t": first_t,
        "last_t": last_t,
        "last_ack_t": pub.last_ack_t,
        "offered_readings_per_s": sent * READINGS_PER_SCAN / max(max(last_t, pub.last_ack_t) - first_t, 1e-9),
        "disconnects": pub.disconnects,
        "cpu_s": time.process_time(),
        "probes": probes,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--factories", type=int, default=600)
    p.add_argument("--rate", type=float, default=0.0, help="readings/s to offer (0: as fast as possible)")
    p.add_argument("--count", type=int, default=0, help="readings to publish (0: until --duration)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds to publish (0: until --count)")
    p.add_argument("--probe-every", type=float, default=0.0, help="seconds between latency probes")
    p.add_argument("--probes", type=int, default=0, help="probe factories available")
    p.add_argument("--client-id", default="eit-bench-loadgen")
    p.add_argument("--inflight", type=int, default=1000)
    p.add_argument("--window", type=int, default=5000, help="messages ahead of the acks, at most")
    p.add_argument("--ack-timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    if not args.count and not args.duration:
        p.error("give --count or --duration")
    summary = run(args)
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
