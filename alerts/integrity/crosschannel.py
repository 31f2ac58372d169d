"""``cross_channel``: the stack's flow inconsistent with the factory's energy use (only where the
factory has an energy meter).

- Disagreement: hours where the energy meters say the plant runs and the stack's flow says it
  is stopped, or the reverse, in runs of ``min_run_hours`` or more (start-ups and shutdowns make
  shorter ones), at least ``min_mismatch_hours`` of them.
- Correlation: over the hours both say it runs, flow should rise and fall with power:
  Spearman's rank correlation (scipy.stats.spearmanr), tested one-sided, where the power varies
  enough for a relation to show.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from alerts.integrity.findings import Finding, finding, p_score
from alerts.integrity.month import BoolArray, DeviceMonth, hourly_means
from alerts.integrity.running import RunningHours, channel_of, stack_running
from alerts.integrity.thresholds import Thresholds

KIND = "cross_channel"


def long_runs(mask: BoolArray, min_length: int) -> BoolArray:
    """The hours of ``mask`` that lie in runs of at least ``min_length``."""
    padded = np.concatenate(([False], mask, [False]))
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    out = np.zeros(mask.shape, dtype=bool)
    for start, end in zip(changes[0::2], changes[1::2], strict=True):
        if end - start >= min_length:
            out[start:end] = True
    return out


def detect(
    month: DeviceMonth, th: Thresholds, run: RunningHours, notes: list[str] | None = None
) -> list[Finding]:
    """The findings; what could not be tested is said in ``notes``."""
    notes = [] if notes is None else notes
    if month.power_kw is None or run.source != "energy meter":
        notes.append(f"{KIND}: no energy meter data for the factory: not tested")
        return []
    stack = stack_running(month, th.running)
    if stack is None:
        notes.append(f"{KIND}: no stack flow: not tested")
        return []
    t = th.cross_channel
    stack_on, stack_known = stack
    both = run.known & stack_known
    hour_ns = month.grid_start_ns + np.arange(month.hours, dtype=np.int64) * 3_600_000_000_000
    found: list[Finding] = []
    off_while_running = long_runs(both & run.running & ~stack_on, t.min_run_hours)
    on_while_stopped = long_runs(both & ~run.running & stack_on, t.min_run_hours)
    mismatch = off_while_running | on_while_stopped
    n_mismatch = int(mismatch.sum())
    if n_mismatch >= t.min_mismatch_hours:
        found.append(
            finding(
                KIND,
                "cross_mismatch",
                month.factory,
                month.device,
                None,
                month.month,
                n_mismatch / t.min_mismatch_hours,
                {
                    "mismatch_hours": n_mismatch,
                    "stack_off": int(off_while_running.sum()),
                    "stack_on": int(on_while_stopped.sum()),
                    "min_run": t.min_run_hours,
                    "hours_compared": int(both.sum()),
                },
                hour_ns[mismatch].tolist(),
            )
        )
    flow_channel = channel_of(month, "flow")
    assert flow_channel is not None  # stack_running found it
    flow, _ = hourly_means(flow_channel.value)
    on = both & run.running & stack_on & ~np.isnan(flow)
    if int(on.sum()) >= t.min_hours:
        power = month.power_kw[on]
        variation = float(np.std(power) / max(float(np.mean(power)), 1e-9))
        if variation >= t.min_power_variation:
            rho = float(stats.spearmanr(power, flow[on]).statistic)
            # One-sided: is the correlation below min_rank_correlation? Fisher's z of Spearman's
            # rho, with the variance 1.06 / (n - 3) of Fieller, Hartley and Pearson (1957).
            n = int(on.sum())
            z = (np.arctanh(min(rho, 0.999999)) - np.arctanh(t.min_rank_correlation)) * np.sqrt(
                (n - 3) / 1.06
            )
            p_value = float(stats.norm.cdf(z))
            if rho < t.min_rank_correlation and p_value < t.alpha:
                found.append(
                    finding(
                        KIND,
                        "cross_correlation",
                        month.factory,
                        month.device,
                        flow_channel.channel,
                        month.month,
                        p_score(p_value, t.alpha),
                        {
                            "rho": rho,
                            "p_value": p_value,
                            "hours": n,
                            "power_variation": variation,
                            "alpha": t.alpha,
                        },
                        hour_ns[on].tolist(),
                    )
                )
    return found
