"""`eit demo` as a new user runs it: an exceedance alert within a minute, Ctrl-C stops cleanly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.services import EIT, REPO, free_port

pytestmark = pytest.mark.integration


def test_demo_shows_an_exceedance_alert_within_a_minute_and_stops_on_ctrl_c(
    tmp_path: Path, report: Callable[[str], None]
) -> None:
    data_dir = tmp_path / "demo-data"
    proc = subprocess.Popen(
        [*EIT, "demo", "--data-dir", str(data_dir), "--http-port", str(free_port())],
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
    alert_after_s = None
    try:
        while time.monotonic() - started < 60 and proc.poll() is None:
            if any("ALERT OPENED" in line and "boiler-1 so2 [limit]" in line for line in lines):
                alert_after_s = time.monotonic() - started
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        reader.join(5)
    output = "".join(lines)
    assert alert_after_s is not None, output
    assert code == 0, output
    assert "embedded MQTT on 127.0.0.1:" in output
    assert "kaeng-khoi-biomass/boiler-1  so2=" in output  # readings printed as they happen
    assert "above the standard limit 60 ppm" in output
    assert "Traceback" not in output
    with sqlite3.connect(str(data_dir / "readings.db")) as db:
        stored = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    assert stored > 0 and f"stopped. {stored} readings in" in output
    report(f"demo: exceedance alert after {alert_after_s:.1f} s; {stored} readings kept in {data_dir}")
