"""The store interface: the semantics every store implements and the shared test suite checks.

- ``write`` is idempotent: a reading is keyed by (factory, device, channel, timestamp); writing the
  same key again overwrites it, so a redelivered message is stored once.
- ``write`` returns only when the readings are durable; it raises :class:`StoreUnavailable` when
  the store cannot be reached (the caller retries and does not acknowledge the message) and
  :class:`StoreError` when the store refuses the data itself.
- Range queries take [start_ns, end_ns) and return points in time order.
- ``aggregate`` groups into buckets aligned to the epoch (``every_s`` long, labelled by their
  start) and returns only buckets holding data.
- Derived points (the measurements of docs/store-schema.md other than ``readings``: hourly,
  rolling, daily, aqi, energy, platform) go through ``write_points`` / ``query_points``: a point
  is keyed by (measurement, tag set, time) and writing the same key again replaces it. Field
  types (float, int, bool, str) come back as they were written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from eit.errors import EitError
from eit.model import Reading

AGGREGATES = ("mean", "min", "max", "count", "sum", "first", "last")


class StoreUnavailable(EitError):
    """The store cannot take data now, for a cause that is the store's, not the data's: it
    cannot be reached, refuses the credentials (401) or the permission (403), its database is
    missing, its disk or quota is full, a limit of the store refuses new series. The caller keeps
    the data (unacknowledged) and tries again later; an operator may have to act. Nothing is
    lost."""


class StoreError(EitError):
    """The store refused the data itself, and would refuse it again (not a transient problem).

    ``reason`` says why in a word (a dead letter's reason): ``beyond_retention`` (older than the
    store keeps), ``field_type_conflict`` (the store holds the field with another type),
    ``value_out_of_range`` (a number the store's type cannot hold), ``store_refused`` (any other
    refusal). A writer given several readings finds the ones refused by writing fewer at a time
    (ingest/service.py)."""

    def __init__(self, message: str, reason: str = "store_refused", dropped: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        # How many of the data written the store says it refused, when it says (InfluxDB's
        # "dropped=N"): all of them spares the writer from trying each one alone.
        self.dropped = dropped


@dataclass(frozen=True, slots=True)
class Bucket:
    start_ns: int
    value: float


FieldValue = float | int | bool | str
MEASUREMENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
TAG_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class Point:
    """One derived point: measurement, tags, time (UTC ns) and typed fields."""

    measurement: str
    tags: Mapping[str, str]
    ts_ns: int
    fields: Mapping[str, FieldValue] = field(default_factory=dict)

    def tag_key(self) -> str:
        """The tag set in canonical form (sorted ``k=v`` pairs), part of the point's key."""
        return ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))


def check_points(measurement: str, points: Sequence[Point]) -> None:
    """Reject what no store can keep, naming the point and the problem."""
    if not MEASUREMENT_NAME.fullmatch(measurement):
        raise StoreError(f"measurement name {measurement!r} is not a lower-case identifier")
    for index, p in enumerate(points):
        where = f"{measurement} point {index} at {p.ts_ns}"
        if p.measurement != measurement:
            raise StoreError(f"{where}: belongs to measurement {p.measurement!r}")
        if not p.fields:
            raise StoreError(f"{where}: a point needs at least one field")
        for name in (*p.tags, *p.fields):
            if not TAG_NAME.fullmatch(name) or name == "time":
                raise StoreError(f"{where}: {name!r} is not a valid tag or field name")
        for tag, text in p.tags.items():
            if not isinstance(text, str) or not text:
                raise StoreError(f"{where}: tag {tag!r} must be non-empty text")
        for name, value in p.fields.items():
            if not isinstance(value, bool | int | float | str):
                raise StoreError(f"{where}: field {name!r} has type {type(value).__name__}")
            if isinstance(value, float) and value != value:  # NaN cannot be stored or compared
                raise StoreError(f"{where}: field {name!r} is NaN")


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
        verified: str | None = None,
    ) -> int:
        """Readings in the range; with ``verified``, only those whose ``verified`` field is that
        (eit/signing.py: the share of verified readings in reports)."""
        ...

    def write_points(self, measurement: str, points: Sequence[Point]) -> None:
        """Write derived points (idempotent per measurement, tag set and time)."""
        ...

    def query_points(
        self, measurement: str, tags: Mapping[str, str], start_ns: int, end_ns: int
    ) -> list[Point]:
        """Points of ``measurement`` whose tags include ``tags``, in [start_ns, end_ns), in time
        order (ties by tag set)."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""
        ...

    def close(self) -> None: ...


def check_aggregate(fn: str, every_s: int) -> None:
    if fn not in AGGREGATES:
        raise ValueError(f"unknown aggregate {fn!r}; use one of {', '.join(AGGREGATES)}")
    if every_s <= 0:
        raise ValueError(f"bucket length must be positive, got {every_s} s")
