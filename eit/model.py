"""The internal reading: what every decoder produces and every store and rule consumes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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


if TYPE_CHECKING:
    from dataclasses import dataclass as _reading_dataclass
else:

    def _reading_dataclass(*, frozen: bool, **options: Any) -> Any:
        """At run time the reading is not frozen: a frozen dataclass's __init__ sets each field
        through object.__setattr__, which made creating a reading (once per value received)
        4-5 times slower. Equality and hashing stay those of a frozen dataclass (unsafe_hash),
        and mypy sees the frozen dataclass, so no code assigns to a reading's fields unnoticed."""
        return dataclass(unsafe_hash=frozen, **options)


@_reading_dataclass(slots=True, frozen=True)
class Reading:
    """One value of one channel of one device at one instant (UTC, nanoseconds since epoch).

    Immutable by contract (checked by mypy); see ``_reading_dataclass``.
    """

    factory: str
    device: str
    channel: str
    ts_ns: int
    value: float
    flag: str = "N"
    seq: int | None = None
    # What the ingest concluded of the scan's signature (eit/signing.py), "" when not checked.
    # Evidence beside the reading, not part of it: equality, validity and averages ignore it.
    verified: str = field(default="", compare=False)

    @property
    def series(self) -> tuple[str, str, str]:
        return (self.factory, self.device, self.channel)

    @property
    def valid(self) -> bool:
        return self.flag in VALID_FLAGS
