"""A Modbus register map: where each channel's value sits, how to decode it, and which status
registers set HJ 212 flags. Pure data and arithmetic, no I/O, so the map is checked and decoded
the same way by the agent and by `eit edge check`.

Register numbers are the protocol addresses, counted from 0 (the address on the wire). A manual
that says "40001" or "holding register 1" means address 0.

Byte order is the order of the two bytes inside each 16-bit register ("big": high byte first,
as the Modbus standard says); word order is the order of the registers of a 32-bit value ("big":
high word first). Meters differ: a float32 that reads as 1.4e-38 or 2.3e+21 where 41.2 is
expected is usually a word-order mistake, and `eit edge check` shows every ordering side by side.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from eit.confread import Section
from eit.model import FLAGS, ID_HINT, ID_PATTERN

FUNCTIONS = ("holding", "input")
TYPES = {"int16": ("h", 1), "uint16": ("H", 1), "int32": ("i", 2), "uint32": ("I", 2), "float32": ("f", 2)}
ORDERS = ("big", "little")
MAX_REGISTERS_PER_READ = 125  # the Modbus limit for function codes 3 and 4
# When several status registers flag one channel, the most severe flag wins.
FLAG_SEVERITY = "FDMCBTSN"


@dataclass(frozen=True, slots=True)
class ChannelMap:
    id: str
    address: int
    function: str
    type: str
    word_order: str
    byte_order: str
    scale: float
    offset: float
    unit: str
    minimum: float | None
    maximum: float | None

    @property
    def count(self) -> int:
        return TYPES[self.type][1]

    def decode(self, registers: list[int]) -> float:
        """The channel's value in its unit: raw * scale + offset."""
        return decode_raw(registers, self.type, self.word_order, self.byte_order) * self.scale + self.offset

    def describe(self) -> str:
        return (
            f"{self.function} register {self.address}"
            + (f"-{self.address + self.count - 1}" if self.count > 1 else "")
            + f", {self.type}"
            + (f" word_order={self.word_order}" if self.count > 1 else "")
            + f" byte_order={self.byte_order}"
            + (f", x{self.scale:g}" if self.scale != 1 else "")
            + (f" {self.offset:+g}" if self.offset else "")
        )


@dataclass(frozen=True, slots=True)
class StatusMap:
    """A status register of the analyzer, turned into HJ 212 flags for some channels.

    ``bits`` maps a bit number (0 = least significant) to a flag, set while the bit is 1;
    ``values`` maps a whole register value (a state code) to a flag.
    """

    address: int
    function: str
    bits: dict[int, str]
    values: dict[int, str]
    channels: tuple[str, ...]

    def flag(self, register: int) -> str | None:
        found = [flag for bit, flag in self.bits.items() if register >> bit & 1]
        if register in self.values:
            found.append(self.values[register])
        return most_severe(found)


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers of one function from ``address``."""

    function: str
    address: int
    count: int


def most_severe(flags: list[str]) -> str | None:
    return min(flags, key=FLAG_SEVERITY.index) if flags else None


def decode_raw(registers: list[int], type_name: str, word_order: str, byte_order: str) -> float:
    fmt, count = TYPES[type_name]
    if len(registers) != count:
        raise ValueError(f"{type_name} needs {count} register(s), got {len(registers)}")
    words = list(registers) if word_order == "big" else list(reversed(registers))
    data = b"".join(w.to_bytes(2, "big" if byte_order == "big" else "little") for w in words)
    value: float = struct.unpack(">" + fmt, data)[0]
    return value


def encode_raw(value: float, type_name: str, word_order: str = "big", byte_order: str = "big") -> list[int]:
    """The registers a meter would hold for ``value`` (the inverse of :func:`decode_raw`); used by
    the test servers and the footprint bench to play a meter."""
    fmt, _ = TYPES[type_name]
    data = struct.pack(">" + fmt, value if fmt == "f" else int(value))
    words = [int.from_bytes(data[i : i + 2], "big" if byte_order == "big" else "little") for i in (0, 2)]
    words = words[: len(data) // 2]
    return words if word_order == "big" else list(reversed(words))


def plan_blocks(items: list[tuple[str, int, int]], max_gap: int) -> list[Block]:
    """Merge (function, address, count) ranges into as few reads as possible, each at most
    125 registers, bridging gaps of at most ``max_gap`` unmapped registers."""
    blocks: list[Block] = []
    for function in FUNCTIONS:
        spans = sorted((a, a + n) for f, a, n in items if f == function)
        start = end = -1
        for a, b in spans:
            if start >= 0 and a <= end + max_gap and max(b, end) - start <= MAX_REGISTERS_PER_READ:
                end = max(end, b)
                continue
            if start >= 0:
                blocks.append(Block(function, start, end - start))
            start, end = a, b
        if start >= 0:
            blocks.append(Block(function, start, end - start))
    return blocks


def is_plausible(value: float) -> bool:
    """False for what no meter measures: NaN, infinities, and magnitudes below 1e-30 or above
    1e12, the usual signs of a float32 read in the wrong word or byte order."""
    return math.isfinite(value) and (value == 0 or 1e-30 < abs(value) < 1e12)


def read_channel(sec: Section, cid: str, word_order: str, byte_order: str) -> ChannelMap:
    if not ID_PATTERN.fullmatch(cid):
        sec.fail("", f"'{cid}' is not a valid channel id: {ID_HINT}")
    type_name = sec.text("type", "uint16", choices=tuple(TYPES))
    address = sec.integer("address", minimum=0, maximum=65535)
    count = TYPES[type_name][1]
    if address + count - 1 > 65535:
        sec.fail("address", f"a {type_name} at {address} runs past register 65535")
    scale = sec.number("scale", 1.0)
    if scale == 0:
        sec.fail("scale", "a scale of 0 would make every value 0")
    channel = ChannelMap(
        id=cid,
        address=address,
        function=sec.text("function", "holding", choices=FUNCTIONS),
        type=type_name,
        word_order=sec.text("word_order", word_order, choices=ORDERS),
        byte_order=sec.text("byte_order", byte_order, choices=ORDERS),
        scale=scale,
        offset=sec.number("offset", 0.0),
        unit=sec.text("unit", ""),
        minimum=sec.number("min", None),
        maximum=sec.number("max", None),
    )
    if channel.minimum is not None and channel.maximum is not None and channel.minimum >= channel.maximum:
        sec.fail("max", f"max {channel.maximum:g} must be above min {channel.minimum:g}")
    sec.finish()
    return channel


def read_status(sec: Section, channel_ids: list[str]) -> StatusMap:
    def flag_map(key: str, limit: int) -> dict[int, str]:
        raw = sec.raw(key, {})
        if not isinstance(raw, dict):
            sec.fail(key, "expected a mapping of number: flag, e.g. {0: M, 1: C}")
        result: dict[int, str] = {}
        for k, v in raw.items():
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= limit:
                sec.fail(f"{key}.{k}", f"expected a whole number from 0 to {limit}")
            if v not in FLAGS or v == "N":
                sec.fail(
                    f"{key}.{k}", f"{v!r} is not an HJ 212 flag ({', '.join(f for f in FLAGS if f != 'N')})"
                )
            result[k] = v
        return result

    bits = flag_map("bits", 15)
    values = flag_map("values", 65535)
    if not bits and not values:
        sec.fail("bits", "a status register needs 'bits' or 'values' to say which flag it sets")
    channels = tuple(sec.str_list("channels", list(channel_ids)))
    for index, cid in enumerate(channels):
        if cid not in channel_ids:
            sec.fail(
                f"channels[{index}]",
                f"'{cid}' is not one of this device's channels ({', '.join(channel_ids)})",
            )
    status = StatusMap(
        address=sec.integer("address", minimum=0, maximum=65535),
        function=sec.text("function", "holding", choices=FUNCTIONS),
        bits=bits,
        values=values,
        channels=channels,
    )
    sec.finish()
    return status
