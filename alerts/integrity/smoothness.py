"""``implausible_smoothness``: a signal smoother than its analyzer's own noise allows.

Roughness is the median absolute change from one running minute to the next (both minutes
valid, the plant running). Against the device's own month: days whose roughness falls below
``day_ratio`` of the month's median day. Against similar devices (the same parameter across the
town): the month's relative roughness (roughness / median level) below ``peer_ratio`` of the
peers' median; that part runs once every device of the period has been read
(:func:`peer_findings`), on summaries of a few numbers per device.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alerts.integrity.findings import Finding, finding
from alerts.integrity.month import MINUTES_PER_HOUR, ChannelMinutes, DeviceMonth, row_quantile
from alerts.integrity.running import RunningHours, analyzer_channels, channel_of
from alerts.integrity.thresholds import Thresholds

KIND = "implausible_smoothness"
MINUTES_PER_DAY = 1440


@dataclass(frozen=True, slots=True)
class Roughness:
    """A channel's month in a few numbers, kept for the comparison with its peers."""

    factory: str
    device: str
    channel: str
    parameter: str
    unit: str
    month: str
    relative: float  # median |change| / median level over running minutes


def _channels(month: DeviceMonth) -> list[ChannelMinutes]:
    chosen = analyzer_channels(month)
    flow = channel_of(month, "flow")
    return [*chosen, flow] if flow is not None else chosen


def detect(month: DeviceMonth, th: Thresholds, run: RunningHours) -> tuple[list[Finding], list[Roughness]]:
    t = th.implausible_smoothness
    running_minutes = np.repeat(run.running, MINUTES_PER_HOUR)
    found: list[Finding] = []
    summaries: list[Roughness] = []
    days = month.minutes // MINUTES_PER_DAY
    for c in _channels(month):
        v = c.value
        step = np.abs(np.diff(v))
        usable = ~np.isnan(step) & running_minutes[1:] & running_minutes[:-1]
        if usable.sum() < t.min_running_minutes_per_day:
            continue
        level = float(np.median(np.abs(v[1:][usable])))
        month_roughness = float(np.median(step[usable]))
        if level > 0:
            summaries.append(
                Roughness(
                    month.factory,
                    month.device,
                    c.channel,
                    c.parameter,
                    c.unit,
                    month.month,
                    month_roughness / level,
                )
            )
        if days < 2:
            continue
        cut = days * MINUTES_PER_DAY - 1
        day_steps = np.where(usable[:cut], step[:cut], np.nan)
        day_steps = np.concatenate((day_steps, [np.nan])).reshape(days, MINUTES_PER_DAY)
        counted = (~np.isnan(day_steps)).sum(axis=1)
        enough = counted >= t.min_running_minutes_per_day
        if enough.sum() < 2 * t.min_days:
            continue
        per_day = row_quantile(np.where(enough[:, None], day_steps, 0.0), 0.5)
        typical = float(np.median(per_day[enough]))
        if typical <= 0:
            continue
        smooth = enough & (per_day < t.day_ratio * typical)
        if int(smooth.sum()) < t.min_days:
            continue
        hours = [
            month.grid_start_ns + (d * 24 + h) * 3_600_000_000_000
            for d in np.flatnonzero(smooth).tolist()
            for h in range(24)
        ]
        found.append(
            finding(
                KIND,
                "smooth_days",
                month.factory,
                month.device,
                c.channel,
                month.month,
                float(smooth.sum()) / t.min_days,
                {
                    "days": int(smooth.sum()),
                    "ratio": t.day_ratio,
                    "day_roughness": float(np.median(per_day[smooth])),
                    "month_roughness": typical,
                    "unit": c.unit,
                    "days_tested": int(enough.sum()),
                },
                hours,
            )
        )
    return found, summaries


def peer_findings(summaries: Sequence[Roughness], th: Thresholds) -> list[Finding]:
    """Months out of line with every similar analyzer (the same parameter) of the period."""
    t = th.implausible_smoothness
    groups: dict[str, list[Roughness]] = defaultdict(list)
    for s in summaries:
        groups[s.parameter].append(s)
    found: list[Finding] = []
    for members in groups.values():
        if len(members) < t.min_peers + 1:
            continue
        values = np.array([m.relative for m in members])
        for k, m in enumerate(members):
            peers = np.delete(values, k)
            median = float(np.median(peers))
            if median <= 0 or m.relative >= t.peer_ratio * median:
                continue
            found.append(
                finding(
                    KIND,
                    "smooth_peers",
                    m.factory,
                    m.device,
                    m.channel,
                    m.month,
                    t.peer_ratio * median / max(m.relative, 1e-12),
                    {
                        "roughness": m.relative,
                        "peer_median": median,
                        "peers": len(peers),
                        "ratio": t.peer_ratio,
                    },
                    [],
                )
            )
    return found
