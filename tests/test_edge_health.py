"""The agent's scan loops keep going and tell the truth: an outbox that cannot store scans (a full
disk) is reported in the device's status message and counted, the loop tries again at the next
scan and never dies of it; a loop that dies anyway is restarted and the status says so; one that
keeps dying stops the agent with exit code 70. Real Mosquitto, real SQLite."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import edge.run
from edge.agent import Agent
from edge.config import parse_edge_config
from edge.metrics import render
from eit.supervise import RestartPolicy
from testbed.services import Mosquitto, free_port, wait_for

F, D = "kaeng-khoi-biomass", "boiler-1"
DISK_FULL = "database or disk is full"


def agent_config(tmp_path: Path, broker_port: int, **top: Any) -> dict[str, Any]:
    return {
        "factory": F,
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "scan_interval_s": 0.1,
        "devices": [
            {
                "id": D,
                "driver": "sim",
                "sim": {"seed": 1, "channels": {"so2": {"mean": 40}, "o2": {"mean": 9}}},
            }
        ],
    } | top


class StatusTap:
    """Every status message the broker delivers for the boiler, decoded."""

    def __init__(self, port: int) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tap-{uuid.uuid4().hex[:6]}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"eit/{F}/{D}/status", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.payload.startswith(b"{"):
            with self.lock:
                self.messages.append(json.loads(message.payload))

    def last(self) -> dict[str, Any]:
        with self.lock:
            return self.messages[-1] if self.messages else {}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def tap(broker: Mosquitto) -> Iterator[StatusTap]:
    t = StatusTap(broker.port)
    yield t
    t.close()


@pytest.mark.integration
@pytest.mark.serial  # times things (decision 12: runs alone)
def test_a_full_outbox_is_reported_and_counted_and_scanning_goes_on(
    tmp_path: Path, broker: Mosquitto, tap: StatusTap, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = Agent(parse_edge_config(agent_config(tmp_path, broker.port), "edge.yaml", tmp_path))
    scanner = agent.scanners[D]
    real_append = agent.outbox.append
    disk_full = threading.Event()
    attempts_while_full = 0

    def append(*args: Any, **kwargs: Any) -> int:
        nonlocal attempts_while_full
        if disk_full.is_set():
            attempts_while_full += 1
            raise sqlite3.OperationalError(DISK_FULL)
        return real_append(*args, **kwargs)

    monkeypatch.setattr(agent.outbox, "append", append)
    agent.start()
    try:
        wait_for(lambda: tap.last().get("state") == "online", 10, "the agent's online status")
        wait_for(lambda: scanner.counters.scans >= 3, 10, "the first scans")
        disk_full.set()
        full_at = time.monotonic()
        wait_for(lambda: "outbox_error" in tap.last(), 10, "the status to report the outbox")
        full_since = scanner.counters.scans
        status = tap.last()
        assert status["state"] == "online"
        assert DISK_FULL in status["outbox_error"] and str(agent.outbox.path) in status["outbox_error"]
        assert status["outbox_write_errors"] >= 1
        wait_for(lambda: scanner.counters.outbox_write_errors >= 10, 10, "ten scans refused")
        # The loop kept its interval (0.1 s: no tight retry loop), never died nor restarted.
        elapsed = time.monotonic() - full_at
        errors, attempts = scanner.counters.outbox_write_errors, attempts_while_full
        assert errors <= attempts <= errors + 1 and attempts <= elapsed / 0.1 + 2
        assert scanner.counters.scans == full_since
        assert scanner.stage.running and scanner.stage.restarts == 0
        text = render(agent)
        assert f'eit_edge_outbox_ok{{device="{D}"}} 0' in text
        lost = scanner.counters.outbox_write_errors
        disk_full.clear()  # space again
        wait_for(lambda: scanner.counters.scans >= full_since + 3, 10, "scans stored again")
        wait_for(lambda: "outbox_error" not in tap.last(), 10, "the status to clear the outbox error")
        assert tap.last()["outbox_write_errors"] >= lost  # the count stays, for the record
        assert agent.wait_drained(10), "the scans after the outage reach the broker"
        text = render(agent)
        assert (
            f'eit_edge_outbox_write_errors_total{{device="{D}"}} {scanner.counters.outbox_write_errors}'
            in text
        )
        assert f'eit_edge_outbox_ok{{device="{D}"}} 1' in text
    finally:
        agent.stop(drain_s=0)


def test_a_really_full_outbox_file_refuses_scans_and_takes_them_again_without_a_seq_gap(
    tmp_path: Path,
) -> None:
    """SQLite's own SQLITE_FULL (max_page_count), through the scan loop's code."""
    agent = Agent(parse_edge_config(agent_config(tmp_path, 1), "edge.yaml", tmp_path))
    scanner = agent.scanners[D]
    scanner.device.driver.connect()
    outbox = agent.outbox
    try:
        assert scanner.scan_once()
        with outbox._lock:  # the outbox's own connection: the limit is per connection
            pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
            outbox._db.execute(f"PRAGMA max_page_count={pages}")
        for _ in range(500):
            assert scanner.scan_once(), "the loop goes on when the outbox is full"
            if scanner.counters.outbox_write_errors:
                break
        assert scanner.counters.outbox_write_errors == 1
        assert DISK_FULL in scanner.counters.outbox_error  # SQLite's error, not a failed rollback
        status = json.loads(agent.publishers[D].status_payload())
        assert DISK_FULL in status["outbox_error"] and status["outbox_write_errors"] == 1
        stored = scanner.counters.scans
        with outbox._lock:
            outbox._db.execute("PRAGMA max_page_count=1073741823")
        assert scanner.scan_once()
        assert scanner.counters.scans == stored + 1 and scanner.counters.outbox_error == ""
        status = json.loads(agent.publishers[D].status_payload())
        assert "outbox_error" not in status and status["outbox_write_errors"] == 1
        seqs = [json.loads(p.body)["seq"] for p in outbox.pending(D, limit=10_000)]
        assert seqs == list(range(1, stored + 2)), "a refused scan takes no seq"
    finally:
        scanner.device.driver.close()
        outbox.close()


@pytest.mark.integration
def test_a_scan_loop_that_dies_is_restarted_and_the_status_says_so(
    tmp_path: Path, broker: Mosquitto, tap: StatusTap, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    config = agent_config(tmp_path, broker.port, metrics={"host": "127.0.0.1", "port": port})
    agent = Agent(parse_edge_config(config, "edge.yaml", tmp_path))
    scanner = agent.scanners[D]
    driver = scanner.device.driver
    real_read = driver.read
    broke = threading.Event()

    def read_breaks_once() -> Any:
        if not broke.is_set():
            broke.set()
            raise RuntimeError("injected defect in the driver")
        return real_read()

    agent.start()
    try:
        wait_for(lambda: scanner.counters.scans >= 2, 10, "the first scans")
        monkeypatch.setattr(driver, "read", read_breaks_once)
        wait_for(lambda: scanner.stage.restarts == 1, 10, "the scan loop to be restarted")
        taken = scanner.counters.scans
        wait_for(lambda: scanner.counters.scans >= taken + 3, 10, "scans after the restart")
        wait_for(lambda: tap.last().get("scan_restarts") == 1, 10, "the status to tell of the restart")
        assert tap.last()["scan_error"] == "RuntimeError: injected defect in the driver"
        assert tap.last()["state"] == "online"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            health = json.loads(response.read())
        assert health["status"] == "ok" and health["stages"][f"scan-{D}"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert f'eit_worker_restarts_total{{worker="scan-{D}"}} 1' in text
        assert not agent.failed.is_set()
    finally:
        agent.stop(drain_s=0)


@pytest.mark.integration
def test_a_scan_loop_that_keeps_dying_turns_healthz_to_503_and_stops_the_agent_with_code_70(
    tmp_path: Path, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    config = parse_edge_config(
        agent_config(tmp_path, broker.port, metrics={"host": "127.0.0.1", "port": port}),
        "edge.yaml",
        tmp_path,
    )
    quick = RestartPolicy(max_restarts=2, window_s=60.0, backoff_initial_s=0.05, backoff_max_s=0.1)

    def broken_agent(config: Any) -> Agent:
        agent = Agent(config, restart_policy=quick)
        monkeypatch.setattr(agent.scanners[D].device.driver, "read", _broken_read)
        return agent

    agent = broken_agent(config)
    agent.start()
    try:
        assert agent.failed.wait(20), "the agent gives up on the scan loop"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert refused.value.code == 503
        health = json.loads(refused.value.read())
        assert health["status"] == "not ok" and health["stages"][f"scan-{D}"] == "failed"
        assert health["stages"][f"publish-{D}"] == "ok"
        assert agent.scanners[D].stage.restarts == 2
        assert agent.failure is not None and f"scan-{D} failed too often" in agent.failure
    finally:
        agent.stop(drain_s=0)

    # `eit edge run` returns 70 (run_agent in this process, without its signal handlers).
    monkeypatch.setattr(edge.run, "Agent", broken_agent)
    monkeypatch.setattr(edge.run, "stop_on_signals", threading.Event)
    config = parse_edge_config(agent_config(tmp_path, broker.port), "edge.yaml", tmp_path)
    assert edge.run.run_agent(config) == 70


def _broken_read() -> Any:
    raise RuntimeError("injected defect in the driver")
