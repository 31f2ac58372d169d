"""The agent run with its clock at the year 2000 (libfaketime), as a Raspberry Pi without a clock
battery starts after a power cut: its scans reach the store flagged D, and its status message
and the platform's metrics say the clock is wrong."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from eit.confread import load_yaml
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

F = "kaeng-khoi-biomass"
YEAR_2000_NS = 946684800 * 1_000_000_000
YEAR_2001_NS = 978307200 * 1_000_000_000


def test_agent_with_its_clock_in_2000_flags_its_scans_and_says_so(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    faketime = shutil.which("faketime")
    assert faketime, "faketime is not installed: run `make test`, which installs it"
    http_port = free_port()
    serve_cfg = write_serve_config(
        tmp_path / "serve", mosquitto.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}", http_port=http_port
    )
    edge_cfg = write_edge_config(tmp_path / "edge", mosquitto.port, scan_interval_s=0.5)
    data = load_yaml(edge_cfg)
    data["mqtt"]["client_id"] = f"agent-2000-{uuid.uuid4().hex[:6]}"
    edge_cfg.write_text(yaml.safe_dump(data))
    serve = EitProcess(["serve", "--config", str(serve_cfg)], tmp_path / "serve.log").start()
    log = (tmp_path / "edge.log").open("wb")
    agent = subprocess.Popen(
        [faketime, "2000-01-01 00:00:00", *EIT, "edge", "run", "--config", str(edge_cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        # Only the wall clock is wrong after a power cut; timed waits run on the monotonic clock.
        env={**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"},
        # faketime runs the agent as its child: signal the whole group, or the agent outlives it.
        start_new_session=True,
    )
    store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
    try:
        wait_for(lambda: "connected to broker" in serve.output(), 30, "eit serve to connect")
        wait_for(
            lambda: store.count(factory=F, device="boiler-1") >= 12, 30, "the agent's scans in the store"
        )
        readings = store.readings(F, "boiler-1", "so2", 0, YEAR_2001_NS)
        assert readings, "no reading stamped in the year 2000"
        assert all(YEAR_2000_NS <= r.ts_ns < YEAR_2001_NS for r in readings)
        assert {r.flag for r in readings} == {"D"}  # never counted towards an average or a limit

        def clock_ok_metric() -> float | None:
            text = requests.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5).text
            for line in text.splitlines():
                if line.startswith("eit_edge_clock_ok{") and 'device="boiler-1"' in line:
                    return float(line.split()[-1])
            return None

        wait_for(lambda: clock_ok_metric() == 0.0, 20, "the platform's eit_edge_clock_ok to say 0")
        retained = subprocess.run(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(mosquitto.port),
                "-t",
                f"eit/{F}/boiler-1/status",
                "-C",
                "1",
                "-W",
                "10",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        status = json.loads(retained.stdout)
        assert status["clock"] == "wrong"
        assert status["clock_problem"].startswith("the clock reads 2000-01-01T00:00")
        assert "before 2020" in status["clock_problem"]
    finally:
        store.close()
        os.killpg(agent.pid, signal.SIGTERM)
        try:
            agent.wait(20)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.pid, signal.SIGKILL)
        log.close()
        assert serve.terminate() == 0
    output = (tmp_path / "edge.log").read_text()
    assert "clock: wrong: the clock reads 2000-01-01" in output
