"""A device-month as arrays: what the detectors read.

One stack device's clock minutes over one local calendar month (or the part of it a period
covers), per channel: the mean of the minute's valid points (NaN where it has none) and a flag
code; its clock hours per limited pollutant: the measured and the O2-corrected hourly average as a
ratio of the 1-hour limit, and whether the hour is valid; and the factory's power per hour, from
its energy meters. Memory is fixed by the month's length, never by the scan rate: 44,640 minutes
x 9 bytes per channel plus 744 hours x 26 bytes per pollutant (about 0.4 MiB per channel).

The grid starts at the clock hour at or before the month's first instant (UTC), so that each hour
is a row of 60 minutes; minutes outside the period are empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from eit.model import VALID_FLAGS

NS_PER_S: Final = 1_000_000_000
MINUTE_NS: Final = 60 * NS_PER_S
HOUR_NS: Final = 3600 * NS_PER_S
MINUTES_PER_HOUR: Final = 60
QUADRANT_MINUTES: Final = 15

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
CodeArray = npt.NDArray[np.uint8]

# Flag codes on the minute grid: 0 = no point at all; then the HJ 212 flags.
NO_DATA: Final = 0
FLAG_CODES: Final = {"N": 1, "S": 2, "C": 3, "M": 4, "F": 5, "D": 6, "T": 7, "B": 8}
VALID_CODES: Final = tuple(FLAG_CODES[f] for f in sorted(VALID_FLAGS))
CMF_CODES: Final = (FLAG_CODES["C"], FLAG_CODES["M"], FLAG_CODES["F"])


@dataclass(slots=True)
class ChannelMinutes:
    """One channel's minutes: ``value`` the mean of the minute's valid points (NaN: none),
    ``flag`` the minute's code (a valid code when it holds a valid point, else the flag of its
    last point, 0 when it holds none)."""

    channel: str
    parameter: str
    unit: str
    value: FloatArray
    flag: CodeArray

    @property
    def valid(self) -> BoolArray:
        return ~np.isnan(self.value)


@dataclass(slots=True)
class PollutantHours:
    """A pollutant's clock hours against its 1-hour limit: ``raw`` the measured and
    ``corrected`` the compared average (O2-corrected where its standard says so), both as a
    ratio of the limit in force (NaN where the hour has no average or no limit); ``valid`` the
    hour's verdict; ``corrected_to_o2`` the reference O2 (None: judged at the O2 measured)."""

    channel: str
    parameter: str
    unit: str
    raw: FloatArray
    corrected: FloatArray
    valid: BoolArray
    corrected_to_o2: float | None
    source: str  # "store" (the engine's hourly points) or "minutes" (computed here)


@dataclass(slots=True)
class DeviceMonth:
    factory: str
    device: str
    preset: str | None
    month: str  # "2026-11", the local calendar month
    grid_start_ns: int
    first_ns: int  # the period's first instant inside the grid
    end_ns: int  # the period's end (exclusive)
    channels: dict[str, ChannelMinutes]
    pollutants: dict[str, PollutantHours] = field(default_factory=dict)
    power_kw: FloatArray | None = None  # the factory's mean power per hour (NaN: unknown)

    @property
    def minutes(self) -> int:
        return next(iter(self.channels.values())).value.shape[0] if self.channels else 0

    @property
    def hours(self) -> int:
        return self.minutes // MINUTES_PER_HOUR

    def hour_start_ns(self, hour: int) -> int:
        return self.grid_start_ns + hour * HOUR_NS

    def nbytes(self) -> int:
        """The arrays' memory: the bound the docs state per device."""
        total = sum(c.value.nbytes + c.flag.nbytes for c in self.channels.values())
        total += sum(p.raw.nbytes + p.corrected.nbytes + p.valid.nbytes for p in self.pollutants.values())
        return total + (self.power_kw.nbytes if self.power_kw is not None else 0)


def empty_minutes(channel: str, parameter: str, unit: str, minutes: int) -> ChannelMinutes:
    return ChannelMinutes(
        channel,
        parameter,
        unit,
        np.full(minutes, np.nan, dtype=np.float64),
        np.zeros(minutes, dtype=np.uint8),
    )


def add_points(
    grid: ChannelMinutes,
    sums: FloatArray,
    counts: npt.NDArray[np.int64],
    grid_start_ns: int,
    ts_ns: npt.NDArray[np.int64],
    values: FloatArray,
    codes: CodeArray,
) -> None:
    """Fold points (in time order) into a channel's running sums; :func:`finish_minutes` turns
    the sums into minute means. Called once per chunk read from the store."""
    if ts_ns.size == 0:
        return
    minute = (ts_ns - grid_start_ns) // MINUTE_NS
    inside = (minute >= 0) & (minute < grid.flag.shape[0])
    minute, values, codes = minute[inside], values[inside], codes[inside]
    valid = np.isin(codes, VALID_CODES)
    invalid = ~valid
    # The last invalid flag of each minute (fancy assignment keeps the last of repeated indices).
    holds_valid = counts > 0
    grid.flag[minute[invalid]] = np.where(
        holds_valid[minute[invalid]], grid.flag[minute[invalid]], codes[invalid]
    )
    vm = minute[valid]
    sums += np.bincount(vm, weights=values[valid], minlength=sums.shape[0])
    counts += np.bincount(vm, minlength=counts.shape[0])
    grid.flag[vm] = codes[valid]


def finish_minutes(grid: ChannelMinutes, sums: FloatArray, counts: npt.NDArray[np.int64]) -> None:
    held = counts > 0
    grid.value[held] = sums[held] / counts[held]


def hourly_means(minutes: FloatArray) -> tuple[FloatArray, BoolArray]:
    """The mean of each clock hour's valid minutes (NaN: none) and whether each of its four
    15-minute quadrants holds one (the engine's validity rule, alerts/windows.py)."""
    rows = minutes.reshape(-1, MINUTES_PER_HOUR)
    held = ~np.isnan(rows)
    n = held.sum(axis=1)
    total = np.where(held, rows, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    quadrants: BoolArray = np.all(np.any(held.reshape(rows.shape[0], 4, QUADRANT_MINUTES), axis=2), axis=1)
    return mean.astype(np.float64), quadrants


def corrected_minutes(value: FloatArray, o2: FloatArray | None, o2_reference: float | None) -> FloatArray:
    """Minute values corrected to the reference O2 with the same minute's O2 (C x (21 - ref) /
    (21 - O2)); NaN where no valid O2 below 21 % exists. Unchanged where no correction applies."""
    if o2_reference is None:
        return value
    if o2 is None:
        return np.full_like(value, np.nan)
    usable = (o2 < 21.0) & (o2 >= 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(usable, value * (21.0 - o2_reference) / (21.0 - o2), np.nan)


def row_quantile(rows: FloatArray, q: float) -> FloatArray:
    """The ``q`` quantile of each row, ignoring NaN (linear interpolation, as numpy's default);
    NaN for a row without values. One sort of the whole array: numpy's nanpercentile along an
    axis loops over the rows in Python."""
    ordered = np.sort(rows, axis=1)  # NaN sort last
    n = (~np.isnan(rows)).sum(axis=1)
    position = q * np.maximum(n - 1, 0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(n - 1, 0))
    fraction = position - low
    index = np.arange(rows.shape[0])
    out: FloatArray = (ordered[index, low] * (1.0 - fraction) + ordered[index, high] * fraction).astype(
        np.float64
    )
    out[n == 0] = np.nan
    return out
