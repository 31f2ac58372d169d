"""``limit_hugging``: valid hourly averages piling up just below the limit with a deficit above.

A density discontinuity test at the limit (McCrary 2008): an honest analyzer's hourly averages
have a density that passes the limit smoothly, whatever its shape; tuning or editing makes it
jump down there. The log-density just below and just above the limit is estimated from the
device's own histogram with a Poisson regression of the bin counts on the distance to the limit
on each side (log-linear, triangular kernel weights, fitted by iteratively reweighted least
squares, sandwich variances). The jump's z statistic gives a one-sided normal p-value. The
bandwidth follows the device's own spread (a multiple of its robust standard deviation), so a
narrow distribution is judged at its own scale; both sides share it, so the curvature of a
smooth density biases both estimates alike and cancels from the jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from alerts.integrity.findings import Finding, finding, p_score
from alerts.integrity.month import BoolArray, DeviceMonth, FloatArray, row_quantile
from alerts.integrity.running import RunningHours, channel_of
from alerts.integrity.thresholds import HuggingThresholds, Thresholds

KIND = "limit_hugging"
PSEUDO_COUNT = 0.25  # per bin: keeps an empty side's fit finite (its variance stays large)


@dataclass(frozen=True, slots=True)
class HuggingTest:
    bandwidth: float
    hours_below: int
    hours_above: int
    density_ratio: float  # density just above the limit / just below it
    z: float
    p_value: float


def _side(distance: FloatArray, counts: FloatArray, weights: FloatArray) -> tuple[float, float] | None:
    """Intercept (log expected count at the limit) of a kernel-weighted log-linear Poisson fit,
    and its sandwich variance; None when the fit does not converge."""
    design = np.column_stack((np.ones_like(distance), distance))
    coef = np.array([math.log(counts.mean()), 0.0])
    for _ in range(100):
        mu = np.exp(np.clip(design @ coef, -50.0, 50.0))
        gradient = design.T @ (weights * (counts - mu))
        information = design.T @ (design * (weights * mu)[:, None])
        try:
            delta = np.linalg.solve(information, gradient)
        except np.linalg.LinAlgError:
            return None
        coef = coef + delta
        if np.max(np.abs(delta)) < 1e-9:
            mu = np.exp(np.clip(design @ coef, -50.0, 50.0))
            a = design.T @ (design * (weights * mu)[:, None])
            b = design.T @ (design * (weights**2 * mu)[:, None])
            a_inv = np.linalg.inv(a)
            return float(coef[0]), float((a_inv @ b @ a_inv)[0, 0])
    return None


def hugging_test(ratios: FloatArray, t: HuggingThresholds) -> HuggingTest | None:
    """The test on valid hourly averages given as ratios of the limit; None when too few hours
    lie near the limit to test."""
    if ratios.size == 0:
        return None
    spread = 1.4826 * float(np.median(np.abs(ratios - np.median(ratios))))
    h = min(max(t.bandwidth_sd * spread, t.min_bandwidth), t.max_bandwidth)
    width = h / t.bins_per_side
    below = int(((ratios >= 1.0 - h) & (ratios < 1.0)).sum())
    above = int(((ratios >= 1.0) & (ratios < 1.0 + h)).sum())
    if below + above < t.min_hours_near:
        return None
    edges = 1.0 + width * np.arange(-t.bins_per_side, t.bins_per_side + 1)
    counts, _ = np.histogram(ratios, edges)
    centres = (edges[:-1] + edges[1:]) / 2 - 1.0
    weights = 1.0 - np.abs(centres) / h
    left, right = centres < 0, centres > 0
    below_fit = _side(centres[left], counts[left] + PSEUDO_COUNT, weights[left])
    above_fit = _side(centres[right], counts[right] + PSEUDO_COUNT, weights[right])
    if below_fit is None or above_fit is None:
        return None
    (a_left, v_left), (a_right, v_right) = below_fit, above_fit
    jump = a_right - a_left
    z = jump / math.sqrt(v_left + v_right)
    return HuggingTest(h, below, above, math.exp(jump), z, float(stats.norm.cdf(z)))


@dataclass(frozen=True, slots=True)
class EdgeTest:
    hours: int
    edges: int  # hours with both edges known
    sharp: int  # of them, dips
    p_value: float
    dip_hours: npt.NDArray[np.int64]
    rate_other: float  # the share of dips among the device's other hours


def _edge_steps(minutes: FloatArray, hours: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    """Per hour: the signed change across its entry and across its exit edge, each as a
    multiple of the 90th percentile of the absolute changes inside the hour (NaN: unknown)."""
    rows = minutes.reshape(-1, 60)
    inside = np.abs(np.diff(rows[hours], axis=1))
    typical = row_quantile(inside, 0.9)
    with np.errstate(all="ignore"):
        typical[((~np.isnan(inside)).sum(axis=1) < 30) | (typical <= 0)] = np.nan
        entry = (rows[hours, 0] - rows[hours - 1, 59]) / typical
        leaving = (rows[hours + 1, 0] - rows[hours, 59]) / typical
    return entry, leaving


def edge_test(
    minutes: FloatArray, near: BoolArray, others: BoolArray, t: HuggingThresholds, load: FloatArray | None
) -> EdgeTest | None:
    """Whether hours just below the limit were lowered as a block: a dip is an hour entered with
    a step down and left with a step up, each larger than ``edge_step`` times the 90th percentile
    of the minute changes inside it, while the load (the stack's flow) does not step at either
    edge. The share of dips among the hours just below the limit is compared with their share
    among the device's other hours by Fisher's exact test, one-sided: the device is its own
    reference, whatever its noise and its operation."""
    last = minutes.shape[0] // 60 - 1

    def dips_of(mask: BoolArray) -> tuple[npt.NDArray[np.int64], BoolArray, BoolArray]:
        hours = np.flatnonzero(mask)
        hours = hours[(hours > 0) & (hours < last)]
        entry, leaving = _edge_steps(minutes, hours)
        known = ~np.isnan(entry) & ~np.isnan(leaving)
        dips = known & (entry < -t.edge_step) & (leaving > t.edge_step)
        if load is not None:
            load_entry, load_leaving = _edge_steps(load, hours)
            steady = ~((np.abs(load_entry) > 1.0) | (np.abs(load_leaving) > 1.0))
            dips &= steady
        return hours, known, dips

    hours, known, dips = dips_of(near)
    _, known_other, dips_other = dips_of(others)
    n, n_other = int(known.sum()), int(known_other.sum())
    if n < t.min_edges or n_other < t.min_edges:
        return None
    k, k_other = int(dips.sum()), int(dips_other.sum())
    table = np.array([[k, n - k], [k_other, n_other - k_other]])
    p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
    rate_other = (k_other + 0.5) / (n_other + 1.0)
    return EdgeTest(int(hours.size), n, k, p_value, hours[dips], rate_other)


def detect(
    month: DeviceMonth, th: Thresholds, run: RunningHours, notes: list[str] | None = None
) -> list[Finding]:
    """The findings; what could not be tested is said in ``notes``."""
    notes = [] if notes is None else notes
    t = th.limit_hugging
    found: list[Finding] = []
    hour_ns = month.grid_start_ns + np.arange(month.hours, dtype=np.int64) * 3_600_000_000_000
    for p in month.pollutants.values():
        usable = p.valid & run.running & np.isfinite(p.corrected)
        just_below = usable & (p.corrected >= t.edge_band_from) & (p.corrected < 1.0)
        flow = channel_of(month, "flow")
        edges = edge_test(
            month.channels[p.channel].value,
            just_below,
            usable & ~just_below,
            t,
            flow.value if flow is not None else None,
        )
        if (
            edges is not None
            and edges.p_value < t.alpha
            and edges.sharp / edges.edges >= t.min_rate_ratio * edges.rate_other
        ):
            found.append(
                finding(
                    KIND,
                    "limit_hugging_edges",
                    month.factory,
                    month.device,
                    p.channel,
                    month.month,
                    p_score(edges.p_value, t.alpha),
                    {
                        "hours_below": edges.hours,
                        "below_from": t.edge_band_from,
                        "hours_tested": edges.edges,
                        "dips": edges.sharp,
                        "share": edges.sharp / edges.edges,
                        "expected": edges.rate_other,
                        "p_value": edges.p_value,
                        "alpha": t.alpha,
                    },
                    hour_ns[edges.dip_hours].tolist(),
                )
            )
            continue
        result = hugging_test(p.corrected[usable], t)
        if result is None:
            notes.append(
                f"{KIND} {p.channel}: fewer than {t.min_hours_near} valid hours near the limit:"
                " the distribution was not tested"
            )
            continue
        if result.p_value >= t.alpha or result.density_ratio > 1.0 - t.min_drop:
            continue
        near = usable & (p.corrected >= 1.0 - result.bandwidth) & (p.corrected < 1.0)
        found.append(
            finding(
                KIND,
                KIND,
                month.factory,
                month.device,
                p.channel,
                month.month,
                p_score(result.p_value, t.alpha),
                {
                    "hours_below": result.hours_below,
                    "hours_above": result.hours_above,
                    "below_from": round(1.0 - result.bandwidth, 3),
                    "above_to": round(1.0 + result.bandwidth, 3),
                    "density_ratio": result.density_ratio,
                    "drop_percent": round(100 * (1.0 - result.density_ratio)),
                    "z": result.z,
                    "p_value": result.p_value,
                    "alpha": t.alpha,
                    "valid_hours": int(usable.sum()),
                },
                hour_ns[near].tolist(),
            )
        )
    return found
