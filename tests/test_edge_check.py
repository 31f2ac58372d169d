"""`eit edge check`: a report from which an operator can fix a wrong register map, a wrong
address, a silent meter or a wrong broker setting, run as the operator runs it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.modbus_server import ModbusServer
from testbed.services import EIT, REPO, Mosquitto, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def meter() -> Iterator[ModbusServer]:
    server = ModbusServer([1, 2], tcp_port=free_port()).start()
    m = server.meters[1]
    m.set("input", 0, 41.25)  # float32, high word first
    m.set("input", 2, 120.5, word_order="little")  # low word first
    m.set("holding", 10, 9.5 * 100, "uint16")
    m.holding[20] = 0b10  # calibration bit
    yield server
    server.stop()


def run_check(
    tmp_path: Path,
    broker_port: int,
    channels: dict[str, Any],
    mqtt: dict[str, Any] | None = None,
    **modbus: Any,
) -> tuple[int, str]:
    config = {
        "factory": "kaeng-khoi-biomass",
        "mqtt": mqtt or {"host": "127.0.0.1", "port": broker_port},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "devices": [
            {
                "id": "stack-1",
                "driver": "modbus",
                "modbus": {"host": "127.0.0.1", "unit": 1, "channels": channels} | modbus,
            }
        ],
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run(
        [*EIT, "edge", "check", "--config", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    return out.returncode, out.stdout + out.stderr


def test_check_passes_and_shows_each_value_with_its_registers(
    tmp_path: Path, meter: ModbusServer, mosquitto: Mosquitto
) -> None:
    channels = {
        "so2": {"address": 0, "function": "input", "type": "float32", "unit": "ppm"},
        "nox": {"address": 2, "function": "input", "type": "float32", "word_order": "little", "unit": "ppm"},
        "o2": {"address": 10, "type": "uint16", "scale": 0.01, "unit": "%"},
    }
    code, out = run_check(
        tmp_path,
        mosquitto.port,
        channels,
        port=meter.tcp_port,
        status=[{"address": 20, "bits": {1: "C"}, "channels": ["so2"]}],
    )
    assert code == 0, out
    assert (
        "so2           41.25 ppm  (input register 0-1, float32 word_order=big byte_order=big; raw 4225 0000)"
        in out
    )
    assert "nox           120.5 ppm" in out
    assert "o2            9.5 %" in out
    assert "status 20     holding register 20 = 2 (0x0002, bits 0000000000000010): flag C on so2" in out
    assert (
        f"ok    broker           logged in to 127.0.0.1:{mosquitto.port} without TLS without a login" in out
    )
    assert out.rstrip().endswith("everything works") or "everything works;" in out


def test_wrong_word_order_shows_the_reading_that_fits(
    tmp_path: Path, meter: ModbusServer, mosquitto: Mosquitto
) -> None:
    # The meter keeps NOx low word first; the map says high word first, and NOx is 0..1000 ppm.
    channels = {"nox": {"address": 2, "function": "input", "type": "float32", "min": 0, "max": 1000}}
    code, out = run_check(tmp_path, mosquitto.port, channels, port=meter.tcp_port)
    assert code == 1, out
    assert "FAIL  device stack-1" in out
    assert "nox           FAIL  " in out and "raw 0000 42f1" in out
    assert "type: float32, word_order: little, byte_order: big" in out
    fitting = [line for line in out.splitlines() if "-> 120.5" in line]
    assert fitting and "word_order: little, byte_order: big" in fitting[0], out
    assert "\n1 problem(s): device stack-1\n" in out


def test_address_off_by_one_suggests_the_neighbour_that_answers(
    tmp_path: Path, meter: ModbusServer, mosquitto: Mosquitto
) -> None:
    # Registers 0..199 exist; the manual's "register 200" counted from 1 is address 199.
    meter.meters[1].holding[199] = 1234
    channels = {"flow": {"address": 200, "type": "uint16", "unit": "m3/h"}}
    code, out = run_check(tmp_path, mosquitto.port, channels, port=meter.tcp_port)
    assert code == 1
    assert "illegal data address: registers 200-200 do not exist on this meter" in out
    assert (
        "address 199 answers (04d2 -> 1234 m3/h): if the manual counts registers from 1, use address: 199"
        in out
    )


def test_silent_meter_and_missing_broker_are_named_with_what_to_check(
    tmp_path: Path, meter: ModbusServer
) -> None:
    meter.meters[2].mute = True
    channels = {"so2": {"address": 0, "function": "input", "type": "float32"}}
    dead_port = free_port()
    code, out = run_check(tmp_path, dead_port, channels, port=meter.tcp_port, unit=2, timeout_s=0.2)
    assert code == 1
    assert f"no answer from unit 2 at 127.0.0.1:{meter.tcp_port} within 0.2 s x 2 tries" in out
    assert "the host answers: the unit id is the likely fault" in out
    assert f"nothing listens at 127.0.0.1:{dead_port}: check mqtt.host and mqtt.port" in out
    assert "\n2 problem(s): device stack-1, broker\n" in out


def test_check_logs_in_to_every_broker_of_the_list(
    tmp_path: Path, meter: ModbusServer, mosquitto: Mosquitto
) -> None:
    channels = {"so2": {"address": 0, "function": "input", "type": "float32", "unit": "ppm"}}
    dead, live = f"127.0.0.1:{free_port()}", f"127.0.0.1:{mosquitto.port}"
    code, out = run_check(tmp_path, 0, channels, mqtt={"hosts": [dead, live]}, port=meter.tcp_port)
    assert code == 1, out
    assert f"broker at {dead}" in out and f"nothing listens at {dead}: check mqtt.hosts\n" in out
    assert f"ok    broker at {live}" in out and f"logged in to {live} without TLS" in out
    assert f"\n1 problem(s): broker at {dead}\n" in out


def test_config_error_names_the_key(tmp_path: Path) -> None:
    channels = {"so2": {"address": 0, "type": "float"}}
    code, out = run_check(tmp_path, 1883, channels, port=502)
    assert code == 2
    written = (tmp_path / "edge.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(written, 1) if text.strip() == "type: float")
    assert (
        f"{tmp_path / 'edge.yaml'}:{line}: devices[stack-1].modbus.channels.so2.type: 'float' is not one of "
        "int16, uint16, int32, uint32, float32"
    ) in out
