"""Time-series stores behind one interface (:class:`eit.store.Store`).

``sqlite`` (the embedded default) and ``influxdb`` (v1 HTTP API, also served by InfluxDB 2.x and
3.x for compatibility) pass the same test suite; ``influxdb2`` writes through InfluxDB 2.x's native
API (token, org, bucket) and reads through its v1 compatibility API.
"""

from __future__ import annotations

from eit.store import Store, StoreError, StoreUnavailable
from ingest.store.settings import StoreSettings


def open_store(settings: StoreSettings) -> Store:
    """Open the store ``settings.kind`` names."""
    if settings.kind == "sqlite":
        from ingest.store.sqlite import SqliteStore

        assert settings.path is not None
        return SqliteStore(settings.path)
    if settings.kind == "influxdb":
        from ingest.store.influx import InfluxStore

        return InfluxStore(
            settings.url,
            settings.database,
            username=settings.username,
            password=settings.password,
            retention_policy=settings.retention_policy,
            timeout_s=settings.timeout_s,
        )
    if settings.kind == "influxdb2":
        from ingest.store.influx2 import Influx2Store

        assert settings.org and settings.bucket and settings.token, "checked by eit.config"
        return Influx2Store(
            settings.url,
            settings.org,
            settings.bucket,
            settings.token,
            database=settings.database,
            timeout_s=settings.timeout_s,
        )
    raise ValueError(f"unknown store kind {settings.kind!r}")


__all__ = ["Store", "StoreError", "StoreUnavailable", "open_store"]
