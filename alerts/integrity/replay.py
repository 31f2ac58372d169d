"""``replay``: a stretch of a device's minutes repeated verbatim, every channel to the last digit.

Each minute's values on every channel are hashed into one 64-bit word (the IEEE bits of each
value times an odd constant per channel, summed modulo 2^64). Minutes equal to the minute before
(a stopped plant, a stuck signal) are left out. Sorting the words puts coinciding minutes side by
side; the time between them is a candidate lag, and a replay makes one lag frequent. The most
frequent lags are checked run by run: the longest stretch of minutes equal at that lag, counting
only minutes that change, must reach ``min_run_minutes``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.integrity.findings import Finding, finding
from alerts.integrity.month import MINUTE_NS, BoolArray, DeviceMonth
from alerts.integrity.running import RunningHours
from alerts.integrity.thresholds import Thresholds
from eit.timeutil import ns_to_iso

KIND = "replay"
# Odd multipliers, one per channel (fixed: the hash needs no secret, only spread).
_MULTIPLIERS = np.array(
    [(0x9E3779B97F4A7C15 + 2 * k * 0xBF58476D1CE4E5B9) % 2**64 | 1 for k in range(64)], dtype=np.uint64
)
NAN_WORD = np.uint64(0x7FF8DEADBEEF0001)

Words = npt.NDArray[np.uint64]


def minute_words(month: DeviceMonth) -> tuple[Words, BoolArray]:
    """One word per minute over every channel, and whether the minute holds any value."""
    channels = list(month.channels.values())[: _MULTIPLIERS.shape[0]]
    words = np.zeros(month.minutes, dtype=np.uint64)
    held = np.zeros(month.minutes, dtype=bool)
    for k, c in enumerate(channels):
        present = ~np.isnan(c.value)
        bits = c.value.view(np.uint64).copy()
        bits[~present] = NAN_WORD
        words += bits * _MULTIPLIERS[k]
        words += c.flag.astype(np.uint64) * _MULTIPLIERS[k + 1]
        held |= present
    return words, held


def longest_run(equal: BoolArray, counted: BoolArray) -> tuple[int, int, int]:
    """The run of ``equal`` holding the most ``counted`` minutes: (start, length, counted)."""
    if not equal.any():
        return 0, 0, 0
    padded = np.concatenate(([False], equal, [False]))
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = changes[0::2], changes[1::2]
    cumulative = np.concatenate(([0], np.cumsum(counted)))
    counts = cumulative[ends] - cumulative[starts]
    best = int(np.argmax(counts))
    return int(starts[best]), int(ends[best] - starts[best]), int(counts[best])


def detect(month: DeviceMonth, th: Thresholds, run: RunningHours) -> list[Finding]:
    t = th.replay
    words, held = minute_words(month)
    changing = held.copy()
    changing[1:] &= words[1:] != words[:-1]
    index = np.flatnonzero(changing)
    if index.size < t.min_run_minutes:
        return []
    order = np.argsort(words[index], kind="stable")
    sorted_words, sorted_index = words[index][order], index[order]
    same = sorted_words[1:] == sorted_words[:-1]
    if not same.any():
        return []
    # Groups larger than max_group are values that recur by nature, not copies: left out.
    boundaries = np.flatnonzero(np.concatenate(([True], ~same, [True])))
    sizes = np.diff(boundaries)
    group_size = np.repeat(sizes, sizes)
    small = (group_size[1:] <= t.max_group) & same
    lags = sorted_index[1:][small] - sorted_index[:-1][small]
    lags = lags[lags > 0]
    if lags.size == 0:
        return []
    tally = np.bincount(lags)
    candidates = np.argsort(tally)[::-1][: t.candidates]
    best: tuple[int, int, int, int] | None = None  # lag, start, length, counted
    for lag in candidates.tolist():
        if lag <= 0 or tally[lag] < 2:
            continue
        equal = (words[lag:] == words[:-lag]) & held[lag:] & held[:-lag]
        start, length, counted = longest_run(equal, changing[lag:])
        if best is None or counted > best[3]:
            best = (lag, start, length, counted)
    if best is None or best[3] < t.min_run_minutes:
        return []
    lag, start, length, counted = best
    copy_start = start + lag  # the later stretch is the copy
    copy_ns = month.grid_start_ns + copy_start * MINUTE_NS
    source_ns = month.grid_start_ns + start * MINUTE_NS
    hour_ns = 3_600_000_000_000
    first_hour = copy_ns - copy_ns % hour_ns
    last_ns = copy_ns + (length - 1) * MINUTE_NS
    hours = list(range(first_hour, last_ns - last_ns % hour_ns + 1, hour_ns))
    return [
        finding(
            KIND,
            KIND,
            month.factory,
            month.device,
            None,
            month.month,
            counted / t.min_run_minutes,
            {
                "minutes": int(length),
                "changing_minutes": int(counted),
                "lag_minutes": int(lag),
                "lag_hours": round(lag / 60, 2),
                "copy_start": ns_to_iso(copy_ns),
                "source_start": ns_to_iso(source_ns),
                "channels": len(month.channels),
            },
            hours,
        )
    ]
