"""The ingest's settings (section ``ingest`` of the server configuration)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from eit.bounds import MAX_FUTURE_S


class DeadLetterSettings(BaseModel):
    """``ingest: {dead_letters: {max_per_factory, retention_days}}`` (ingest/deadletters.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    # The dead letters seen longest ago go first; unregistered senders share one allowance.
    max_per_factory: int = Field(10_000, ge=1)
    retention_days: float = Field(30.0, gt=0)


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    batch_max_readings: int = Field(5000, ge=1)
    # The longest a message waits for others to join its batch when the queue is idle.
    flush_interval_s: float = Field(0.005, gt=0)
    # Scans stamped further ahead of the server clock are dead-lettered (future_timestamp).
    max_future_s: float = Field(MAX_FUTURE_S, ge=0)
    retry_max_s: float = Field(30.0, gt=0)
    stats_interval_s: float = Field(10.0, gt=0)  # the `platform` measurement (ingest/selfstats.py)
    # How many dead letters each factory keeps, and for how long (ingest/deadletters.py).
    dead_letters: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
