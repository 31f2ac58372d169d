"""Modbus TCP and Modbus RTU (serial, RS-485) meters, read with pymodbus.

    - id: stack-1
      driver: modbus
      modbus:
        transport: tcp                  # tcp or rtu
        host: 192.168.10.21             # tcp
        port: 502
        serial: {port: /dev/ttyUSB0, baudrate: 9600, parity: N, bytesize: 8, stopbits: 1}  # rtu
        unit: 1                         # the slave (unit / device) id
        timeout_s: 0.4                  # per try
        retries: 1                      # tries after the first one, while the meter answers
        word_order: big                 # defaults for the channels below
        byte_order: big
        channels:
          so2: {address: 0, function: input, type: float32, unit: ppm}
          flow: {address: 10, type: uint32, word_order: little, scale: 0.1, unit: m3/h}
        status:
          - {address: 40, function: input, bits: {0: M, 1: C, 2: D}, channels: [so2]}

Each device has its own scan thread. A Modbus TCP device has its own connection, so a meter that
stops answering costs only its own thread. Devices on one serial port share the line (RS-485 is
half-duplex: one request at a time); there a meter that has stopped answering gets one try per
scan instead of ``1 + retries``, and waits until the answering meters on the line have been read,
so a silent meter never holds the line while a healthy one is due.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.drivers.base import DriverError, ScanValues
from edge.drivers.registers import (
    ORDERS,
    Block,
    ChannelMap,
    StatusMap,
    is_plausible,
    most_severe,
    plan_blocks,
    read_channel,
    read_status,
)
from eit.confread import Section

log = logging.getLogger("eit.edge.modbus")
# pymodbus logs every timeout as an error of its own; the driver reports failures itself, once,
# with the device and what to check.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

TRANSPORTS = ("tcp", "rtu")
PARITIES = ("N", "E", "O")
# Modbus exception codes, in words an operator can act on.
EXCEPTION_HINTS = {
    1: "illegal function: the meter does not serve {function} registers (try function: {other})",
    2: "illegal data address: registers {first}-{last} do not exist on this meter "
    "(addresses count from 0: the manual's 40001 or 30001 is address 0)",
    3: "illegal data value: the meter refused to return {count} registers from {first} at once "
    "(set max_gap_registers: 0 or read fewer registers)",
    4: "device failure: the meter reported an internal error",
    6: "device busy: the meter asked to be asked again later",
    10: "gateway path unavailable: the gateway cannot reach unit {unit}",
    11: "gateway target failed to respond: no answer from unit {unit} behind the gateway",
}
# A meter that has stopped answering lets the answering meters on its line go first.
FAILING_GRACE_S = 0.05


class ModbusNoAnswer(DriverError):
    """The meter did not answer at all (timeout, no connection). ``closed_by_peer``: the other
    end reset or closed the connection instead of answering (not a wrong unit id, which is
    answered by silence)."""

    def __init__(self, message: str, closed_by_peer: bool = False) -> None:
        super().__init__(message)
        self.closed_by_peer = closed_by_peer


class ModbusRefused(DriverError):
    """The meter answered with a Modbus exception (a register-map problem, usually)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SerialSettings:
    port: str
    baudrate: int
    parity: str
    bytesize: int
    stopbits: int

    def describe(self) -> str:
        return f"{self.port} ({self.baudrate} {self.bytesize}{self.parity}{self.stopbits})"


class Link:
    """A connection to one or more meters: a TCP connection of its own, or a shared serial line."""

    def __init__(self, client: Any, where: str, timeout_s: float) -> None:
        self.client = client
        self.where = where
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._busy = False
        self._healthy_waiting = 0
        self.users = 0

    @contextmanager
    def hold(self, healthy: bool) -> Iterator[None]:
        """Hold the line for one read; meters that answer go before meters that do not."""
        with self._cond:
            if healthy:
                self._healthy_waiting += 1
            try:
                while self._busy or (not healthy and self._healthy_waiting > 0):
                    self._cond.wait()
            finally:
                if healthy:
                    self._healthy_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def connect(self) -> None:
        with self.hold(True):
            if not self.client.connected and not self.client.connect():
                raise ModbusNoAnswer(f"cannot open {self.where}")

    def close(self) -> None:
        with self.hold(True):
            self.client.close()


# Serial lines shared by the devices that name the same port, for as long as one of them lives.
_serial_links: weakref.WeakValueDictionary[str, Link] = weakref.WeakValueDictionary()
_serial_settings: dict[str, SerialSettings] = {}
_serial_lock = threading.Lock()


def serial_link(settings: SerialSettings, timeout_s: float, sec: Section) -> Link:
    from pymodbus.client import ModbusSerialClient
    from pymodbus.framer import FramerType

    with _serial_lock:
        link = _serial_links.get(settings.port)
        if link is not None:
            first = _serial_settings[settings.port]
            if link.timeout_s != timeout_s:
                sec.fail(
                    "timeout_s",
                    f"{timeout_s:g} differs from {link.timeout_s:g} of another device on {settings.port}: "
                    "meters on one RS-485 line share one timeout",
                )
            if first != settings:
                sec.fail(
                    "serial",
                    f"{settings.describe()} differs from {first.describe()} of another device on the "
                    "same port: meters on one RS-485 line share its settings",
                )
            return link
        client = ModbusSerialClient(
            settings.port,
            framer=FramerType.RTU,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=timeout_s,
            retries=0,
        )
        link = Link(client, settings.describe(), timeout_s)
        _serial_links[settings.port] = link
        _serial_settings[settings.port] = settings
        return link


def tcp_link(host: str, port: int, timeout_s: float) -> Link:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0)
    return Link(client, f"{host}:{port}", timeout_s)


@dataclass(slots=True)
class BlockResult:
    block: Block
    registers: list[int] | None
    error: DriverError | None


class ModbusDriver:
    def __init__(
        self,
        device_id: str,
        link: Link,
        unit: int,
        channels: list[ChannelMap],
        statuses: list[StatusMap],
        *,
        retries: int,
        max_gap: int,
        transport: str,
    ) -> None:
        self.device_id = device_id
        self.link = link
        self.unit = unit
        self.channels = channels
        self.statuses = statuses
        self.retries = retries
        self.transport = transport
        self.shared = transport == "rtu"
        items = [(c.function, c.address, c.count) for c in channels]
        items += [(s.function, s.address, 1) for s in statuses]
        self.blocks = plan_blocks(items, max_gap)
        self.failures_in_a_row = 0
        link.users += 1

    @property
    def max_read_s(self) -> float:
        """The longest a read of this meter can take when it does not answer (the first request
        that gets no answer ends the read)."""
        return self.link.timeout_s * (1 + self.retries)

    def where(self) -> str:
        return f"unit {self.unit} at {self.link.where}"

    # -- Driver protocol ------------------------------------------------------------------------
    def connect(self) -> None:
        try:
            self.link.connect()
        except DriverError:
            raise
        except Exception as exc:  # pymodbus and pyserial raise many kinds
            raise ModbusNoAnswer(f"cannot open {self.link.where}: {exc}") from None

    def close(self) -> None:
        self.link.users -= 1
        if self.link.users <= 0:
            self.link.close()

    def read(self) -> ScanValues:
        results = self.read_blocks()
        failed = [r for r in results if r.error is not None]
        if failed and all(isinstance(r.error, ModbusNoAnswer) for r in failed):
            assert failed[0].error is not None
            raise failed[0].error
        values, flags, problems = self.decode(results)
        if not values:
            raise DriverError(f"{self.where()}: no channel could be read: {'; '.join(problems)}")
        for problem in problems:
            log.warning("device %s: %s", self.device_id, problem)
        return ScanValues(values, flags)

    # -- reading and decoding -------------------------------------------------------------------
    def read_blocks(self) -> list[BlockResult]:
        healthy = self.failures_in_a_row == 0
        tries = 1 + (self.retries if healthy else 0)
        if self.shared and not healthy:
            time.sleep(FAILING_GRACE_S)
        results: list[BlockResult] = []
        # The whole read holds the line, so a meter that stops answering cannot slip in between
        # two requests of an answering one.
        with self.link.hold(healthy):
            for block in self.blocks:
                try:
                    registers = self._read_block(block, tries)
                    results.append(BlockResult(block, registers, None))
                except ModbusNoAnswer as exc:
                    # A meter that does not answer one request will not answer the next one either.
                    self.failures_in_a_row += 1
                    results.append(BlockResult(block, None, exc))
                    results.extend(BlockResult(b, None, exc) for b in self.blocks[len(results) :])
                    return results
                except DriverError as exc:
                    results.append(BlockResult(block, None, exc))
        self.failures_in_a_row = 0
        return results

    def _read_block(self, block: Block, tries: int) -> list[int]:
        from pymodbus.exceptions import ModbusException

        last = ""
        closed_by_peer = False
        for _ in range(tries):
            try:
                if block.function == "holding":
                    response = self.link.client.read_holding_registers(
                        block.address, count=block.count, device_id=self.unit
                    )
                else:
                    response = self.link.client.read_input_registers(
                        block.address, count=block.count, device_id=self.unit
                    )
            except ModbusException as exc:
                text = str(exc)
                if "unexpectedly closed" in text:
                    closed_by_peer = True
                    last = "the connection was closed by the other end"
                elif not closed_by_peer:
                    last = "no response" if "No response received" in text else text
                continue
            except OSError as exc:
                if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
                    closed_by_peer = True
                last = f"{type(exc).__name__}: {exc}"
                self.link.client.close()
                continue
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                hint = EXCEPTION_HINTS.get(code, "exception code {code}").format(
                    function=block.function,
                    other="input" if block.function == "holding" else "holding",
                    first=block.address,
                    last=block.address + block.count - 1,
                    count=block.count,
                    unit=self.unit,
                    code=code,
                )
                raise ModbusRefused(
                    f"{self.where()}: reading {block.function} registers "
                    f"{block.address}-{block.address + block.count - 1}: {hint}",
                    code,
                )
            registers = list(response.registers)[: block.count]
            if len(registers) != block.count:
                raise ModbusRefused(
                    f"{self.where()}: asked for {block.count} registers from {block.address}, "
                    f"got {len(registers)}",
                    0,
                )
            return registers
        if closed_by_peer:
            raise ModbusNoAnswer(
                f"no answer from {self.where()}: the connection was reset or closed by the other end "
                f"({last.strip()}) in {tries} tr{'y' if tries == 1 else 'ies'}",
                closed_by_peer=True,
            )
        raise ModbusNoAnswer(
            f"no answer from {self.where()} within {self.link.timeout_s:g} s x {tries} "
            f"tr{'y' if tries == 1 else 'ies'} ({last.strip() or 'no response'}); check the unit id, "
            + ("the wiring, baud rate and parity" if self.transport == "rtu" else "the address and port")
        )

    @staticmethod
    def registers_at(results: list[BlockResult], function: str, address: int, count: int) -> list[int] | None:
        for r in results:
            b = r.block
            inside = b.address <= address and address + count <= b.address + b.count
            if r.registers is not None and b.function == function and inside:
                return r.registers[address - b.address : address - b.address + count]
        return None

    def error_at(self, results: list[BlockResult], function: str, address: int) -> DriverError | None:
        for r in results:
            b = r.block
            if b.function == function and b.address <= address < b.address + b.count:
                return r.error
        return None

    def decode(self, results: list[BlockResult]) -> tuple[dict[str, float], dict[str, str], list[str]]:
        values: dict[str, float] = {}
        problems: list[str] = []
        for ch in self.channels:
            regs = self.registers_at(results, ch.function, ch.address, ch.count)
            if regs is None:
                err = self.error_at(results, ch.function, ch.address)
                problems.append(f"channel {ch.id}: {err}")
                continue
            value = ch.decode(regs)
            if not is_plausible(value):
                problems.append(
                    f"channel {ch.id}: {ch.describe()} decodes to {value!r} (registers "
                    f"{' '.join(f'{r:04x}' for r in regs)}): not a measurement, left out of the scan"
                )
                continue
            values[ch.id] = round(value, 9)
        flags_by_channel: dict[str, list[str]] = {}
        for st in self.statuses:
            regs = self.registers_at(results, st.function, st.address, 1)
            if regs is None:
                problems.append(
                    f"status register {st.address}: {self.error_at(results, st.function, st.address)}"
                )
                continue
            flag = st.flag(regs[0])
            if flag is not None:
                for cid in st.channels:
                    flags_by_channel.setdefault(cid, []).append(flag)
        flags = {
            cid: f
            for cid, found in flags_by_channel.items()
            if cid in values and (f := most_severe(found)) is not None
        }
        return values, flags, problems


def from_config(sec: Section, base_dir: Path, device_id: str) -> ModbusDriver:
    transport = sec.text("transport", "tcp", choices=TRANSPORTS)
    timeout_s = sec.number("timeout_s", 0.4, exclusive_minimum=0, maximum=60)
    retries = sec.integer("retries", 1, minimum=0, maximum=10)
    unit = sec.integer("unit", 1, minimum=0, maximum=247)
    word_order = sec.text("word_order", "big", choices=ORDERS)
    byte_order = sec.text("byte_order", "big", choices=ORDERS)
    max_gap = sec.integer("max_gap_registers", 0, minimum=0, maximum=100)
    if transport == "tcp":
        link = tcp_link(sec.text("host"), sec.integer("port", 502, minimum=1, maximum=65535), timeout_s)
        if sec.has("serial"):
            sec.fail("serial", "serial settings are for transport: rtu (this device is tcp)")
    else:
        for key in ("host", "port"):
            if sec.has(key):
                sec.fail(key, f"'{key}' is for transport: tcp; an RTU meter is reached through serial.port")
        ssec = sec.section("serial", required=True)
        settings = SerialSettings(
            port=ssec.text("port"),
            baudrate=ssec.integer("baudrate", 9600, minimum=300, maximum=921600),
            parity=ssec.text("parity", "N", choices=PARITIES),
            bytesize=ssec.integer("bytesize", 8, minimum=7, maximum=8),
            stopbits=ssec.integer("stopbits", 1, minimum=1, maximum=2),
        )
        ssec.finish()
        link = serial_link(settings, timeout_s, sec)
    channels: list[ChannelMap] = []
    for cid, csec in sec.mapping_sections("channels", required=True):
        channels.append(read_channel(csec, cid, word_order, byte_order))
    if not channels:
        sec.fail("channels", "a Modbus meter needs at least one channel")
    statuses = [read_status(s, [c.id for c in channels]) for s in sec.sections("status")]
    sec.finish()
    return ModbusDriver(
        device_id,
        link,
        unit,
        channels,
        statuses,
        retries=retries,
        max_gap=max_gap,
        transport=transport,
    )
