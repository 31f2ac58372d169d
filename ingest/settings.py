"""The ingest's settings (section ``ingest`` of the server configuration)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    batch_max_readings: int = Field(5000, ge=1)
    # The longest a message waits for others to join its batch when the queue is idle.
    flush_interval_s: float = Field(0.005, gt=0)
    max_future_s: float = Field(300.0, ge=0)
    retry_max_s: float = Field(30.0, gt=0)
    stats_interval_s: float = Field(10.0, gt=0)  # the `platform` measurement (ingest/selfstats.py)
