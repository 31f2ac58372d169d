"""The rules' settings (section ``rules`` of the server configuration)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RuleSettings:
    stale_after_s: float = 120.0
    check_interval_s: float = 5.0
    # A day (and a rolling window) is complete when this share of its hours is valid (POMS: 80 %).
    completeness: float = 0.8
    # Early warning at this fraction of a limit (0 turns it off).
    early_warning_fraction: float = 0.8
    # A running hour whose valid average already exceeds a 1-hour limit opens a provisional
    # exceedance once it holds this many valid minutes (the hour averages minute means).
    provisional_min_points: int = 10
    # An hour is closed (averaged, judged) this long after its end, to let in-flight data in.
    close_delay_s: float = 120.0
    # An exceedance clears only below limit x (1 - hysteresis).
    hysteresis: float = 0.05
    # Minimum duration: consecutive exceeded hours to open, compliant hours to resolve.
    open_after_hours: int = 1
    clear_after_hours: int = 1
    # A resolved alert whose condition returns within this time is reopened, not re-notified.
    flap_window_s: float = 3600.0
    # Sensor faults.
    flatline_s: float = 1800.0
    flatline_tolerance: float = 0.0
    spike_z: float = 8.0
    spike_window: int = 60
    stuck_s: float = 600.0
    fault_clear_s: float = 600.0
    # Maximum plausible change per minute, per parameter, in the channel's unit.
    rate_of_change: dict[str, float] = field(default_factory=dict)
    # An open alert nobody acknowledged goes one step up the officers' escalate_to chain after
    # this long (and again after each further period).
    escalate_after_s: float = 1800.0
