"""The store interface: the semantics every store implements and the shared test suite checks.

- ``write`` is idempotent: a reading is keyed by (factory, device, channel, timestamp); writing the
  same key again overwrites it, so a redelivered message is stored once.
- ``write`` returns only when the readings are durable; it raises :class:`StoreUnavailable` when
  the store cannot be reached (the caller retries and does not acknowledge the message) and
  :class:`StoreError` when the store refuses the data itself.
- Range queries take [start_ns, end_ns) and return points in time order.
- ``aggregate`` groups into buckets aligned to the epoch (``every_s`` long, labelled by their
  start) and returns only buckets holding data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eit.errors import EitError
from eit.model import Reading

AGGREGATES = ("mean", "min", "max", "count", "sum", "first", "last")


class StoreUnavailable(EitError):
    """The store cannot be reached now; try again later. Nothing was lost."""


class StoreError(EitError):
    """The store refused the data (not a transient problem)."""


@dataclass(frozen=True, slots=True)
class Bucket:
    start_ns: int
    value: float


class Store(Protocol):
    kind: str

    def write(self, readings: Sequence[Reading]) -> None: ...

    def readings(
        self,
        factory: str,
        device: str,
        channel: str,
        start_ns: int,
        end_ns: int,
        limit: int | None = None,
    ) -> list[Reading]: ...

    def aggregate(
        self,
        factory: str,
        device: str,
        channel: str,
        start_ns: int,
        end_ns: int,
        every_s: int,
        fn: str = "mean",
        valid_only: bool = False,
    ) -> list[Bucket]: ...

    def latest(self, factory: str | None = None, device: str | None = None) -> list[Reading]: ...

    def count(
        self,
        factory: str | None = None,
        device: str | None = None,
        channel: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> int: ...

    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""
        ...

    def close(self) -> None: ...


def check_aggregate(fn: str, every_s: int) -> None:
    if fn not in AGGREGATES:
        raise ValueError(f"unknown aggregate {fn!r}; use one of {', '.join(AGGREGATES)}")
    if every_s <= 0:
        raise ValueError(f"bucket length must be positive, got {every_s} s")
