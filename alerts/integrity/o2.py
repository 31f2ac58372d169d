"""``o2_manipulation``: reported O2 that moves with the pollutant so that the compared value
stays low.

- A step: O2 lower (or, for a limit judged at the O2 measured, higher: dilution, tested against
  the concentration brought to the device's usual O2) in exactly the hours when the pollutant is
  high, beyond the smooth relation of the two in the device's other
  hours. Ordinary least squares of hourly O2 on the hourly concentration (linear and quadratic
  terms) plus an indicator of the hours above a split; the step's Student t test, one-sided,
  Bonferroni-corrected over the splits tried.
- A floor: O2 below a floor for the source (thresholds, by preset) in a large share of the
  running hours.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from alerts.integrity.findings import Finding, finding, p_score
from alerts.integrity.month import BoolArray, DeviceMonth, FloatArray, hourly_means
from alerts.integrity.running import RunningHours, channel_of
from alerts.integrity.thresholds import Thresholds

KIND = "o2_manipulation"


def step_test(
    x: FloatArray, o2: FloatArray, splits: tuple[float, ...], direction: int, min_above: int, min_below: int
) -> tuple[float, float, float, BoolArray] | None:
    """The most significant step of ``o2`` at a split of ``x`` in ``direction`` (-1 down, +1 up):
    (Bonferroni p, step, split, the hours above it); None when no split has enough hours."""
    best: tuple[float, float, float, BoolArray] | None = None
    tried = 0
    n = x.shape[0]
    for split in splits:
        above = x > split
        n_above = int(above.sum())
        if n_above < min_above or n - n_above < min_below:
            continue
        tried += 1
        design = np.column_stack((np.ones(n), x, x * x, above.astype(np.float64)))
        coef, _, rank, _ = np.linalg.lstsq(design, o2, rcond=None)
        if rank < design.shape[1]:
            continue
        residual = o2 - design @ coef
        dof = n - design.shape[1]
        variance = float(residual @ residual) / dof
        try:
            cov = variance * np.linalg.inv(design.T @ design)
        except np.linalg.LinAlgError:
            continue
        se = float(np.sqrt(max(cov[3, 3], 1e-300)))
        t_stat = direction * float(coef[3]) / se
        p = float(stats.t.sf(t_stat, dof))
        if best is None or p < best[0]:
            best = (p, float(coef[3]), split, above)
    if best is None:
        return None
    return (min(1.0, best[0] * tried), best[1], best[2], best[3])


def detect(
    month: DeviceMonth, th: Thresholds, run: RunningHours, notes: list[str] | None = None
) -> list[Finding]:
    """The findings; what could not be tested is said in ``notes``."""
    notes = [] if notes is None else notes
    o2_channel = channel_of(month, "o2")
    if o2_channel is None:
        notes.append(f"{KIND}: no O2 channel: not tested")
        return []
    t = th.o2_manipulation
    o2, _ = hourly_means(o2_channel.value)
    firing = run.running & ~np.isnan(o2) & (o2 < th.running.o2_firing_max_percent)
    hour_ns = month.grid_start_ns + np.arange(month.hours, dtype=np.int64) * 3_600_000_000_000
    found: list[Finding] = []
    floor = th.o2_floor(month.preset)
    n_firing = int(firing.sum())
    if floor is not None and n_firing >= t.min_hours_below:
        low = firing & (o2 < floor)
        share = float(low.sum()) / n_firing
        if share >= t.floor_share:
            found.append(
                finding(
                    KIND,
                    "o2_floor",
                    month.factory,
                    month.device,
                    o2_channel.channel,
                    month.month,
                    share / t.floor_share,
                    {
                        "floor": floor,
                        "hours_below": int(low.sum()),
                        "running_hours": n_firing,
                        "share": share,
                        "preset": month.preset or "",
                        "median_o2": float(np.median(o2[firing])),
                    },
                    hour_ns[low].tolist(),
                )
            )
    for p in month.pollutants.values():
        if p.corrected_to_o2 is not None:
            x, direction, variant = p.raw, -1, "o2_step"
        else:
            # What the measured value would be at the device's usual O2: dilution air lowers the
            # measured value and raises O2 together, and leaves this unchanged.
            usual = float(np.median(o2[firing])) if n_firing else 0.0
            with np.errstate(invalid="ignore", divide="ignore"):
                x = p.raw * (21.0 - usual) / (21.0 - o2)
            direction, variant = 1, "o2_dilution"
        ok = firing & np.isfinite(x)
        result = step_test(x[ok], o2[ok], t.splits, direction, t.min_hours_above, t.min_hours_below)
        if result is None:
            notes.append(
                f"{KIND} {p.channel}: no split with {t.min_hours_above} hours above and"
                f" {t.min_hours_below} below it among {int(ok.sum())} firing hours: not tested"
            )
            continue
        p_value, step, split, above = result
        if p_value >= t.alpha or direction * step < t.min_step_percent:
            continue
        hours = hour_ns[ok][above]
        found.append(
            finding(
                KIND,
                variant,
                month.factory,
                month.device,
                p.channel,
                month.month,
                p_score(p_value, t.alpha),
                {
                    "step": abs(step),
                    "p_value": p_value,
                    "split": split,
                    "hours_above": int(above.sum()),
                    "hours_tested": int(ok.sum()),
                    "o2_mean_above": float(np.mean(o2[ok][above])),
                    "o2_mean_below": float(np.mean(o2[ok][~above])),
                    "alpha": t.alpha,
                },
                hours.tolist(),
            )
        )
    return found
