"""``flag_abuse``: calibration, maintenance or stopped flags (C, M, F) on an unusual share of the
hours in which the plant runs (its energy meters, else its stack flow, say so).

An hour counts as flagged when ``flagged_minutes_per_hour`` or more of its minutes carry C, M or
F on an analyzer channel. The share of flagged running hours is tested against
``expected_share`` with an exact one-sided binomial test (scipy.stats.binomtest).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from alerts.integrity.findings import Finding, finding, p_score
from alerts.integrity.month import FLAG_CODES, DeviceMonth
from alerts.integrity.running import RunningHours, analyzer_channels
from alerts.integrity.thresholds import Thresholds

KIND = "flag_abuse"


def detect(
    month: DeviceMonth, th: Thresholds, run: RunningHours, notes: list[str] | None = None
) -> list[Finding]:
    """The findings; what could not be tested is said in ``notes``."""
    notes = [] if notes is None else notes
    t = th.flag_abuse
    channels = analyzer_channels(month)
    running_hours = int(run.running.sum())
    if not channels or running_hours < t.min_running_hours:
        notes.append(f"{KIND}: {running_hours} running hours (fewer than {t.min_running_hours}): not tested")
        return []
    by_flag: dict[str, np.ndarray] = {}
    for name in ("C", "M", "F"):
        minutes = np.zeros(month.minutes, dtype=bool)
        for c in channels:
            minutes |= c.flag == FLAG_CODES[name]
        by_flag[name] = minutes.reshape(-1, 60).sum(axis=1)
    any_flag = np.zeros(month.minutes, dtype=bool)
    for c in channels:
        any_flag |= np.isin(c.flag, (FLAG_CODES["C"], FLAG_CODES["M"], FLAG_CODES["F"]))
    flagged = run.running & (any_flag.reshape(-1, 60).sum(axis=1) >= t.flagged_minutes_per_hour)
    n_flagged = int(flagged.sum())
    share = n_flagged / running_hours
    if share < t.min_share:
        return []
    p_value = float(stats.binomtest(n_flagged, running_hours, t.expected_share, alternative="greater").pvalue)
    if p_value >= t.alpha:
        return []
    # Each flagged hour is counted under the flag most of its minutes carry.
    counts = np.column_stack([by_flag[f] for f in ("C", "M", "F")])
    main = np.argmax(counts, axis=1)
    hour_ns = month.grid_start_ns + np.arange(month.hours, dtype=np.int64) * 3_600_000_000_000
    return [
        finding(
            KIND,
            KIND,
            month.factory,
            month.device,
            None,
            month.month,
            p_score(p_value, t.alpha),
            {
                "flagged_hours": n_flagged,
                "running_hours": running_hours,
                "share": share,
                "expected": t.expected_share,
                "c_hours": int((flagged & (main == 0)).sum()),
                "m_hours": int((flagged & (main == 1)).sum()),
                "f_hours": int((flagged & (main == 2)).sum()),
                "running_source": run.source,
                "p_value": p_value,
                "alpha": t.alpha,
            },
            hour_ns[flagged].tolist(),
        )
    ]
