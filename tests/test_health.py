"""`eit serve` supervises its workers and tells the truth about them, with a real Mosquitto.

- A stage that fails once is restarted with the batch it held: every scan is stored, seen by the
  rules and acknowledged exactly once.
- A stage that keeps failing turns /healthz to 503, and `eit serve` exits with code 70.
- A stage that hangs (a store write that blocks) is stuck after health.stuck_after_s: /healthz
  503, and 200 again once it moves.
- A broker that is down is a readiness matter: /readyz says why, /healthz stays 200.
- /metrics and /readyz are refused to a caller elsewhere without the metrics token.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import requests
import yaml
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry

from eit.confread import load_yaml
from eit.model import Reading
from eit.timeutil import now_ns, ns_to_iso
from ingest.store.sqlite import SqliteStore
from server.api import ApiSettings, create_app
from server.config import load_serve_config
from server.serve import Server
from testbed.services import FAR_FUTURE_NS, REPO, Mosquitto, wait_for, write_serve_config

pytestmark = pytest.mark.integration

F, D = "kaeng-khoi-biomass", "boiler-1"
DATA = f"eit/{F}/{D}/data"


class Recorder:
    """A sink beside the rules: every reading handed on after the store."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.lock = threading.Lock()

    def on_readings(self, readings: Sequence[Reading], now_ns: int) -> None:
        with self.lock:
            self.readings.extend(readings)

    def on_status(self, factory: str, device: str, state: str, now_ns: int) -> None:
        pass

    def seqs(self, channel: str) -> list[int]:
        with self.lock:
            return sorted(r.seq or 0 for r in self.readings if r.channel == channel)


def serve_config(tmp_path: Path, broker: Mosquitto, *, http_host: str = "127.0.0.1", **health: Any) -> Path:
    path = write_serve_config(tmp_path / "serve", broker.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}")
    data = load_yaml(path)
    data["http"]["host"] = http_host
    data["http"]["metrics_token"] = "metrics-token-for-tests"
    data["health"] = health
    path.write_text(yaml.safe_dump(data))
    return path


def publish_scans(port: int, seqs: range, per_message: int = 1) -> None:
    """Scans of the boiler (so2 and o2) with the given seqs, one second apart, ending now."""
    end = now_ns() // 1_000_000_000 * 1_000_000_000
    scans = [
        {"seq": s, "ts": ns_to_iso(end - (seqs.stop - s) * 1_000_000_000), "values": {"so2": 40.0, "o2": 9.0}}
        for s in seqs
    ]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"agent-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [
            client.publish(DATA, json.dumps({"v": 1, "scans": scans[i : i + per_message]}), qos=1)
            for i in range(0, len(scans), per_message)
        ]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


class Servers:
    """`eit serve` in this process (with a recorder beside the rules), stopped after the test."""

    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.running: list[Server] = []

    def start(self, config: Path | None = None, **health: Any) -> tuple[Server, Recorder]:
        recorder = Recorder()
        path = config or serve_config(self.tmp_path, self.broker, **health)
        server = Server(load_serve_config(path, environ={}), extra_sinks=[recorder])
        self.running.append(server)
        server.start()
        assert server.mqtt.wait_connected(10)
        return server, recorder

    def stop(self, server: Server) -> None:
        self.running.remove(server)
        server.stop()


@pytest.fixture
def servers(tmp_path: Path, broker: Mosquitto) -> Iterator[Servers]:
    rig = Servers(tmp_path, broker)
    yield rig
    for server in list(rig.running):
        rig.stop(server)


def url(server: Server, path: str) -> str:
    return f"http://127.0.0.1:{server.http_port}{path}"


def restarts(server: Server, worker: str) -> float:
    value = server.metrics.registry.get_sample_value("eit_worker_restarts_total", {"worker": worker})
    return -1.0 if value is None else value


@pytest.mark.parametrize(
    ("stage", "call"),
    [("ingest-decode", "decode_batch"), ("ingest-write", "store_batch"), ("ingest-rules", "deliver")],
)
def test_a_stage_that_fails_once_is_restarted_and_every_scan_is_stored_and_acked_once(
    servers: Servers,
    tmp_path: Path,
    broker: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    call: str,
) -> None:
    config = serve_config(tmp_path, broker)
    server, recorder = servers.start(config)
    real = getattr(server.ingest, call)
    failed = threading.Event()

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failed.is_set():
            failed.set()
            raise RuntimeError(f"injected failure of {call}")
        return real(*args, **kwargs)

    monkeypatch.setattr(server.ingest, call, fails_once)
    n = 200
    publish_scans(broker.port, range(1, n + 1))
    wait_for(lambda: len(recorder.seqs("so2")) >= n, 20, "every scan to reach the rules")
    wait_for(lambda: server.metrics.registry.get_sample_value("eit_ingest_queue_depth") == 0, 10, "acks")
    assert failed.is_set()
    assert restarts(server, stage) == 1
    assert recorder.seqs("so2") == list(range(1, n + 1)), "each scan reaches the rules exactly once"
    assert recorder.seqs("o2") == list(range(1, n + 1))
    store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
    try:
        assert [r.seq for r in store.readings(F, D, "so2", 0, FAR_FUTURE_NS)] == list(range(1, n + 1))
        assert store.count(factory=F, device=D) == 2 * n
    finally:
        store.close()
    health = requests.get(url(server, "/healthz"), timeout=5)
    assert health.status_code == 200 and health.json()["stages"][stage] == "ok"
    servers.stop(server)

    # Every message was acknowledged once: a new session of the same client gets nothing again
    # (the broker sends what a session left unacknowledged before anything new).
    monkeypatch.undo()
    again, seen = servers.start(config)
    publish_scans(broker.port, range(n + 1, n + 2))
    wait_for(lambda: seen.seqs("so2") != [], 20, "the next scan")
    assert seen.seqs("so2") == [n + 1]
    assert restarts(again, stage) == 0


@pytest.mark.serial  # times things (decision 12: runs alone)
def test_a_stage_that_keeps_failing_turns_healthz_to_503(
    servers: Servers, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = servers.start(max_restarts=2, restart_window_s=60)

    def always_fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected: the write stage fails every time")

    monkeypatch.setattr(server.ingest, "store_batch", always_fails)
    before = requests.get(url(server, "/healthz"), timeout=5)
    assert before.status_code == 200 and set(before.json()["stages"]) >= {
        "ingest-decode",
        "ingest-write",
        "ingest-rules",
        "rules-effects",
        "rules-tick",
        "notify-log",
    }
    publish_scans(broker.port, range(1, 2))
    assert server.failed.wait(20), "the supervisor gives up on the write stage"
    health = requests.get(url(server, "/healthz"), timeout=5)
    assert health.status_code == 503
    assert health.json()["status"] == "not ok"
    assert {k for k, v in health.json()["stages"].items() if v != "ok"} == {"ingest-write"}
    assert restarts(server, "ingest-write") == 2
    ready = requests.get(url(server, "/readyz"), timeout=5)
    assert ready.status_code == 503
    write = ready.json()["stages"]["ingest-write"]
    assert write["state"] == "failed" and write["restarts"] == 2 and "injected" in write["last_error"]
    assert "ingest-write failed more than 2 times" in ready.json()["failure"]
    metrics = requests.get(url(server, "/metrics"), timeout=5).text
    assert 'eit_stage_alive{stage="ingest-write"} 0.0' in metrics
    assert 'eit_stage_alive{stage="ingest-decode"} 1.0' in metrics


@pytest.mark.serial  # times things (decision 12: runs alone)
def test_eit_serve_exits_with_code_70_when_a_worker_fails_too_often(
    tmp_path: Path, broker: Mosquitto
) -> None:
    config = serve_config(tmp_path, broker, max_restarts=1)
    # `eit serve` as a user runs it, with its write stage made to fail every time (from outside,
    # only a defect could do that).
    script = tmp_path / "failing_serve.py"
    script.write_text(
        "import sys\n"
        "from ingest.service import Ingest\n"
        "def fails(self, *args, **kwargs):\n"
        "    raise RuntimeError('injected: the write stage fails every time')\n"
        "Ingest.store_batch = fails\n"
        "from server.cli import main\n"
        f"sys.exit(main(['serve', '--config', {str(config)!r}]))\n"
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            wait_for(lambda: "connected to broker" in log_path.read_text(), 30, "eit serve to connect")
            publish_scans(broker.port, range(1, 2))
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    output = log_path.read_text()
    assert code == 70, output
    assert "ingest-write failed 2 times within 300 s: giving up on it" in output
    assert "exiting with code 70: ingest-write failed more than 1 times within 300 s" in output


@pytest.mark.serial  # times things (decision 12: runs alone)
def test_a_store_write_that_blocks_makes_the_write_stage_stuck_until_it_returns(
    servers: Servers, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, recorder = servers.start(stuck_after_s=1.0)
    release = threading.Event()
    real = server.store.write

    def blocking_write(readings: Sequence[Reading]) -> None:
        release.wait(60)
        real(readings)

    monkeypatch.setattr(server.store, "write", blocking_write)
    publish_scans(broker.port, range(1, 4))
    started = time.monotonic()
    wait_for(lambda: requests.get(url(server, "/healthz"), timeout=5).status_code == 503, 10, "503")
    assert time.monotonic() - started >= 1.0, "stuck only after stuck_after_s"
    health = requests.get(url(server, "/healthz"), timeout=5).json()
    assert {k for k, v in health["stages"].items() if v != "ok"} == {"ingest-write"}
    detail = requests.get(url(server, "/readyz"), timeout=5).json()["stages"]["ingest-write"]
    assert detail["state"] == "stuck" and detail["backlog"] >= 1 and detail["since_progress_s"] >= 1.0
    metrics = requests.get(url(server, "/metrics"), timeout=5).text
    assert 'eit_stage_stuck{stage="ingest-write"} 1.0' in metrics
    assert 'eit_stage_backlog{stage="ingest-write"} 3.0' in metrics
    release.set()
    wait_for(lambda: requests.get(url(server, "/healthz"), timeout=5).status_code == 200, 10, "200 again")
    wait_for(lambda: recorder.seqs("so2") == [1, 2, 3], 10, "the scans after the store answered")
    assert restarts(server, "ingest-write") == 0


@pytest.mark.serial  # times things (decision 12: runs alone)
def test_a_stopped_broker_shows_in_readyz_with_its_reason_and_healthz_stays_ok(
    servers: Servers, broker: Mosquitto
) -> None:
    server, _ = servers.start(stuck_after_s=1.0)
    ready = requests.get(url(server, "/readyz"), timeout=5)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ok" and body["broker"] == {"ok": True, "status": "connected"}
    assert body["store"]["ok"] and body["state_db"]["ok"] and body["effects"]["backlog"] == 0
    broker.stop()
    wait_for(lambda: not server.mqtt.connected, 10, "the ingest to see the broker gone")
    ready = requests.get(url(server, "/readyz"), timeout=5)
    assert ready.status_code == 503
    reason = ready.json()["broker"]
    assert reason["ok"] is False
    assert f"broker 127.0.0.1:{broker.port}" in reason["status"]
    assert "disconnected" in reason["status"] or "does not accept connections" in reason["status"]
    time.sleep(1.5)  # scenario time: longer than stuck_after_s with the broker away
    health = requests.get(url(server, "/healthz"), timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    broker.start()
    wait_for(lambda: requests.get(url(server, "/readyz"), timeout=5).status_code == 200, 30, "ready again")


def _address_elsewhere() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_metrics_and_readiness_are_refused_from_elsewhere_without_the_token(
    servers: Servers, tmp_path: Path, broker: Mosquitto
) -> None:
    address = _address_elsewhere()
    if address is None:
        pytest.skip("this machine has no address but loopback (the app-level test covers the rule)")
    server, _ = servers.start(serve_config(tmp_path, broker, http_host="0.0.0.0"))
    there = f"http://{address}:{server.http_port}"
    assert requests.get(f"{there}/healthz", timeout=5).status_code == 200  # public
    refused = requests.get(f"{there}/metrics", timeout=5)
    assert refused.status_code == 401 and "metrics token" in refused.json()["detail"]
    wrong = requests.get(f"{there}/metrics", headers={"Authorization": "Bearer guess"}, timeout=5)
    assert wrong.status_code == 403
    assert requests.get(f"{there}/readyz", timeout=5).status_code == 401
    token = {"Authorization": "Bearer metrics-token-for-tests"}
    assert "eit_stage_alive" in requests.get(f"{there}/metrics", headers=token, timeout=5).text
    assert requests.get(f"{there}/readyz", headers=token, timeout=5).json()["broker"]["ok"] is True
    # From this machine, no token is needed.
    here = f"http://127.0.0.1:{server.http_port}"
    assert requests.get(f"{here}/metrics", timeout=5).status_code == 200


def _app(**settings: Any) -> Any:
    return create_app(
        lambda: (False, {"broker": {"ok": False, "status": "disconnected from broker x:1: gone"}}),
        CollectorRegistry(),
        settings=ApiSettings(**settings),
        liveness=lambda: {"ingest-write": True},
    )


def test_metrics_access_rules_by_client_address_token_and_settings() -> None:
    elsewhere = TestClient(_app(metrics_token="t0ken"), client=("203.0.113.7", 40000))
    assert elsewhere.get("/metrics").status_code == 401
    assert elsewhere.get("/metrics").headers["www-authenticate"] == "Bearer"
    assert elsewhere.get("/metrics", headers={"Authorization": "Bearer t0ke"}).status_code == 403
    assert elsewhere.get("/metrics", headers={"Authorization": "Bearer t0ken"}).status_code == 200
    ready = elsewhere.get("/readyz", headers={"Authorization": "Bearer t0ken"})
    assert ready.status_code == 503 and ready.json()["broker"]["status"].endswith("gone")
    assert elsewhere.get("/healthz").json() == {"status": "ok", "stages": {"ingest-write": "ok"}}
    for host in ("127.0.0.1", "::1"):
        assert TestClient(_app(), client=(host, 40000)).get("/metrics").status_code == 200
    assert TestClient(_app(trust_loopback=False), client=("127.0.0.1", 1)).get("/metrics").status_code == 401
    assert TestClient(_app(metrics_public=True), client=("203.0.113.7", 1)).get("/metrics").status_code == 200
    no_token_configured = TestClient(_app(), client=("203.0.113.7", 1))
    assert no_token_configured.get("/metrics", headers={"Authorization": "Bearer "}).status_code in (401, 403)
