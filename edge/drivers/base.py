"""The driver protocol shared by every meter driver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from eit.confread import Section
from eit.errors import EitError


class DriverError(EitError):
    """A meter did not answer, or answered something unusable. The message says which."""


class SourceExhausted(DriverError):
    """A driver that replays recorded data has no more of it (the device's scanning ends)."""


@dataclass(slots=True)
class ScanValues:
    """What one read of a meter gives: values by channel and flags where not N.

    ``ts_ns`` is set only by drivers that replay recorded data with its own timestamps; live
    meters leave it None and the agent stamps the scan with its clock (UTC).
    """

    values: dict[str, float]
    flags: dict[str, str] = field(default_factory=dict)
    ts_ns: int | None = None


class Driver(Protocol):
    def connect(self) -> None: ...

    def read(self) -> ScanValues: ...

    def close(self) -> None: ...


DriverFactory = Callable[[Section, Path, str], Driver]
