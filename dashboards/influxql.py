"""InfluxQL queries as Grafana targets.

The Grafana Foundation SDK ships no InfluxDB query type, so this module supplies one: a raw InfluxQL
target for Grafana's InfluxDB data source (``rawQuery: true``), built like the SDK's own targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DATASOURCE_UID = "eit-influxdb"
DATASOURCE_TYPE = "influxdb"
DATASOURCE = DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

ResultFormat = Literal["time_series", "table"]


@dataclass
class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL target (Grafana's InfluxDB data source in InfluxQL mode)."""

    ref_id: str
    query: str
    result_format: ResultFormat = "time_series"
    alias: str = ""
    hide: bool = False

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "rawQuery": True,
            "query": self.query,
            "resultFormat": self.result_format,
        }
        if self.alias:
            payload["alias"] = self.alias
        if self.hide:
            payload["hide"] = True
        return payload


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder of an :class:`InfluxQLQuery`, in the style of the SDK's builders."""

    def __init__(self, ref_id: str, query: str) -> None:
        self._internal = InfluxQLQuery(ref_id, " ".join(query.split()))

    def build(self) -> cogvariants.Dataquery:
        return self._internal

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self
