"""Settings of the time-series store (section ``store`` of the server configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STORE_KINDS = ("sqlite", "influxdb", "influxdb2")


@dataclass(frozen=True, slots=True)
class StoreSettings:
    kind: str
    path: Path | None = None  # sqlite
    url: str = "http://localhost:8086"  # influxdb
    database: str = "eit"
    username: str | None = None
    password: str | None = None
    retention_policy: str | None = None
    timeout_s: float = 10.0
    org: str | None = None  # influxdb2: native writes (/api/v2/write) with a token
    bucket: str | None = None
    token: str | None = None

    def __repr__(self) -> str:
        return (
            f"StoreSettings(kind={self.kind!r}, path={self.path}, url={self.url!r},"
            f" database={self.database!r})"
        )
