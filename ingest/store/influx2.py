"""InfluxDB 2.x with its native write API (``/api/v2/write``: token, organisation, bucket) through
influxdb-client, as an option beside the v1 API of :mod:`ingest.store.influx`.

The lines written are exactly the v1 store's (same measurement, tags, fields, nanosecond time), so
both stores hold the same data and the same dashboards read it. Reads use the server's v1
compatibility query API (``/query``, InfluxQL) with the same token, on the database that maps onto
the bucket (DBRP; InfluxDB 2.x maps a bucket's own name by default).

An unreachable server, 5xx, 408, 429, a refused token (401/403), a missing bucket and what else is
about the store raise :class:`StoreUnavailable`: the ingest keeps the readings unacknowledged and
retries, so nothing is lost while an operator fixes the token. Points the store refuses for
themselves (400, or 422 for a partial write: beyond the bucket's retention, a field type
conflict) raise :class:`StoreError` with the reason (the same table as the v1 store:
:func:`ingest.store.influx.write_refusal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from pydantic import Field, SecretStr, field_validator, model_validator

from eit.plugins import Kind
from eit.store import StoreUnavailable
from ingest.store.influx import WRITE_CHUNK_LINES, InfluxStore, check_url, write_refusal
from ingest.store.settings import StoreSettings


class Influx2Settings(StoreSettings):
    """``store: {kind: influxdb2, url, org, bucket, token, database, timeout_s}``: native writes
    with a token; reads through the v1 compatibility API on ``database`` (default: the bucket's
    own DBRP name)."""

    kind: Literal["influxdb2"] = "influxdb2"
    url: str = "http://localhost:8086"
    org: str
    bucket: str
    token: SecretStr
    database: str
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _database_defaults_to_the_bucket(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("database") is None:
            bucket = data.get("bucket")
            return {**data, "database": bucket if isinstance(bucket, str) else ""}
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_url(url)


class Influx2Store(InfluxStore):
    kind = "influxdb2"

    def __init__(
        self,
        url: str,
        org: str,
        bucket: str,
        token: str,
        *,
        database: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(url, database or bucket, timeout_s=timeout_s, create_database=False)
        self.org = org
        self.bucket = bucket
        self._session.headers["Authorization"] = f"Token {token}"
        self._client = InfluxDBClient(url=self.url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def write_lines(self, lines: Sequence[str]) -> None:
        for start in range(0, len(lines), WRITE_CHUNK_LINES):
            body = "\n".join(lines[start : start + WRITE_CHUNK_LINES])
            try:
                self._write_api.write(
                    bucket=self.bucket,
                    org=self.org,
                    record=body,
                    write_precision=WritePrecision.NS,  # type: ignore[arg-type]
                )
            except ApiException as exc:
                raise write_refusal(
                    int(exc.status or 0),
                    str(exc.body or exc.reason),
                    f"InfluxDB 2.x refused the write to bucket {self.bucket}",
                ) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise StoreUnavailable(f"InfluxDB at {self.url} cannot be reached: {exc}") from exc

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
        super().close()


def build(settings: Influx2Settings) -> Influx2Store:
    return Influx2Store(
        settings.url,
        settings.org,
        settings.bucket,
        settings.token.get_secret_value(),
        database=settings.database,
        timeout_s=settings.timeout_s,
    )


KIND = Kind(Influx2Settings, build)
