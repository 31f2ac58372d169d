"""Sensor-fault rules on the stream of one channel: flatline, spike, stuck at the end of the
measuring range, rate of change.

Each check is O(1) per reading except the spike check, which keeps the last ``window`` valid
values sorted (bisect) and refreshes the median absolute deviation every few points.
Readings flagged C, M, D, F or B are not looked at (calibration gas is not a spike); T (above
range) is what the stuck rule looks for.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from operator import sub

NS_PER_S = 1_000_000_000
MAD_SCALE = 1.4826  # MAD x 1.4826 estimates the standard deviation of normal data
MAD_REFRESH = 8  # points between refreshes of the MAD


@dataclass(slots=True)
class FaultFinding:
    rule: str  # flatline, spike, stuck, rate
    raised: bool  # True: the condition holds; False: it has cleared
    params: dict[str, str]
    value: float | None = None
    bound: float | None = None


@dataclass(slots=True)
class FaultSettings:
    flatline_s: float
    flatline_tolerance: float
    spike_z: float
    spike_window: int
    stuck_s: float
    fault_clear_s: float
    rate_per_min: float | None
    range_min: float
    range_max: float


def _g(value: float) -> str:
    return f"{value:.4g}"


@dataclass(slots=True)
class FaultState:
    settings: FaultSettings
    last_ts: int = -1
    last_value: float = 0.0
    flat_since: int = -1
    flat_raised: bool = False
    stuck_since: int = -1
    stuck_raised: bool = False
    window: deque[float] = field(default_factory=deque)
    ordered: list[float] = field(default_factory=list)
    mad: float = 0.0
    since_mad: int = 0
    spike_ts: int = -1
    spike_raised: bool = False
    rate_ts: int = -1
    rate_raised: bool = False

    def check(
        self, ts: int, value: float, flag: str, channel: str, unit: str, out: list[FaultFinding]
    ) -> None:
        """Feed one reading (in time order); findings are appended to ``out``."""
        s = self.settings
        if ts <= self.last_ts:
            return  # late or repeated: the stream rules look at the live stream only
        at_top = flag == "T" or value >= s.range_max
        if at_top:
            if self.stuck_since < 0:
                self.stuck_since = ts
            elif not self.stuck_raised and ts - self.stuck_since >= s.stuck_s * NS_PER_S:
                self.stuck_raised = True
                out.append(
                    FaultFinding(
                        "stuck",
                        True,
                        {
                            "channel": channel,
                            "bound": _g(s.range_max),
                            "unit": unit,
                            "duration": f"{(ts - self.stuck_since) / NS_PER_S:.0f}",
                        },
                        value,
                        s.range_max,
                    )
                )
        elif flag in ("N", "S"):
            self.stuck_since = -1
            if self.stuck_raised:
                self.stuck_raised = False
                out.append(FaultFinding("stuck", False, {"channel": channel}))
        if flag not in ("N", "S"):
            return
        first = self.last_ts < 0
        previous_ts, previous = self.last_ts, self.last_value
        self.last_ts, self.last_value = ts, value
        if first:
            self.flat_since = ts
            self._remember(value)
            return
        # flatline
        if abs(value - previous) <= s.flatline_tolerance:
            if not self.flat_raised and ts - self.flat_since >= s.flatline_s * NS_PER_S:
                self.flat_raised = True
                out.append(
                    FaultFinding(
                        "flatline",
                        True,
                        {
                            "channel": channel,
                            "value": _g(value),
                            "unit": unit,
                            "duration": f"{(ts - self.flat_since) / NS_PER_S:.0f}",
                        },
                        value,
                    )
                )
        else:
            self.flat_since = ts
            if self.flat_raised:
                self.flat_raised = False
                out.append(FaultFinding("flatline", False, {"channel": channel}))
        # rate of change
        if s.rate_per_min is not None:
            per_min = abs(value - previous) / max((ts - previous_ts) / NS_PER_S, 1e-9) * 60.0
            if per_min > s.rate_per_min:
                self.rate_ts = ts
                if not self.rate_raised:
                    self.rate_raised = True
                    out.append(
                        FaultFinding(
                            "rate",
                            True,
                            {
                                "channel": channel,
                                "change": _g(per_min),
                                "unit": unit,
                                "limit": _g(s.rate_per_min),
                            },
                            per_min,
                            s.rate_per_min,
                        )
                    )
            elif self.rate_raised and ts - self.rate_ts >= s.fault_clear_s * NS_PER_S:
                self.rate_raised = False
                out.append(FaultFinding("rate", False, {"channel": channel}))
        # spike: robust z-score against the window before this point
        if len(self.ordered) >= s.spike_window // 2 and self.mad > 0:
            n = len(self.ordered)
            median = self.ordered[n // 2] if n % 2 else (self.ordered[n // 2 - 1] + self.ordered[n // 2]) / 2
            z = abs(value - median) / (MAD_SCALE * self.mad)
            if z > s.spike_z:
                self.spike_ts = ts
                if not self.spike_raised:
                    self.spike_raised = True
                    out.append(
                        FaultFinding(
                            "spike",
                            True,
                            {
                                "channel": channel,
                                "value": _g(value),
                                "unit": unit,
                                "median": _g(median),
                                "z": f"{z:.1f}",
                                "threshold": _g(s.spike_z),
                            },
                            value,
                        )
                    )
                return  # a spike does not enter the window it is judged against
        if self.spike_raised and ts - self.spike_ts >= s.fault_clear_s * NS_PER_S:
            self.spike_raised = False
            out.append(FaultFinding("spike", False, {"channel": channel}))
        self._remember(value)

    def _remember(self, value: float) -> None:
        window = self.window
        window.append(value)
        bisect.insort(self.ordered, value)
        if len(window) > self.settings.spike_window:
            old = window.popleft()
            del self.ordered[bisect.bisect_left(self.ordered, old)]
        self.since_mad += 1
        if self.since_mad >= MAD_REFRESH:
            self.since_mad = 0
            n = len(self.ordered)
            median = self.ordered[n // 2] if n % 2 else (self.ordered[n // 2 - 1] + self.ordered[n // 2]) / 2
            deviations = sorted(map(abs, map(sub, self.ordered, repeat(median))))  # in C, not a generator
            self.mad = deviations[n // 2] if n % 2 else (deviations[n // 2 - 1] + deviations[n // 2]) / 2
