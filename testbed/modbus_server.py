"""A real Modbus server for the tests and the footprint bench: pymodbus's own server, over TCP or
RTU on a serial port, playing one or more meters (unit ids) whose registers a test sets.

A meter can be told to stop answering (``mute``): the server then drops its requests without a
reply, exactly like a dead slave on an RS-485 line or behind a gateway, so the client times out.
Or to answer slowly (``delay_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import tty
from dataclasses import dataclass, field

from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.drivers.registers import encode_raw

REGISTERS = 200  # holding and input registers 0..199 of every meter


@dataclass
class Meter:
    unit: int
    holding: list[int] = field(default_factory=lambda: [0] * REGISTERS)
    input: list[int] = field(default_factory=lambda: [0] * REGISTERS)
    mute: bool = False
    delay_s: float = 0.0
    requests: int = 0

    def set(
        self, function: str, address: int, value: float, type_name: str = "float32", **order: str
    ) -> None:
        regs = self.holding if function == "holding" else self.input
        words = encode_raw(value, type_name, **order)
        regs[address : address + len(words)] = words

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        self.requests += 1
        if self.mute:
            raise NoSuchIdException(f"unit {self.unit} is muted")  # no reply at all
        if self.delay_s:
            await asyncio.sleep(self.delay_s)  # scenario time: a slow meter takes this long to answer
        source = self.holding if function_code == 3 else self.input
        offset = address - start_address
        current[offset : offset + count] = source[address : address + count]
        return None


class ModbusServer:
    """pymodbus's server in a thread of its own, with its own event loop."""

    def __init__(
        self, units: list[int], *, tcp_port: int | None = None, serial_port: str | None = None
    ) -> None:
        self.meters = {u: Meter(u) for u in units}
        self.tcp_port = tcp_port
        self.serial_port = serial_port
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="modbus-server", daemon=True)

    def _devices(self) -> list[SimDevice]:
        devices = []
        for meter in self.meters.values():
            bits = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
            holding = [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)]
            inputs = [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)]
            devices.append(
                SimDevice(meter.unit, simdata=(bits, list(bits), holding, inputs), action=meter.action)
            )
        return devices

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            if self.tcp_port is not None:
                self._server = ModbusTcpServer(
                    self._devices(), address=("127.0.0.1", self.tcp_port), ignore_missing_devices=True
                )
            else:
                self._server = ModbusSerialServer(
                    self._devices(),
                    framer=FramerType.RTU,
                    port=self.serial_port or "",
                    baudrate=19200,
                    ignore_missing_devices=True,
                )
            await self._server.serve_forever(background=True)
            self._ready.set()

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._loop.run_forever()

    def start(self) -> ModbusServer:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the Modbus server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            shutdown = self._server.shutdown()  # type: ignore[no-untyped-call]
            asyncio.run_coroutine_threadsafe(shutdown, self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class PtyLink:
    """Two pseudo-terminals joined like a null-modem cable: what one end writes, the other reads.

    ``os.openpty`` gives a pair whose one end has a device path; two pairs and a thread copying
    bytes between their master ends make a serial link with a path at each end, on any Linux
    machine, with nothing installed.
    """

    def __init__(self) -> None:
        self._a_master, self._a_slave = os.openpty()
        self._b_master, self._b_slave = os.openpty()
        for fd in (self._a_slave, self._b_slave):
            tty.setraw(fd)
        self.port_a = os.ttyname(self._a_slave)
        self.port_b = os.ttyname(self._b_slave)
        self._stop_r, self._stop_w = os.pipe()
        self.bytes_copied = 0
        self._thread = threading.Thread(target=self._copy, name="pty-link", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        peer = {self._a_master: self._b_master, self._b_master: self._a_master}
        while True:
            readable, _, _ = select.select([*peer, self._stop_r], [], [])
            if self._stop_r in readable:
                return
            for fd in readable:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                self.bytes_copied += len(data)
                os.write(peer[fd], data)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (self._a_master, self._a_slave, self._b_master, self._b_slave, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
