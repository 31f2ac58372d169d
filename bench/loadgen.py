"""The benchmark's publisher: many simulated 12-channel stack analyzers, in one process.

Each scan is one message on ``eit/<factory>/stack/data`` in wire format v1, QoS 1, stamped with
the wall clock when it is published, exactly as an edge agent publishes. Scans are offered at a
paced rate (readings/s) or as fast as the process can, for a count or a duration. Like an edge
agent, it keeps what the broker has not acknowledged: the MQTT session is persistent and the
publisher holds unacknowledged and unsent messages in memory, resending the unacknowledged ones
(DUP, same packet id) after a reconnect, so a broker outage loses nothing on this side (the edge
agent's own on-disk outbox is tested elsewhere).

The MQTT client is not paho-mqtt but a small MQTT 3.1.1 QoS 1 publisher on a plain socket
(``Publisher`` below), written for this one job. With paho this process cost 108-114 us of CPU
per message (8,300-9,200 messages/s, a whole core, 200,000 messages to a local Mosquitto), so the
publisher took the core that the ingest under test needs, and the broker baselines (B0, B1)
measured the publisher rather than the broker. This one costs 5-6 us per message (about 87,000
messages/s): a PUBLISH packet is a few bytes concatenations, many packets go out per ``sendall``,
and the acks are parsed in bulk.

With ``--probe-every S`` it also publishes a probe scan every S seconds, each from a new probe
factory, with CO above that factory's instantaneous permit limit; the send times are in the
summary so the harness can pair them with the alerts it receives.

Run by bench/run.py as ``python -m bench.loadgen ...``; prints one JSON summary line at the end.
SIGTERM or SIGINT stops publishing early; the summary still comes after the acks are in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import socket
import sys
import threading
import time
from collections import deque
from typing import Any

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


_PUBLISH_DUP = b"\x3a"  # PUBLISH, DUP, QoS 1 (first byte)
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"
_BATCH = 500  # PUBLISH packets per sendall, at most


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def connect_packet(client_id: str, keepalive: int) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session 0 (the broker keeps the session), no will, no login."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x00" + keepalive.to_bytes(2, "big") + len(cid).to_bytes(2, "big") + cid
    return b"\x10" + remaining_length(len(body)) + body


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Publisher:
    """A lean MQTT 3.1.1 publisher, QoS 1 only, for this one job (paho's per-message CPU cost
    would dominate the machine; see the module docstring).

    ``publish()`` only appends to a local queue (unbounded, like an edge agent's outbox). A writer
    thread, the only one that writes to the connected socket, takes queued messages while fewer
    than ``inflight`` are unacknowledged, gives them packet ids and sends them joined, many packets
    per ``sendall``. A reader thread owns the connection: it connects (clean session 0, so the
    broker keeps the session), parses what the broker sends (CONNACK, PUBACK, PINGRESP) and, when
    the connection drops, counts a disconnect and connects again every 0.5-1 s. After a CONNACK
    the writer first resends every unacknowledged message with the DUP flag (same packet id), then
    the queued ones: nothing is lost, and nothing is sent twice but those redeliveries.
    """

    def __init__(self, host: str, port: int, client_id: str, inflight: int, keepalive: int = 30) -> None:
        self.acked = 0
        self.disconnects = 0
        self.last_ack_t = 0.0
        self.connected = threading.Event()
        self._address = (host, port)
        self._connect_packet = connect_packet(client_id, keepalive)
        self._keepalive = keepalive
        self._max_inflight = max(1, min(inflight, 65535))
        self._topics: dict[str, bytes] = {}  # topic -> its encoded name (length prefix + UTF-8)
        self._queue: deque[tuple[bytes, bytes]] = deque()  # (encoded topic, payload), not yet sent
        self._lock = threading.Lock()  # guards what follows
        self._unacked: dict[int, bytes] = {}  # packet id -> PUBLISH packet, in the order sent
        self._next_id = 0
        self._sock: socket.socket | None = None  # the connected socket, once CONNACK is in
        self._generation = 0  # changes whenever _sock does
        self._retired: list[socket.socket] = []  # dropped sockets, closed by the writer
        self._ping_sent = 0.0  # monotonic time of an unanswered PINGREQ (0: none)
        self._blocked = True  # the writer cannot send now: publish() need not wake it
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="loadgen-mqtt-reader", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="loadgen-mqtt-writer", daemon=True)
        self._reader.start()
        self._writer.start()

    def publish(self, topic: str, payload: bytes) -> None:
        name = self._topics.get(topic)
        if name is None:
            raw = topic.encode()
            name = self._topics[topic] = len(raw).to_bytes(2, "big") + raw
        self._queue.append((name, payload))
        if not self._blocked and not self._wake.is_set():
            self._wake.set()

    def close(self) -> None:
        """Send DISCONNECT, close the connection and stop both threads."""
        self._closing.set()
        self._wake.set()
        self._writer.join(10)
        with self._lock:
            sock, self._sock = self._sock, None
            retired, self._retired = self._retired, []
        self.connected.clear()
        if sock is not None:
            _shutdown(sock)  # the reader sees the end of the stream and stops
        self._reader.join(10)
        for s in [*retired, *([sock] if sock is not None else [])]:
            s.close()

    # -- the writer ------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        sock: socket.socket | None = None
        generation = 0
        last_send = time.monotonic()
        half_keepalive = self._keepalive / 2
        while not self._closing.is_set():
            self._wake.clear()
            out: list[bytes] = []
            with self._lock:
                if generation != self._generation:
                    generation = self._generation
                    sock = self._sock
                    last_send = time.monotonic()
                    for old in self._retired:
                        old.close()  # not in use: this thread sends only on ``sock``
                    self._retired.clear()
                    if sock is not None:
                        out = [_PUBLISH_DUP + p[1:] for p in self._unacked.values()]
                if sock is not None:
                    out.extend(self._take())
                self._blocked = sock is None or len(self._unacked) >= self._max_inflight
            if sock is None:
                self._wake.wait(1.0)
                continue
            now = time.monotonic()
            if self._ping_sent and now - self._ping_sent > self._keepalive:
                _shutdown(sock)  # no PINGRESP: the reader sees the drop and reconnects
                sock = None
                continue
            if not out and now - last_send >= half_keepalive and not self._ping_sent:
                self._ping_sent = now
                out = [_PINGREQ]
            if out:
                try:
                    sock.sendall(b"".join(out))
                except OSError:
                    _shutdown(sock)  # the reader counts the drop and reconnects
                    sock = None
                    continue
                last_send = now
                continue  # more may be waiting
            self._wake.wait(1.0)
        with self._lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.sendall(_DISCONNECT)

    def _take(self) -> list[bytes]:
        """PUBLISH packets for the queued messages that fit in the in-flight window (lock held)."""
        n = min(self._max_inflight - len(self._unacked), len(self._queue), _BATCH)
        if n <= 0:
            return []
        packets = []
        unacked = self._unacked
        queue = self._queue
        pid = self._next_id
        for _ in range(n):
            name, payload = queue.popleft()
            pid = pid % 65535 + 1
            while pid in unacked:
                pid = pid % 65535 + 1
            length = len(name) + 2 + len(payload)
            if length < 128:
                packet = b"\x32" + bytes((length,)) + name + pid.to_bytes(2, "big") + payload
            else:
                packet = b"\x32" + remaining_length(length) + name + pid.to_bytes(2, "big") + payload
            unacked[pid] = packet
            packets.append(packet)
        self._next_id = pid
        return packets

    # -- the reader: the connection and what the broker sends --------------------------------------
    def _read_loop(self) -> None:
        while not self._closing.is_set():
            sock = self._open()
            if sock is None:
                self._closing.wait(random.uniform(0.5, 1.0))
                continue
            with self._lock:
                if self._closing.is_set():
                    sock.close()
                    return
                self._sock = sock
                self._generation += 1
                self._ping_sent = 0.0
            self.connected.set()
            self._wake.set()
            with contextlib.suppress(OSError, ValueError):
                self._read(sock)
            if self._closing.is_set():
                return
            self.connected.clear()
            with self._lock:
                if self._sock is sock:
                    self._sock = None
                    self._generation += 1
                    self._retired.append(sock)
                self._blocked = True
            _shutdown(sock)  # a blocked sendall in the writer returns
            self.disconnects += 1
            self._wake.set()
            self._closing.wait(random.uniform(0.5, 1.0))

    def _open(self) -> socket.socket | None:
        """A connection with the CONNACK in (session accepted), or None."""
        try:
            sock = socket.create_connection(self._address, timeout=5)
        except OSError:
            return None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(self._connect_packet)
            connack = b""
            while len(connack) < 4:
                chunk = sock.recv(4 - len(connack))
                if not chunk:
                    raise ConnectionError("closed before CONNACK")
                connack += chunk
            if connack[:2] != b"\x20\x02" or connack[3] != 0:
                raise ConnectionError(f"connection refused: CONNACK {connack.hex()}")
            sock.settimeout(None)
        except OSError:
            sock.close()
            return None
        return sock

    def _read(self, sock: socket.socket) -> None:
        """Parse packets until the stream ends; partial packets wait in the buffer."""
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf = buf + chunk if buf else chunk
            end = len(buf)
            pos = 0
            acks: list[int] = []
            while end - pos >= 2:
                kind = buf[pos]
                if kind == 0x40 and buf[pos + 1] == 2:  # PUBACK, the usual case
                    if end - pos < 4:
                        break
                    acks.append(buf[pos + 2] << 8 | buf[pos + 3])
                    pos += 4
                    continue
                length, start = 0, pos + 1
                for shift in (0, 7, 14, 21):
                    if start >= end:
                        length = -1
                        break
                    byte = buf[start]
                    start += 1
                    length |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                else:
                    raise ValueError("malformed remaining length")
                if length < 0 or start + length > end:
                    break  # the rest of the packet has not arrived yet
                if kind == 0xD0:  # PINGRESP
                    self._ping_sent = 0.0
                # anything else (none is expected from the broker) is skipped
                pos = start + length
            buf = buf[pos:]
            if acks:
                self._ack(acks)

    def _ack(self, ids: list[int]) -> None:
        with self._lock:
            unacked = self._unacked
            freed = 0
            for pid in ids:
                if unacked.pop(pid, None) is not None:
                    freed += 1
            self.acked += freed
            waiting = False
            if freed and self._sock is not None:
                self._blocked = False  # slots are free: publish() wakes the writer again
                waiting = bool(self._queue)
        if freed:
            self.last_ack_t = time.time()
        if waiting:
            self._wake.set()


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
        # While connected, stay at most ``window`` messages ahead of the broker's acks (the
        # publisher's local queue is the sender's backlog); while disconnected, keep scanning, as
        # an agent does.
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
