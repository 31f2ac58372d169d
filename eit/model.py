"""The internal reading: what every decoder produces and every store and rule consumes."""

from __future__ import annotations

import re
from dataclasses import dataclass

# HJ 212 data flags. Absent means N.
FLAGS: dict[str, str] = {
    "N": "normal",
    "F": "stopped",
    "M": "maintenance",
    "S": "manual setting",
    "D": "fault",
    "C": "calibration",
    "T": "above measuring range",
    "B": "analyzer-logger communication failure",
}
# Flags whose points count towards averages and limit checks (S is audited manual data).
VALID_FLAGS = frozenset({"N", "S"})

# Identifiers of factories, devices and channels: they appear in MQTT topics, InfluxDB tags and
# URLs, so they are restricted to characters that need no escaping anywhere.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ID_HINT = "use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit"


@dataclass(slots=True, frozen=True)
class Reading:
    """One value of one channel of one device at one instant (UTC, nanoseconds since epoch)."""

    factory: str
    device: str
    channel: str
    ts_ns: int
    value: float
    flag: str = "N"
    seq: int | None = None

    @property
    def series(self) -> tuple[str, str, str]:
        return (self.factory, self.device, self.channel)

    @property
    def valid(self) -> bool:
        return self.flag in VALID_FLAGS
