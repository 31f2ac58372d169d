"""A login flood against a real `eit serve` (with a real Mosquitto), for the security tests
(tests/test_security_flood.py) and the bench (bench/login_flood.py).

- The attacker: many concurrent failed logins straight from 127.0.0.1, each with a forged
  X-Forwarded-For (the server must ignore it: 127.0.0.1 is not a trusted proxy here), for the
  owner's account and for made-up names.
- A botnet: failed logins for the owner's account through the trusted proxy (127.0.0.2), each
  from another forwarded address.
- The owner: logs in through the proxy from an address of their own, during the flood.
- Scans published beside it: how long each waits until it is stored (its ack follows its store).

Memory is read from /proc: ``VmHWM`` is the process's peak resident set.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import requests
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from eit.confread import load_yaml
from eit.timeutil import now_ns, ns_to_iso
from testbed.services import EitProcess, wait_for, write_serve_config

PROXY = "127.0.0.2"  # the trusted reverse proxy of the rig
OWNER = "olivia"
OWNER_ADDRESS = "198.51.100.7"
F, D = "kaeng-khoi-biomass", "boiler-1"
DATA_TOPIC = f"eit/{F}/{D}/data"
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LoginAnswer:
    status: int
    retry_after: int | None
    seconds: float


def post_login(
    port: int,
    username: str,
    password: str,
    *,
    source: str = "127.0.0.1",
    forwarded: str | None = None,
    timeout_s: float = 180.0,
) -> LoginAnswer:
    """POST /api/v1/token from the local address ``source`` (any 127.x.y.z on Linux)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s, source_address=(source, 0))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    body = urllib.parse.urlencode({"username": username, "password": password})
    started = time.perf_counter()
    try:
        conn.request("POST", "/api/v1/token", body, headers)
        answer = conn.getresponse()
        answer.read()
        retry = answer.getheader("Retry-After")
        return LoginAnswer(answer.status, int(retry) if retry else None, time.perf_counter() - started)
    finally:
        conn.close()


def proc_status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


@dataclass(slots=True)
class FloodResult:
    attacker: dict[int, int] = field(default_factory=dict)  # status -> count, straight from 127.0.0.1
    botnet: dict[int, int] = field(default_factory=dict)  # status -> count, through the proxy
    seconds: float = 0.0


def flood(port: int, direct: int, botnet: int) -> FloodResult:
    """``direct`` + ``botnet`` failed logins, all sent at once."""
    result = FloodResult()
    gate = threading.Barrier(direct + botnet)
    lock = threading.Lock()

    def attacker(i: int) -> None:
        name = OWNER if i % 2 == 0 else f"ghost-{i}"
        gate.wait()
        got = post_login(
            port, name, f"guess-{i}-{uuid.uuid4().hex[:6]}", forwarded=f"10.9.{i // 250}.{i % 250}"
        )
        with lock:
            result.attacker[got.status] = result.attacker.get(got.status, 0) + 1

    def bot(i: int) -> None:
        gate.wait()
        got = post_login(
            port, OWNER, f"guess-{i}", source=PROXY, forwarded=f"203.0.{113 + i // 250}.{i % 250 + 1}"
        )
        with lock:
            result.botnet[got.status] = result.botnet.get(got.status, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=direct + botnet) as pool:
        futures = [pool.submit(attacker, i) for i in range(direct)]
        futures += [pool.submit(bot, i) for i in range(botnet)]
        for f in futures:
            f.result()
    result.seconds = time.perf_counter() - started
    return result


def owner_logs_in(port: int, password: str, deadline_s: float) -> tuple[float, int]:
    """Seconds until the owner, through the proxy from an address of their own, is let in
    (waiting what each 429's Retry-After says, as a browser's user would), and the 429s met."""
    started = time.monotonic()
    refused = 0
    pause = threading.Event()
    while time.monotonic() - started < deadline_s:
        got = post_login(port, OWNER, password, source=PROXY, forwarded=OWNER_ADDRESS)
        if got.status == 200:
            return time.monotonic() - started, refused
        if got.status != 429:
            raise AssertionError(f"the owner's login answered {got.status}")
        refused += 1
        pause.wait(got.retry_after or 1)
    raise AssertionError(f"the owner could not log in within {deadline_s:g} s ({refused} times 429)")


class ScanProbe:
    """Publishes a scan every ``interval_s`` (QoS 1) and reads the store for it: the longest
    wait of a scan between its publication and its row in the store."""

    def __init__(self, broker_port: int, readings_db: Path, interval_s: float = 0.2) -> None:
        self.broker_port = broker_port
        self.readings_db = readings_db
        self.interval_s = interval_s
        self.published: dict[int, float] = {}
        self.stored: dict[int, float] = {}
        self._stop = threading.Event()
        self._stop_publishing = threading.Event()
        self._threads = [
            threading.Thread(target=self._publish, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]
        self._seq = int(time.time() * 1000)  # above whatever an earlier run stored

    def __enter__(self) -> ScanProbe:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Publishing stops first; the poll goes on until the last scans published are stored
        # (or 15 s), so a scan still on its way is not counted as missing.
        self._stop_publishing.set()
        self._threads[0].join(10)
        deadline = time.monotonic() + 15
        while self.missing() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._threads[1].join(10)

    def _publish(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}")
        client.connect("127.0.0.1", self.broker_port)
        client.loop_start()
        try:
            while not self._stop_publishing.wait(self.interval_s):
                self._seq += 1
                scan = {"seq": self._seq, "ts": ns_to_iso(now_ns()), "values": {"so2": 40.0, "o2": 9.0}}
                self.published[self._seq] = time.monotonic()
                client.publish(DATA_TOPIC, json.dumps({"v": 1, "scans": [scan]}), qos=1)
        finally:
            client.loop_stop()
            client.disconnect()

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            if not self.readings_db.exists():
                continue
            try:
                with sqlite3.connect(f"file:{self.readings_db}?mode=ro", uri=True, timeout=1) as db:
                    rows = db.execute(
                        "SELECT seq FROM readings"
                        " WHERE factory=? AND device=? AND channel='so2' AND seq >= ?",
                        (F, D, min(self.published, default=0)),
                    ).fetchall()
            except sqlite3.Error:
                continue
            seen = time.monotonic()
            for (seq,) in rows:
                if seq is not None and seq not in self.stored:
                    self.stored[int(seq)] = seen

    def worst_wait_s(self) -> float:
        waits = [self.stored[s] - t for s, t in self.published.items() if s in self.stored]
        return max(waits, default=0.0)

    def missing(self) -> list[int]:
        return [s for s in self.published if s not in self.stored]


@dataclass(slots=True)
class FloodRig:
    serve: EitProcess
    http_port: int
    broker_port: int
    readings_db: Path
    owner_password: str

    @property
    def pid(self) -> int:
        assert self.serve.proc is not None
        return self.serve.proc.pid


@contextmanager
def flood_rig(workdir: Path, broker_port: int, **login: object) -> Iterator[FloodRig]:
    """`eit serve` of the example town, trusting 127.0.0.2 as its reverse proxy, with the owner's
    account (real Argon2id hashing, as in production)."""
    from server.accounts import open_accounts
    from server.config import load_serve_config
    from server.passwords import generate_password

    path = write_serve_config(workdir / "serve", broker_port, client_id=f"ingest-{uuid.uuid4().hex[:6]}")
    data = load_yaml(path)
    data["http"]["trusted_proxies"] = [PROXY]
    data["http"]["metrics_token"] = "metrics-token-for-tests"
    if login:
        data["http"]["login"] = dict(login)
    path.write_text(yaml.safe_dump(data))
    config = load_serve_config(path)
    password = generate_password()
    accounts = open_accounts(config.state_url, config.state_path)
    try:
        accounts.add_user(OWNER, "officer", password, now_ns())
    finally:
        accounts.close()
    serve = EitProcess(["serve", "--config", str(path)], workdir / "serve.log").start()
    port = config.http.port

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, 60, "eit serve to answer /healthz")
        wait_for(lambda: "connected to broker" in serve.output(), 60, "eit serve to connect")
        readings_db = config.data_dir / "readings.db"
        yield FloodRig(serve, port, broker_port, readings_db, password)
    finally:
        code = serve.terminate(60)
        assert code == 0, serve.output()[-3000:]
