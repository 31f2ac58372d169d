"""Clock-hour windows in event time: which hour and 15-minute quadrant a point falls in, the
running accumulator of an hour, and the hour's verdict.

A valid hour (US 40 CFR 60.13(h)(2), adopted here for the Thai clock-hour average) holds at least
one valid point in each of its four 15-minute quadrants. Valid points are those flagged N or S
(HJ 212); C, M, D, F, T and B are left out and counted by flag so the report can say why an hour
is invalid. Stack pollutants that are corrected to a reference O2 need a usable O2 reading of the
same scan; a point without one (or with O2 >= 21 %) is left out too, with that reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from eit.model import FLAGS, VALID_FLAGS

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S
QUADRANT_NS = 900 * NS_PER_S

# Reasons a valid-flagged point still cannot count (the correction is impossible).
NO_O2 = "no valid O2 of the same scan to correct with"
O2_AT_21 = "O2 at or above 21 % (or negative): no correction possible"


def hour_start(ts_ns: int) -> int:
    return ts_ns - ts_ns % HOUR_NS


def quadrant(ts_ns: int) -> int:
    """0-3: the 15-minute quadrant of the clock hour."""
    return (ts_ns % HOUR_NS) // QUADRANT_NS


@dataclass(slots=True)
class HourAccumulator:
    """What one series saw in one clock hour. Adding a point is O(1); order does not matter."""

    start_ns: int
    points: int = 0
    sum_raw: float = 0.0
    sum_corrected: float = 0.0
    quadrant_mask: int = 0
    first_ts: int = 0
    first_value: float = 0.0
    last_ts: int = -1
    last_value: float = 0.0
    left_out: dict[str, int] = field(default_factory=dict)
    # False while memory may hold only part of the hour (it began before the engine started, or
    # was forgotten and came back with late data): the store has all of it.
    whole: bool = True

    def add_valid(self, ts_ns: int, raw: float, corrected: float) -> None:
        self.points += 1
        self.sum_raw += raw
        self.sum_corrected += corrected
        self.quadrant_mask |= 1 << ((ts_ns % HOUR_NS) // QUADRANT_NS)
        if self.points == 1 or ts_ns < self.first_ts:
            self.first_ts, self.first_value = ts_ns, raw
        if ts_ns > self.last_ts:
            self.last_ts, self.last_value = ts_ns, raw

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1

    @property
    def quadrants(self) -> int:
        return bin(self.quadrant_mask).count("1")

    def mean_raw(self) -> float | None:
        return self.sum_raw / self.points if self.points else None

    def mean_corrected(self) -> float | None:
        return self.sum_corrected / self.points if self.points else None

    def verdict(self) -> tuple[bool, str]:
        """(valid, reason): the reason names the empty quadrants and what was left out."""
        if self.quadrant_mask == 0b1111:
            return True, ""
        if self.points == 0:
            reason = "no valid point"
        else:
            empty = [str(q + 1) for q in range(4) if not self.quadrant_mask & (1 << q)]
            word = "quadrant" if len(empty) == 1 else "quadrants"
            reason = f"{word} {', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no valid point"
        if self.left_out:
            parts = [f"{n} {_describe_reason(k)}" for k, n in sorted(self.left_out.items())]
            reason += " (left out: " + ", ".join(parts) + ")"
        return False, reason


def _describe_reason(key: str) -> str:
    if key in FLAGS:
        return f"{key} {FLAGS[key]}"
    return key


def accumulate(
    start_ns: int,
    points: Iterable[tuple[int, float, str]],
    o2_by_ts: dict[int, tuple[float, str]] | None,
    o2_reference: float | None,
) -> HourAccumulator:
    """The accumulator of one hour rebuilt from stored points (ts, value, flag): used when late
    data reopens a closed hour, and by imports."""
    acc = HourAccumulator(start_ns)
    for ts, value, flag in points:
        add_point(acc, ts, value, flag, o2_by_ts, o2_reference)
    return acc


def add_point(
    acc: HourAccumulator,
    ts: int,
    value: float,
    flag: str,
    o2_by_ts: dict[int, tuple[float, str]] | None,
    o2_reference: float | None,
) -> None:
    if flag not in VALID_FLAGS:
        acc.leave_out(flag)
        return
    if o2_reference is None or o2_by_ts is None:
        acc.add_valid(ts, value, value)
        return
    o2 = o2_by_ts.get(ts)
    if o2 is None or o2[1] not in VALID_FLAGS:
        acc.leave_out(NO_O2)
        return
    if o2[0] >= 21.0 or o2[0] < 0.0:
        acc.leave_out(O2_AT_21)
        return
    acc.add_valid(ts, value, value * (21.0 - o2_reference) / (21.0 - o2[0]))
