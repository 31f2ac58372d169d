"""The rules' settings (section ``rules`` of the server configuration)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _positive_rate(value: float) -> float:
    if value <= 0:
        raise ValueError("expected a positive number (change per minute)")
    return value


class RuleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    stale_after_s: float = Field(120.0, gt=0)
    check_interval_s: float = Field(5.0, gt=0)
    # A day (and a rolling window) is complete when this share of its hours is valid (POMS: 80 %).
    completeness: float = Field(0.8, ge=0, le=1)
    # Early warning at this fraction of a limit (0 turns it off).
    early_warning_fraction: float = Field(0.8, ge=0, le=1)
    # A running hour whose valid average already exceeds a 1-hour limit opens a provisional
    # exceedance once it holds this many valid minutes (the hour averages minute means).
    provisional_min_points: int = Field(10, ge=1)
    # An hour is closed (averaged, judged) this long after its end, to let in-flight data in.
    close_delay_s: float = Field(120.0, ge=0)
    # An exceedance clears only below limit x (1 - hysteresis).
    hysteresis: float = Field(0.05, ge=0, le=0.5)
    # Minimum duration: consecutive exceeded hours to open, compliant hours to resolve.
    open_after_hours: int = Field(1, ge=1)
    clear_after_hours: int = Field(1, ge=1)
    # A resolved alert whose condition returns within this time is reopened, not re-notified.
    flap_window_s: float = Field(3600.0, ge=0)
    # Sensor faults.
    flatline_s: float = Field(1800.0, gt=0)
    flatline_tolerance: float = Field(0.0, ge=0)
    spike_z: float = Field(8.0, gt=0)
    spike_window: int = Field(60, ge=5)
    stuck_s: float = Field(600.0, gt=0)
    fault_clear_s: float = Field(600.0, gt=0)
    # Maximum plausible change per minute, per parameter, in the channel's unit.
    rate_of_change: dict[str, Annotated[float, AfterValidator(_positive_rate)]] = Field(default_factory=dict)
    # An open alert nobody acknowledged goes one step up the officers' escalate_to chain after
    # this long (and again after each further period).
    # The public state of a factory shows "no data" after this long without a reading.
    public_no_data_after_s: float = Field(900.0, gt=0)
    escalate_after_s: float = Field(1800.0, gt=0)
    # The town indicators of the running and the previous month (and their years) are recomputed
    # from the store this often (alerts/indicators_job.py).
    indicators_interval_s: float = Field(3600.0, gt=0)
    # The duties job (alerts/duties/job.py): how often it infers malfunctions, opens the cases of
    # missed deadlines, refreshes the accepted shutdown windows and, once a month, runs the
    # integrity analytics; 0 turns it off.
    duties_interval_s: float = Field(3600.0, ge=0)
