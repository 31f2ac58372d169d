"""`eit edge check` at its edges: a broken TLS file or a missing credential is one failed item
after the meters were read (never a traceback), a meter that resets the connection is not
blamed on the unit id, and the check leaves the disk as it found it."""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.outbox import Outbox
from testbed.services import EIT, REPO, free_port

SIM_DEVICE = {
    "id": "stack-1",
    "driver": "sim",
    "sim": {"seed": 1, "channels": {"so2": {"mean": 40, "sd": 1, "max": 500}}},
}


def run_check(tmp_path: Path, config: dict[str, Any]) -> tuple[int, str]:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run(
        [*EIT, "edge", "check", "--config", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    return out.returncode, out.stdout + out.stderr


def test_a_bad_ca_file_fails_the_broker_item_after_the_meters_were_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("this is not a certificate\n")
    config = {
        "factory": "kaeng-khoi-biomass",
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "tls": {"ca_file": str(ca)}},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "devices": [SIM_DEVICE],
    }
    code, out = run_check(tmp_path, config)
    assert "Traceback" not in out, out
    assert code == 1, out
    assert "ok    device stack-1   (sim) so2=" in out  # the meter's result is kept
    assert "FAIL  broker           not tried: the mqtt section cannot be used" in out
    assert f"mqtt.tls.ca_file: {ca} holds no CA certificate in PEM form" in out
    assert "\n1 problem(s): broker\n" in out


def test_a_missing_password_file_does_not_stop_the_meters_being_tested(tmp_path: Path) -> None:
    config = {
        "factory": "kaeng-khoi-biomass",
        "mqtt": {
            "host": "127.0.0.1",
            "port": free_port(),
            "username": "{client_id}",
            "password_file": str(tmp_path / "missing-password"),
        },
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "devices": [SIM_DEVICE, SIM_DEVICE | {"id": "stack-2"}],
    }
    code, out = run_check(tmp_path, config)
    assert code == 1, out
    assert "ok    device stack-1   (sim) so2=" in out and "ok    device stack-2   (sim) so2=" in out
    assert out.index("device stack-2") < out.index("FAIL  broker")
    missing = tmp_path / "missing-password"
    assert f"mqtt.password_file: cannot read {missing}: No such file or directory" in out
    # A problem outside the mqtt section is still a configuration error, with the broker's too.
    config["devices"] = [SIM_DEVICE | {"driver": "nonesuch"}]
    code, out = run_check(tmp_path, config)
    assert code == 2 and "devices[stack-1].driver" in out and "mqtt.password_file" in out, out


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_the_check_changes_nothing_on_disk(tmp_path: Path) -> None:
    box_dir = tmp_path / "agent" / "box"
    config = {
        "factory": "kaeng-khoi-biomass",
        "mqtt": {"host": "127.0.0.1", "port": free_port()},
        "outbox": {"path": str(box_dir / "outbox.db")},
        "devices": [SIM_DEVICE],
    }
    code, out = run_check(tmp_path, config)
    assert code == 1, out  # nothing listens at the broker's port
    assert f"ok    outbox           {box_dir / 'outbox.db'}: not made yet; the agent creates it" in out
    assert not (tmp_path / "agent").exists(), "the check made the outbox's folder"

    # An outbox the agent left, with scans waiting: read, not touched (no -wal or -shm made).
    box = Outbox(box_dir / "outbox.db")
    for seq in range(3):
        box.append("stack-1", 1_700_000_000_000_000_000 + seq, {"so2": 40.0 + seq}, {})
    box.close()
    before = _files(box_dir)
    code, out = run_check(tmp_path, config)
    assert f"{box_dir / 'outbox.db'}: 3 scan(s) waiting" in out, out
    assert _files(box_dir) == before


@pytest.fixture
def resetting_meter() -> Iterator[int]:
    """A TCP port whose other end resets every connection once a request arrives, as a meter
    that takes one client at a time does when another program holds it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.recv(256)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(5)
    listener.close()


def test_a_reset_connection_is_told_from_a_wrong_unit_id(tmp_path: Path, resetting_meter: int) -> None:
    config = {
        "factory": "kaeng-khoi-biomass",
        "mqtt": {"host": "127.0.0.1", "port": free_port()},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "devices": [
            {
                "id": "stack-1",
                "driver": "modbus",
                "modbus": {
                    "host": "127.0.0.1",
                    "port": resetting_meter,
                    "unit": 1,
                    "timeout_s": 0.2,
                    "channels": {"so2": {"address": 0, "function": "input", "type": "float32"}},
                },
            }
        ],
    }
    code, out = run_check(tmp_path, config)
    assert code == 1 and "Traceback" not in out, out
    assert "the connection was reset or closed by the other end" in out
    assert f"127.0.0.1:{resetting_meter} closed the connection instead of answering: not the unit id" in out
    assert "the unit id is the likely fault" not in out
