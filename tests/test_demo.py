"""`eit demo` as a new user runs it: an exceedance alert within a minute, Ctrl-C stops cleanly; the
web pages and the API with accounts a new user can try, and a history for the charts on its first
run.

Both tests are in this one file so that they run one after the other (pytest-xdist gives a file
to one worker): each demo takes MQTT port 1883 when it is free.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from server.passwords import password_problem
from testbed.services import EIT, REPO, free_port, wait_for

pytestmark = pytest.mark.integration


def test_demo_shows_an_exceedance_alert_within_a_minute_and_stops_on_ctrl_c(
    tmp_path: Path, report: Callable[[str], None]
) -> None:
    data_dir = tmp_path / "demo-data"
    proc = subprocess.Popen(
        [*EIT, "demo", "--data-dir", str(data_dir), "--http-port", str(free_port()), "--summary-s", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    started = time.monotonic()

    def alerted() -> bool:
        return any("ALERT OPENED" in line and "boiler-1 so2 [limit]" in line for line in lines)

    def summaries() -> list[str]:
        return [line for line in lines if re.match(r"\d\d:\d\d:\d\d  \d+ readings from \d device", line)]

    try:
        with contextlib.suppress(TimeoutError):  # the assertions below show the output
            wait_for(lambda: alerted() or proc.poll() is not None, 60, "the exceedance alert", 0.05)
        alert_after_s = time.monotonic() - started if alerted() else None
        # Two summary lines after the alert: it stays on the screen among them.
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: len(summaries()) >= 3 or proc.poll() is not None, 30, "summary lines", 0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        reader.join(5)
    output = "".join(lines)
    assert alert_after_s is not None, output
    assert code == 0, output
    assert "embedded MQTT on 127.0.0.1:" in output
    assert "Traceback" not in output
    # A summary line per interval, not a line per reading.
    assert "kaeng-khoi-biomass/boiler-1  so2=" not in output
    assert len(summaries()) >= 3, output
    assert "1 alert(s) open: #1 kaeng-khoi-biomass/boiler-1 so2 latest" in summaries()[-1]
    others = [line for line in lines if line not in summaries()]
    assert len(others) < 50, output  # the banner, the devices coming online, the alert, the summary
    # The alert is set apart: a rule above and below, the message and where to see it.
    at = next(
        i for i, line in enumerate(lines) if line.startswith("ALERT OPENED #1 kaeng-khoi-biomass/boiler-1")
    )
    assert lines[at - 1].startswith("=====") and "above the standard limit 60 ppm" in lines[at + 1]
    assert f"eit alert show 1 --data-dir {data_dir}" in lines[at + 2] and lines[at + 3].startswith("=====")
    # The machine's clock is one: its state is logged once for the three agents, never as an error.
    assert len(re.findall(r"clock: (unsynchronised|wrong)", output)) <= 1, output
    assert not re.search(r"ERROR +eit\.edge\.agent: clock: unsynchronised", output)
    with sqlite3.connect(str(data_dir / "readings.db")) as db:
        stored = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        energy = [
            v for (v,) in db.execute("SELECT value FROM readings WHERE channel='energy' ORDER BY ts_ns")
        ]
        # The agents sign every scan and the server verifies it: every live reading is verified;
        # only the history, written straight into the store before, has no verification.
        signed = {
            state: (n, first, last)
            for state, n, first, last in db.execute(
                "SELECT verified, count(*), min(ts_ns), max(ts_ns) FROM readings GROUP BY 1"
            )
        }
    assert set(signed) == {"", "verified"} and signed["verified"][0] > 50, signed
    assert signed[""][2] < signed["verified"][1], "a live reading without its verification"
    # The summary at stop.
    stop = output[output.index("EIT Monitor demo stopped after") :]
    assert f"{stored:,} kept in {data_dir / 'readings.db'}" in stop, output
    assert "#1 kaeng-khoi-biomass/boiler-1 so2 [limit] is open" in stop
    assert f"eit alerts --data-dir {data_dir}" in stop
    # The simulated energy meter is a register: history and live, it never goes down.
    assert len(energy) > 100 and all(b >= a for a, b in itertools.pairwise(energy))
    assert energy[-1] > energy[0]
    # The demo's alerts, listed from its data folder with no serve.yaml.
    listed = subprocess.run(
        [*EIT, "alerts", "--data-dir", str(data_dir)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert listed.returncode == 0 and "kaeng-khoi-biomass/boiler-1  so2" in listed.stdout, listed.stderr
    report(
        f"demo: exceedance alert after {alert_after_s:.1f} s; {len(lines)} lines of output;"
        f" {stored} readings kept in {data_dir}"
    )


def test_demo_serves_the_console_with_its_accounts_and_a_day_of_history(
    tmp_path: Path, report: Callable[[str], None]
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*EIT, "demo", "--data-dir", str(tmp_path / "demo-data"), "--http-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    base = f"http://127.0.0.1:{port}"
    alerts: list[dict[str, object]] = []
    officers: list[dict[str, object]] = []
    try:
        with contextlib.suppress(TimeoutError):  # the assertions below show the output
            wait_for(
                lambda: (
                    proc.poll() is not None
                    or any("ALERT OPENED" in line and "boiler-1 so2 [limit]" in line for line in lines)
                ),
                60,
                "the exceedance alert",
            )
        banner = "".join(lines)
        accounts = dict(re.findall(r"\b(officer|supervisor|admin|operator)/([\w-]{12,})", banner))
        assert set(accounts) == {"officer", "supervisor", "admin", "operator"}, banner
        # Random and strong, as every account's (server/passwords.py): none of the fixed weak ones.
        for name, password in accounts.items():
            assert password_problem(password, role=name, user=name) is None, (name, password)
        assert len(set(accounts.values())) == 4
        history = re.search(r"history  (\d+) readings of the last 24 h", banner)
        assert history and int(history.group(1)) > 20000, banner
        token = requests.post(
            f"{base}/api/v1/token", data={"username": "officer", "password": accounts["officer"]}, timeout=10
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        alerts = requests.get(f"{base}/api/v1/alerts", headers=headers, timeout=10).json()
        officers = requests.get(
            f"{base}/api/v1/officers", params={"factory": "kaeng-khoi-biomass"}, headers=headers, timeout=10
        ).json()
        hours = requests.get(
            f"{base}/api/v1/factories/kaeng-khoi-biomass/devices/boiler-1/channels/so2/hourly", timeout=10
        ).json()["hours"]
        page = requests.get(f"{base}/console?lang=en", timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        reader.join(5)
    output = "".join(lines)
    assert code == 0 and "Traceback" not in output, output
    assert any(a["rule"] == "limit" and a["parameter"] == "so2" for a in alerts), alerts
    # The demo's officers log in as the registry's: the duty officer of the biomass plant first.
    assert [(o["name"], o["officer"], o["on_duty"]) for o in officers] == [
        ("officer", "duty-rayong", True),
        ("supervisor", "supervisor-rayong", True),
        ("admin", None, False),
    ]
    # The history is of normal operation: the exceedance is the live part of the demo.
    valid = [h for h in hours if h["valid"]]
    assert len(valid) >= 22 and not any(h["exceeded"] for h in valid)
    assert page.status_code == 200 and "Officer console" in page.text
    report(
        f"demo: {history.group(1)} history readings, {len(valid)} valid history hours, {len(alerts)} alerts"
    )
