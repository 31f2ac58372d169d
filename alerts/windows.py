"""Clock-hour windows in event time, minute by minute: the running accumulator of one series'
hour, and the hour's verdict.

**Averaging** (the method, its version and its sources are data: eit/standards/methods.yaml).
Valid points (flags N and S, HJ 212) are averaged per clock minute first, then the minute means
are averaged over the hour (HJ 75-2017 reduces CEMS data to minute then hourly values; a fast
backlog of 1-minute points beside 1-second live points no longer outweighs them). A valid hour
holds at least one valid minute in each of its four 15-minute quadrants (US 40 CFR 60.13(h)(2),
adopted for the Thai clock-hour average). C, M, D, F, T and B points are left out and counted by
flag so the report can say why an hour is invalid. Stack pollutants that are corrected to a
reference O2 are corrected point by point with the O2 of their own scan; a point without a usable
O2 of its scan is left out too, with that reason.

**Replay safety.** Delivery is at least once: a reading may arrive twice, be overwritten with
another value, or reach an hour whose earlier minutes were stored before this process started.
Memory per series-hour is bounded (60 minute slots, whatever the scan rate), so points are not
remembered one by one. Instead each minute keeps the latest time stamp it has taken: a reading
later than that is certainly new and is added; one at or before it may be a repeat, so the
minute is marked *doubtful* and is read back from the store (which already holds the reading:
the store is written before the rules see a batch) before the hour is judged. Minutes this
process cannot have seen whole are *unknown* and read back the same way. An hour is judged only
when none of its minutes is doubtful or unknown: every hourly result equals what the store's
contents for that hour give.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

from eit.model import FLAGS, VALID_FLAGS

NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S
HOUR_NS = 3600 * NS_PER_S
QUADRANT_NS = 900 * NS_PER_S
MINUTES = 60
ALL_MINUTES = (1 << MINUTES) - 1
QUADRANT_MASKS = tuple(((1 << 15) - 1) << (15 * q) for q in range(4))

# Reasons a valid-flagged point still cannot count (the correction is impossible).
NO_O2 = "no valid O2 of the same scan to correct with"
O2_AT_21 = "O2 at or above 21 % (or negative): no correction possible"


def hour_start(ts_ns: int) -> int:
    return ts_ns - ts_ns % HOUR_NS


def minute_of(ts_ns: int) -> int:
    """0-59: the clock minute of the hour."""
    return (ts_ns % HOUR_NS) // MINUTE_NS


def quadrant(ts_ns: int) -> int:
    """0-3: the 15-minute quadrant of the clock hour."""
    return (ts_ns % HOUR_NS) // QUADRANT_NS


def minute_ranges(mask: int) -> list[tuple[int, int]]:
    """The runs of set bits of a minute mask as [first, last + 1) minute ranges."""
    ranges: list[tuple[int, int]] = []
    m = 0
    while m < MINUTES:
        if mask >> m & 1:
            first = m
            while m < MINUTES and mask >> m & 1:
                m += 1
            ranges.append((first, m))
        else:
            m += 1
    return ranges


class HourAccumulator:
    """One series' clock hour: per minute the valid points' count and sums, the latest time
    stamp taken, and what was left out. Adding a point is O(1); order does not matter; memory
    is about 4 KB whatever the scan rate."""

    __slots__ = (
        "doubtful",
        "first_ts",
        "first_values",
        "last_ts",
        "last_values",
        "left_out",
        "max_ts",
        "n",
        "start_ns",
        "sum_corrected",
        "sum_raw",
        "unknown",
        "versions",
    )

    def __init__(self, start_ns: int, unknown: int = 0) -> None:
        self.start_ns = start_ns
        self.n = array("q", bytes(8 * MINUTES))
        self.sum_raw = array("d", bytes(8 * MINUTES))
        self.sum_corrected = array("d", bytes(8 * MINUTES))
        # The latest time stamp each minute has taken (valid or not); -1: none yet.
        self.max_ts = array("q", [-1]) * MINUTES
        # Bumped whenever a minute changes, so a store read planned before the change is not
        # applied over it.
        self.versions = array("q", bytes(8 * MINUTES))
        self.left_out: dict[int, dict[str, int]] = {}  # minute -> reason -> count (sparse)
        self.doubtful = 0  # minute mask: a possible repeat arrived; read the minute back
        self.unknown = unknown  # minute mask: memory cannot have seen these minutes whole
        # Per minute, the first and the last valid point (time, measured value): the hour's
        # first and last values (energy counters) survive a minute read back from the store.
        self.first_ts = array("q", [-1]) * MINUTES
        self.first_values = array("d", bytes(8 * MINUTES))
        self.last_ts = array("q", [-1]) * MINUTES
        self.last_values = array("d", bytes(8 * MINUTES))

    # -- taking points ---------------------------------------------------------------------------
    def _take(self, ts_ns: int) -> int:
        """The minute of ``ts_ns`` when the point is certainly new there, else -1 (and the minute
        is marked doubtful)."""
        m = (ts_ns - self.start_ns) // MINUTE_NS
        self.versions[m] += 1
        if ts_ns <= self.max_ts[m]:
            self.doubtful |= 1 << m
            return -1
        self.max_ts[m] = ts_ns
        return m

    def add_valid(self, ts_ns: int, raw: float, corrected: float) -> bool:
        """Add a valid point; False when it may be a repeat (its minute is then doubtful)."""
        m = (ts_ns - self.start_ns) // MINUTE_NS  # _take, inlined: this runs once per reading
        self.versions[m] += 1
        if ts_ns <= self.max_ts[m]:
            self.doubtful |= 1 << m
            return False
        self.max_ts[m] = ts_ns
        self.n[m] += 1
        self.sum_raw[m] += raw
        self.sum_corrected[m] += corrected
        if self.first_ts[m] < 0:  # a new point is past the minute's latest: first only if none yet
            self.first_ts[m], self.first_values[m] = ts_ns, raw
        self.last_ts[m], self.last_values[m] = ts_ns, raw
        return True

    def leave_out(self, ts_ns: int, reason: str) -> bool:
        """Count a point left out, by reason; False when it may be a repeat."""
        m = self._take(ts_ns)
        if m < 0:
            return False
        counts = self.left_out.get(m)
        if counts is None:
            counts = self.left_out[m] = {}
        counts[reason] = counts.get(reason, 0) + 1
        return True

    def forget(self, mask: int) -> None:
        """Mark the minutes of ``mask`` unknown: read back whole from the store before the hour is
        judged (a read planned before this is not taken for them)."""
        for m in range(MINUTES):
            if mask >> m & 1:
                self.versions[m] += 1
        self.unknown |= mask

    def doubt(self, ts_ns: int) -> None:
        """Mark the minute of ``ts_ns`` for a read back (a value it depends on may have changed)."""
        m = (ts_ns - self.start_ns) // MINUTE_NS
        self.versions[m] += 1
        self.doubtful |= 1 << m

    # -- reading back ----------------------------------------------------------------------------
    @property
    def to_read(self) -> int:
        """Minutes to read back from the store before the hour can be judged."""
        return self.doubtful | self.unknown

    @property
    def complete(self) -> bool:
        return not (self.doubtful | self.unknown)

    def replace(self, mask: int, source: HourAccumulator, versions: Iterable[tuple[int, int]]) -> bool:
        """Take the minutes of ``mask`` from ``source`` (rebuilt from the store), unless one of
        them changed since the read was planned (``versions``: minute -> version then). Returns
        whether it took them."""
        if any(self.versions[m] != v for m, v in versions):
            return False
        for m in range(MINUTES):
            if not mask >> m & 1:
                continue
            self.n[m] = source.n[m]
            self.sum_raw[m] = source.sum_raw[m]
            self.sum_corrected[m] = source.sum_corrected[m]
            self.max_ts[m] = max(self.max_ts[m], source.max_ts[m])
            self.first_ts[m], self.first_values[m] = source.first_ts[m], source.first_values[m]
            self.last_ts[m], self.last_values[m] = source.last_ts[m], source.last_values[m]
            if m in source.left_out:
                self.left_out[m] = dict(source.left_out[m])
            else:
                self.left_out.pop(m, None)
            self.versions[m] += 1
        self.doubtful &= ~mask
        self.unknown &= ~mask
        return True

    # -- the verdict -----------------------------------------------------------------------------
    @property
    def valid_minutes(self) -> int:
        return MINUTES - list(self.n).count(0)

    @property
    def minute_mask(self) -> int:
        mask = 0
        for m, count in enumerate(self.n):
            if count:
                mask |= 1 << m
        return mask

    @property
    def points(self) -> int:
        return sum(self.n)

    @property
    def quadrants(self) -> int:
        mask = self.minute_mask
        return sum(1 for q in QUADRANT_MASKS if mask & q)

    def _mean(self, sums: array[float]) -> float | None:
        means = [s / c for s, c in zip(sums, self.n, strict=True) if c]
        return sum(means) / len(means) if means else None

    def mean_raw(self) -> float | None:
        """The mean of the minute means of the measured values."""
        return self._mean(self.sum_raw)

    def mean_corrected(self) -> float | None:
        """The mean of the minute means of the values corrected to the reference O2 (equal to
        :meth:`mean_raw` where no correction applies)."""
        return self._mean(self.sum_corrected)

    @property
    def first_value(self) -> float | None:
        """The measured value of the hour's first valid point."""
        return next((self.first_values[m] for m in range(MINUTES) if self.n[m]), None)

    @property
    def last_value(self) -> float | None:
        """The measured value of the hour's last valid point."""
        return next((self.last_values[m] for m in reversed(range(MINUTES)) if self.n[m]), None)

    def left_out_counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for counts in self.left_out.values():
            for reason, n in counts.items():
                total[reason] = total.get(reason, 0) + n
        return total

    def verdict(self) -> tuple[bool, str]:
        """(valid, reason): the reason names the empty quadrants and what was left out."""
        mask = self.minute_mask
        empty = [str(q + 1) for q, qmask in enumerate(QUADRANT_MASKS) if not mask & qmask]
        if not empty:
            return True, ""
        if not mask:
            reason = "no valid point"
        else:
            word = "quadrant" if len(empty) == 1 else "quadrants"
            reason = f"{word} {', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no valid point"
        left_out = self.left_out_counts()
        if left_out:
            parts = [f"{n} {_describe_reason(k)}" for k, n in sorted(left_out.items())]
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
    """The accumulator of one hour rebuilt from stored points (ts, value, flag), each time stamp
    once (as the store keeps them): for read-backs, imports and recomputation."""
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
        acc.leave_out(ts, flag)
        return
    if o2_reference is None or o2_by_ts is None:
        acc.add_valid(ts, value, value)
        return
    o2 = o2_by_ts.get(ts)
    if o2 is None or o2[1] not in VALID_FLAGS:
        acc.leave_out(ts, NO_O2)
        return
    if o2[0] >= 21.0 or o2[0] < 0.0:
        acc.leave_out(ts, O2_AT_21)
        return
    acc.add_valid(ts, value, value * (21.0 - o2_reference) / (21.0 - o2[0]))
