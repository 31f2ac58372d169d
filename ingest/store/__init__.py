"""Time-series stores behind one interface (:class:`eit.store.Store`), each kind one module.

``sqlite`` (the embedded default) and ``influxdb`` (v1 HTTP API, also served by InfluxDB 2.x and
3.x for compatibility) pass the same test suite; ``influxdb2`` writes through InfluxDB 2.x's native
API (token, org, bucket) and reads through its v1 compatibility API.

A kind's module defines its settings class (a :class:`StoreSettings`) and a factory, exported as
``KIND = Kind(Settings, build)``; :data:`STORE_KINDS` names each module and imports it only when
a configuration uses it (docs/plugins.md: adding a kind).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eit.plugins import Kinds
from eit.store import Store, StoreError, StoreUnavailable
from ingest.store.settings import StoreSettings

STORE_KINDS: Kinds[StoreSettings, Callable[[Any], Store]] = Kinds(
    "store",
    StoreSettings,
    {
        "sqlite": "ingest.store.sqlite",
        "influxdb": "ingest.store.influx",
        "influxdb2": "ingest.store.influx2",
    },
)


def open_store(settings: StoreSettings) -> Store:
    """Open the store of ``settings.kind`` with its settings."""
    return STORE_KINDS.get(settings.kind).build(settings)


__all__ = ["STORE_KINDS", "Store", "StoreError", "StoreSettings", "StoreUnavailable", "open_store"]
