"""The platform's InfluxDB as a Grafana data source: InfluxQL over the v1 HTTP API, which InfluxDB
1.x serves natively and InfluxDB 2.x / 3.x serve for compatibility (a database mapped onto a
bucket, and a v1 login or a token)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.influxql import DATASOURCE_TYPE, DATASOURCE_UID

DATASOURCE_NAME = "EIT InfluxDB"


@dataclass(frozen=True, slots=True)
class InfluxSource:
    url: str = "http://influxdb:8086"
    database: str = "eit"
    user: str | None = None
    # A file provisioning writes this as it is, so "$VAR" lets Grafana read it from its environment.
    password: str | None = None

    def model(self) -> dict[str, Any]:
        """The data source as Grafana's HTTP API and its provisioning files describe it (without
        the password, which Grafana keeps in secureJsonData and never returns)."""
        data: dict[str, Any] = {
            "uid": DATASOURCE_UID,
            "name": DATASOURCE_NAME,
            "type": DATASOURCE_TYPE,
            "access": "proxy",
            "url": self.url,
            "isDefault": True,
            "jsonData": {
                "version": "InfluxQL",
                "dbName": self.database,
                "httpMode": "GET",
                "timeInterval": "10s",
            },
        }
        if self.user is not None:
            data["user"] = self.user
        return data

    def secure(self) -> dict[str, str]:
        return {"password": self.password} if self.password is not None else {}
