"""Modbus drivers against a real Modbus server: pymodbus's server over TCP, and over RTU framing on
a serial link made of two pseudo-terminals, with meters that stop answering mid-run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.agent import Agent
from edge.config import EdgeConfig, parse_edge_config
from edge.drivers.base import DriverError
from edge.drivers.modbus import ModbusDriver
from eit.errors import ConfigError
from testbed.modbus_server import ModbusServer, PtyLink
from testbed.services import free_port, wait_for

CHANNELS: dict[str, Any] = {
    "so2": {"address": 0, "function": "input", "type": "float32", "unit": "ppm"},
    "nox": {"address": 2, "function": "input", "type": "float32", "word_order": "little", "unit": "ppm"},
    "temperature": {"address": 10, "type": "int16", "scale": 0.1, "unit": "degC"},
    "flow": {"address": 11, "type": "uint32", "word_order": "little", "scale": 0.01, "unit": "m3/h"},
    "o2": {"address": 13, "type": "uint16", "byte_order": "little", "scale": 0.01, "unit": "%"},
    "dust": {"address": 14, "type": "int32", "offset": -1000, "unit": "mg/m3"},
}
STATUS = [
    {"address": 20, "function": "holding", "bits": {0: "M", 1: "C", 2: "D"}, "channels": ["so2", "nox"]},
    {"address": 21, "function": "holding", "values": {3: "F"}, "channels": ["dust"]},
]


def fill_meter(server: ModbusServer, unit: int, base: float = 0.0) -> None:
    m = server.meters[unit]
    m.set("input", 0, 41.25 + base)
    m.set("input", 2, 120.5 + base, word_order="little")
    m.set("holding", 10, -12.3 * 10, "int16")
    m.set("holding", 11, 5123456, "uint32", word_order="little")
    m.set("holding", 13, 950, "uint16", byte_order="little")
    m.set("holding", 14, 1234, "int32")


def agent_config(tmp_path: Path, devices: list[dict[str, Any]], interval: float = 1.0) -> EdgeConfig:
    data = {
        "factory": "kaeng-khoi-biomass",
        "mqtt": {"host": "127.0.0.1", "port": free_port()},  # no broker: scans stay in the outbox
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "scan_interval_s": interval,
        "devices": devices,
    }
    return parse_edge_config(data, "edge.yaml", tmp_path)


def tcp_device(did: str, port: int, unit: int, **extra: Any) -> dict[str, Any]:
    modbus = {"transport": "tcp", "host": "127.0.0.1", "port": port, "unit": unit, "channels": CHANNELS}
    return {"id": did, "driver": "modbus", "modbus": modbus | extra}


def rtu_device(did: str, port: str, unit: int, **extra: Any) -> dict[str, Any]:
    modbus = {"transport": "rtu", "serial": {"port": port, "baudrate": 19200}, "unit": unit}
    return {"id": did, "driver": "modbus", "modbus": modbus | {"channels": CHANNELS} | extra}


@pytest.fixture
def tcp_server() -> Iterator[ModbusServer]:
    server = ModbusServer([1, 2, 3], tcp_port=free_port()).start()
    for unit in (1, 2, 3):
        fill_meter(server, unit, base=unit)
    yield server
    server.stop()


@pytest.fixture
def rtu_line() -> Iterator[tuple[ModbusServer, PtyLink]]:
    link = PtyLink()
    server = ModbusServer([1, 2, 3], serial_port=link.port_a).start()
    for unit in (1, 2, 3):
        fill_meter(server, unit, base=unit)
    yield server, link
    server.stop()
    link.close()


EXPECTED = {
    "temperature": -12.3,
    "flow": 51234.56,
    "o2": 9.5,
    "dust": 234.0,
}


def check_values(values: dict[str, float], base: float) -> None:
    assert values["so2"] == pytest.approx(41.25 + base)
    assert values["nox"] == pytest.approx(120.5 + base)
    for key, expected in EXPECTED.items():
        assert values[key] == pytest.approx(expected), key


def test_tcp_meter_decodes_every_type_word_and_byte_order_scale_and_offset(
    tmp_path: Path, tcp_server: ModbusServer
) -> None:
    config = agent_config(tmp_path, [tcp_device("stack-1", tcp_server.tcp_port or 0, 2)])
    driver = config.devices[0].driver
    assert isinstance(driver, ModbusDriver)
    driver.connect()
    try:
        scan = driver.read()
    finally:
        driver.close()
    check_values(scan.values, 2)
    assert scan.flags == {}
    # Two reads: input registers 0-3, holding registers 10-15 (contiguous ranges merged).
    assert [(b.function, b.address, b.count) for b in driver.blocks] == [("holding", 10, 6), ("input", 0, 4)]


def test_status_registers_set_hj212_flags_on_their_channels(tmp_path: Path, tcp_server: ModbusServer) -> None:
    device = tcp_device("stack-1", tcp_server.tcp_port or 0, 1, status=STATUS)
    driver = agent_config(tmp_path, [device]).devices[0].driver
    meter = tcp_server.meters[1]
    driver.connect()
    try:
        assert driver.read().flags == {}
        meter.holding[20] = 0b011  # maintenance and calibration bits: the more severe, M, wins
        assert driver.read().flags == {"so2": "M", "nox": "M"}
        meter.holding[20] = 0b110
        meter.holding[21] = 3  # state code 3: stopped
        assert driver.read().flags == {"so2": "D", "nox": "D", "dust": "F"}
    finally:
        driver.close()


def test_rtu_meters_on_one_serial_line_over_a_pty_pair(
    tmp_path: Path, rtu_line: tuple[ModbusServer, PtyLink]
) -> None:
    server, link = rtu_line
    devices = [rtu_device(f"meter-{u}", link.port_b, u) for u in (1, 2, 3)]
    config = agent_config(tmp_path, devices)
    drivers = [d.driver for d in config.devices]
    assert all(isinstance(d, ModbusDriver) for d in drivers)
    assert len({id(d.link) for d in drivers if isinstance(d, ModbusDriver)}) == 1  # one shared line
    for d in drivers:
        d.connect()
    try:
        for unit, d in zip((1, 2, 3), drivers, strict=True):
            check_values(d.read().values, unit)
    finally:
        for d in drivers:
            d.close()
    assert link.bytes_copied > 0
    assert [server.meters[u].requests for u in (1, 2, 3)] == [2, 2, 2]


def test_illegal_address_is_reported_with_the_registers_and_what_to_check(
    tmp_path: Path, tcp_server: ModbusServer
) -> None:
    channels = {"so2": CHANNELS["so2"], "ghost": {"address": 199, "function": "input", "type": "float32"}}
    driver = agent_config(tmp_path, [tcp_device("d", tcp_server.tcp_port or 0, 1, channels=channels)])
    drv = driver.devices[0].driver
    drv.connect()
    try:
        scan = drv.read()  # the good channel still arrives
        assert set(scan.values) == {"so2"}
        only_ghost = (
            agent_config(
                tmp_path,
                [tcp_device("d", tcp_server.tcp_port or 0, 1, channels={"ghost": channels["ghost"]})],
            )
            .devices[0]
            .driver
        )
        with pytest.raises(DriverError) as err:
            only_ghost.read()
        assert "input registers 199-200" in str(err.value)
        assert "illegal data address" in str(err.value)
        assert "40001 or 30001 is address 0" in str(err.value)
        only_ghost.close()
    finally:
        drv.close()


def test_silent_meter_error_names_unit_timeout_and_what_to_check(
    tmp_path: Path, tcp_server: ModbusServer
) -> None:
    tcp_server.meters[3].mute = True
    device = tcp_device("d", tcp_server.tcp_port or 0, 3, timeout_s=0.2, retries=1)
    drv = agent_config(tmp_path, [device]).devices[0].driver
    try:
        with pytest.raises(DriverError) as err:
            drv.read()
    finally:
        drv.close()
    message = str(err.value)
    assert f"no answer from unit 3 at 127.0.0.1:{tcp_server.tcp_port} within 0.2 s x 2 tries" in message
    assert "check the unit id" in message


def run_agent_with_a_meter_going_silent(
    config: EdgeConfig, server: ModbusServer, silent_unit: int, until: Callable[[Agent, float], bool]
) -> tuple[Agent, float]:
    """Scan until every meter has been read twice, silence one, and scan on until ``until(agent,
    the time it went silent)``."""
    agent = Agent(config)
    for scanner in agent.scanners.values():
        scanner.start()  # scanning only: the publishers stay unstarted, scans wait in the outbox
    try:
        wait_for(
            lambda: all(len(s.counters.recent) >= 2 for s in agent.scanners.values()), 20, "two reads of each"
        )
        server.meters[silent_unit].mute = True
        muted_at = time.time()
        wait_for(lambda: until(agent, muted_at), 30, "the scans the test needs after the silence")
    finally:
        for scanner in agent.scanners.values():
            scanner.stop()
    return agent, muted_at


def healthy_reads_after(agent: Agent, device: str, muted_at: float) -> list[tuple[float, float, float]]:
    return [r for r in list(agent.scanners[device].counters.recent) if r[0] > muted_at]


def silent_failed_and_the_others_read_on(
    healthy: list[str], silent: str, reads: int = 8
) -> Callable[[Agent, float], bool]:
    """The silent meter failed three reads, and each answering one was read ``reads`` times after
    the silent one's first failure."""

    def done(agent: Agent, muted_at: float) -> bool:
        failed = healthy_reads_after(agent, silent, muted_at)
        if agent.scanners[silent].counters.read_failures < 3 or not failed:
            return False
        return all(len(healthy_reads_after(agent, d, failed[0][0])) >= reads for d in healthy)

    return done


def assert_healthy_meters_undelayed(
    agent: Agent, healthy: list[str], silent: str, muted_at: float, interval: float, timeout_s: float
) -> dict[str, float]:
    """No tick of an answering meter is missed; once the silent meter has failed one read (until
    then nobody can know it is silent, and on a shared line a meter queued behind it that one
    time waits for its timeout), no read of an answering meter waits for it again."""
    first_failure = healthy_reads_after(agent, silent, muted_at)[0][0]
    slowest: dict[str, float] = {}
    for device in healthy:
        reads = healthy_reads_after(agent, device, muted_at)
        ticks = [r[0] for r in reads]
        assert all(abs(b - a - interval) < 1e-6 for a, b in itertools.pairwise(ticks)), ticks
        assert agent.scanners[device].counters.read_failures == 0
        later = [r for r in reads if r[0] > first_failure]
        assert len(later) >= 5
        slowest[device] = max(r[2] for r in later)
        # Each read took less than one timeout of the silent meter: none of them waited for it.
        assert slowest[device] < timeout_s, (device, slowest[device])
    silent_counters = agent.scanners[silent].counters
    assert silent_counters.read_failures >= 3
    assert agent.publishers[silent].meter_problem is not None
    return slowest


@pytest.mark.serial  # read times and ticks are timed
def test_dead_and_slow_tcp_meters_never_delay_the_other_meters(
    tmp_path: Path, tcp_server: ModbusServer, report: Callable[[str], None]
) -> None:
    interval, timeout_s = 0.5, 0.2
    tcp_server.meters[3].delay_s = 0.03  # slow (two reads: 60 ms), but well inside its timeout
    devices = [
        tcp_device(f"m{u}", tcp_server.tcp_port or 0, u, timeout_s=timeout_s, retries=1) for u in (1, 2, 3)
    ]
    agent, muted_at = run_agent_with_a_meter_going_silent(
        agent_config(tmp_path, devices, interval),
        tcp_server,
        2,
        silent_failed_and_the_others_read_on(["m1", "m3"], "m2"),
    )
    try:
        slowest = assert_healthy_meters_undelayed(agent, ["m1", "m3"], "m2", muted_at, interval, timeout_s)
        silent_reads = [r[2] for r in healthy_reads_after(agent, "m2", muted_at)]
        assert max(silent_reads) >= timeout_s  # the silent meter's own reads did wait for it
    finally:
        agent.outbox.close()
    report(
        f"TCP, tick {interval} s, timeout {timeout_s} s: after unit 2 went silent, slowest read of "
        f"unit 1 {slowest['m1'] * 1000:.0f} ms, of slow unit 3 {slowest['m3'] * 1000:.0f} ms; "
        f"unit 2's reads took up to {max(silent_reads) * 1000:.0f} ms; no tick missed"
    )


@pytest.mark.serial  # read times and ticks are timed
def test_dead_rtu_meter_on_a_shared_line_never_delays_the_other_meters(
    tmp_path: Path, rtu_line: tuple[ModbusServer, PtyLink], report: Callable[[str], None]
) -> None:
    server, link = rtu_line
    interval, timeout_s = 0.5, 0.2
    devices = [rtu_device(f"m{u}", link.port_b, u, timeout_s=timeout_s, retries=0) for u in (1, 2, 3)]
    agent, muted_at = run_agent_with_a_meter_going_silent(
        agent_config(tmp_path, devices, interval),
        server,
        2,
        silent_failed_and_the_others_read_on(["m1", "m3"], "m2"),
    )
    try:
        slowest = assert_healthy_meters_undelayed(agent, ["m1", "m3"], "m2", muted_at, interval, timeout_s)
        taken = {d: agent.outbox.count(d) for d in ("m1", "m2", "m3")}
    finally:
        agent.outbox.close()
    report(
        f"RTU over a pty pair, 3 meters on one line, tick {interval} s, timeout {timeout_s} s: after unit 2 "
        f"went silent, slowest read of unit 1 {slowest['m1'] * 1000:.0f} ms, unit 3 "
        f"{slowest['m3'] * 1000:.0f} ms; scans stored {taken}"
    )


@pytest.mark.serial  # read times and ticks are timed
def test_meter_that_answers_again_is_back_online(tmp_path: Path, tcp_server: ModbusServer) -> None:
    devices = [tcp_device("m1", tcp_server.tcp_port or 0, 1, timeout_s=0.1, retries=0)]
    agent, _ = run_agent_with_a_meter_going_silent(
        agent_config(tmp_path, devices, 0.25),
        tcp_server,
        1,
        lambda agent, _muted_at: agent.publishers["m1"].meter_problem is not None,
    )
    scanner = agent.scanners["m1"]
    assert agent.publishers["m1"].meter_problem is not None
    tcp_server.meters[1].mute = False
    scanner.scan_once()
    wait_for(lambda: agent.publishers["m1"].meter_problem is None, 5, "the meter back online")
    agent.outbox.close()


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"transport": "serial"}, "devices[d].modbus.transport", "'serial' is not one of tcp, rtu"),
        (
            {"channels": {"so2": {"address": 0, "type": "float64"}}},
            "devices[d].modbus.channels.so2.type",
            "'float64' is not one of int16, uint16, int32, uint32, float32",
        ),
        (
            {"channels": {"so2": {"address": 0, "function": "coil"}}},
            "devices[d].modbus.channels.so2.function",
            "'coil' is not one of holding, input",
        ),
        (
            {"channels": {"so2": {"address": 0, "word_order": "middle"}}},
            "devices[d].modbus.channels.so2.word_order",
            "'middle' is not one of big, little",
        ),
        (
            {"channels": {"so2": {"address": 65535, "type": "float32"}}},
            "devices[d].modbus.channels.so2.address",
            "runs past register 65535",
        ),
        (
            {"channels": {"so2": {"type": "int16"}}},
            "devices[d].modbus.channels.so2.address",
            "required key is missing",
        ),
        (
            {"status": [{"address": 20, "bits": {0: "X"}}]},
            "devices[d].modbus.status[0].bits.0",
            "'X' is not an HJ 212 flag",
        ),
        (
            {"status": [{"address": 20, "bits": {0: "M"}, "channels": ["co"]}]},
            "devices[d].modbus.status[0].channels[0]",
            "'co' is not one of this device's channels",
        ),
        (
            {"timeout_s": 0.4, "retries": 2},
            "devices[d].modbus.timeout_s",
            "takes up to 1.2 s to give up on",
        ),
        ({"serial": {"port": "/dev/ttyUSB0"}}, "devices[d].modbus.serial", "for transport: rtu"),
    ],
)
def test_register_map_errors_name_the_key_and_problem(
    tmp_path: Path, change: dict[str, Any], key: str, problem: str
) -> None:
    device = tcp_device("d", 1502, 1)
    device["modbus"] = device["modbus"] | change
    with pytest.raises(ConfigError) as err:
        agent_config(tmp_path, [device])
    assert err.value.key == key
    assert problem in err.value.problem


def test_meters_on_one_serial_port_must_share_its_settings(tmp_path: Path) -> None:
    a = rtu_device("a", "/dev/ttyTEST0", 1)
    b = rtu_device("b", "/dev/ttyTEST0", 2)
    b["modbus"]["serial"] = {"port": "/dev/ttyTEST0", "baudrate": 9600}
    with pytest.raises(ConfigError) as err:
        agent_config(tmp_path, [a, b])
    assert err.value.key == "devices[b].modbus.serial"
    assert "meters on one RS-485 line share its settings" in err.value.problem
