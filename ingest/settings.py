"""The ingest's settings (section ``ingest`` of the server configuration)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IngestSettings:
    batch_max_readings: int = 5000
    # The longest a message waits for others to join its batch when the queue is idle.
    flush_interval_s: float = 0.005
    max_future_s: float = 300.0
    retry_max_s: float = 30.0
    stats_interval_s: float = 10.0  # the `platform` measurement (ingest/selfstats.py)
