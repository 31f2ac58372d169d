"""Whether the plant runs in each hour, and which channels are the analyzer's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alerts.integrity.month import BoolArray, ChannelMinutes, DeviceMonth, FloatArray, hourly_means
from alerts.integrity.thresholds import Running

# Parameters an extractive CEMS analyzer measures (flags on them leave the legal data out);
# flow and temperature have their own monitors.
NOT_ANALYZER = frozenset({"flow", "temperature"})


@dataclass(frozen=True, slots=True)
class RunningHours:
    running: BoolArray
    known: BoolArray  # hours where the source had data
    source: str  # "energy meter", "stack flow" or "analyzer data"


def channel_of(month: DeviceMonth, parameter: str) -> ChannelMinutes | None:
    return next((c for c in month.channels.values() if c.parameter == parameter), None)


def analyzer_channels(month: DeviceMonth) -> list[ChannelMinutes]:
    return [c for c in month.channels.values() if c.parameter not in NOT_ANALYZER]


def _above_share_of_p95(values: FloatArray, fraction: float) -> tuple[BoolArray, BoolArray]:
    known = ~np.isnan(values)
    if not known.any():
        return np.zeros(values.shape, dtype=bool), known
    reference = float(np.percentile(values[known], 95))
    return known & (values > fraction * reference), known


def running_hours(month: DeviceMonth, settings: Running) -> RunningHours:
    if month.power_kw is not None and np.count_nonzero(~np.isnan(month.power_kw)) >= 24:
        running, known = _above_share_of_p95(month.power_kw, settings.power_fraction)
        return RunningHours(running, known, "energy meter")
    flow = channel_of(month, "flow")
    if flow is not None and flow.valid.any():
        hourly, _ = hourly_means(flow.value)
        running, known = _above_share_of_p95(hourly, settings.flow_fraction)
        return RunningHours(running, known, "stack flow")
    held = np.zeros(month.hours, dtype=bool)
    for c in analyzer_channels(month):
        held |= c.valid.reshape(-1, 60).any(axis=1)
    return RunningHours(held, held, "analyzer data")


def stack_running(month: DeviceMonth, settings: Running) -> tuple[BoolArray, BoolArray] | None:
    """Whether the stack itself says the plant runs, from its flow: (running, known)."""
    flow = channel_of(month, "flow")
    if flow is None or not flow.valid.any():
        return None
    hourly, _ = hourly_means(flow.value)
    return _above_share_of_p95(hourly, settings.flow_fraction)
