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


@dataclass(slots=True)
class ScanValues:
    """What one read of a meter gives: values by channel and flags where not N."""

    values: dict[str, float]
    flags: dict[str, str] = field(default_factory=dict)


class Driver(Protocol):
    def connect(self) -> None: ...

    def read(self) -> ScanValues: ...

    def close(self) -> None: ...


DriverFactory = Callable[[Section, Path, str], Driver]
