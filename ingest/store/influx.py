"""InfluxDB over its v1 HTTP API: ``/write`` (line protocol) and ``/query`` (InfluxQL).

InfluxDB 1.x serves this API natively; InfluxDB 2.x and 3.x serve it for compatibility (with a
database/retention-policy mapping onto a bucket), so one store speaks to all three.

Schema: measurement ``readings``; tags ``factory``, ``device``, ``channel``; fields ``value``
(float), ``flag`` (string) and ``seq`` (integer). InfluxDB keys a point by measurement, tag set
and timestamp, so writing the same reading twice overwrites it: writes are idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import requests
from pydantic import Field, SecretStr, field_validator

from eit.model import FLAGS, Reading
from eit.plugins import Kind
from eit.signing import RESULTS
from eit.store import (
    Bucket,
    FieldValue,
    Point,
    StoreError,
    StoreUnavailable,
    check_aggregate,
    check_points,
)
from eit.storeschema import Readings
from ingest.store.settings import StoreSettings


class InfluxSettings(StoreSettings):
    """``store: {kind: influxdb, url, database, username, password, retention_policy, timeout_s}``:
    the v1 HTTP API (InfluxDB 1.x natively, 2.x and 3.x for compatibility)."""

    kind: Literal["influxdb"] = "influxdb"
    url: str = "http://localhost:8086"
    database: str = "eit"
    username: str | None = None
    password: SecretStr | None = None
    retention_policy: str | None = None
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_url(url)


# What InfluxDB says when it refuses part of a write, and what it means (docs/architecture.md,
# "Dead letter or wait"): the points' own fault (a dead letter once isolated) or the store's (an
# outage: the readings wait). Matched in the error text of InfluxDB 1.x and 2.x alike.
_POINT_REFUSALS = (
    ("beyond retention policy", "beyond_retention"),
    ("field type conflict", "field_type_conflict"),
)
_STORE_REFUSALS = (
    # The store refuses new series until an operator raises its limit: any reading may be next.
    "max-values-per-tag limit exceeded",
    "max-series-per-database limit exceeded",
    "database not found",
    "retention policy not found",
    "no space left on device",
    "disk quota exceeded",
)
UNAVAILABLE_STATUS = frozenset({401, 403, 404, 408, 429})
_DROPPED = re.compile(r"dropped=(\d{1,9})")


def write_refusal(status: int, text: str, what: str) -> StoreError | StoreUnavailable:
    """The error for a write InfluxDB answered with ``status`` and ``text``: StoreUnavailable
    for whatever is about the store (credentials, permissions, a missing database, a full disk,
    quota, series limits, 5xx), StoreError with its reason for what the points alone cause."""
    detail = f"{what}: {status} {text[:300]}"
    if status >= 500 or status in UNAVAILABLE_STATUS:
        return StoreUnavailable(detail)
    lowered = text.lower()
    if any(cause in lowered for cause in _STORE_REFUSALS):
        return StoreUnavailable(detail)
    dropped = _DROPPED.search(lowered)
    count = int(dropped.group(1)) if dropped else None
    for cause, reason in _POINT_REFUSALS:
        if cause in lowered:
            return StoreError(detail, reason, count)
    return StoreError(detail, dropped=count)


def check_url(url: str) -> str:
    """An InfluxDB base URL, without its trailing slash."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"'{url}' is not an http(s) URL")
    return url.rstrip("/")


MEASUREMENT = Readings.NAME
WRITE_CHUNK_LINES = 5000

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def _quote_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line_protocol(readings: Sequence[Reading]) -> Iterator[str]:
    """One line per reading (timestamps in nanoseconds)."""
    prefixes = _SERIES_PREFIXES
    flags = _FLAG_FIELDS
    for r in readings:
        key = (r.factory, r.device, r.channel)
        prefix = prefixes.get(key)
        if prefix is None:
            prefix = _series_prefix(key)
        value = r.value
        flag = flags.get(r.flag) or f",flag={_quote_string_field(r.flag)}"
        if r.verified:
            flag += _VERIFIED_FIELDS.get(r.verified) or f",verified={_quote_string_field(r.verified)}"
        if r.seq is None:
            yield f"{prefix}{value if type(value) is float else float(value)!r}{flag} {r.ts_ns}"
        else:
            yield f"{prefix}{value if type(value) is float else float(value)!r}{flag},seq={r.seq}i {r.ts_ns}"


# The start of a reading's line up to its value, per series: escaped once, not once a reading.
_SERIES_PREFIXES: dict[tuple[str, str, str], str] = {}
_SERIES_PREFIXES_MAX = 100_000
_FLAG_FIELDS = {flag: f",flag={_quote_string_field(flag)}" for flag in FLAGS}
_VERIFIED_FIELDS = {v: f",{Readings.VERIFIED}={_quote_string_field(v)}" for v in RESULTS if v}


def _series_prefix(key: tuple[str, str, str]) -> str:
    factory, device, channel = key
    prefix = f"{MEASUREMENT},channel={_tag(channel)},device={_tag(device)},factory={_tag(factory)} value="
    if len(_SERIES_PREFIXES) >= _SERIES_PREFIXES_MAX:
        _SERIES_PREFIXES.clear()
    _SERIES_PREFIXES[key] = prefix
    return prefix


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return _quote_string_field(value)


def point_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ns: int
) -> str:
    """One point of any measurement as line protocol: tags and fields sorted, fields typed (bool,
    integer with ``i``, float, quoted string), time in nanoseconds."""
    if not fields:
        raise ValueError(f"a point of {measurement} needs at least one field")
    head = measurement + "".join(f",{k}={_tag(v)}" for k, v in sorted(tags.items()))
    body = ",".join(f"{k}={_field(v)}" for k, v in sorted(fields.items()))
    return f"{head} {body} {int(ts_ns)}"


def point_lines(measurement: str, points: Sequence[Point]) -> Iterator[str]:
    """Line protocol for derived points (docs/store-schema.md)."""
    for p in points:
        yield point_line(measurement, p.tags, p.fields, p.ts_ns)


def influxql_string(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_INFLUX_AGG = {
    "mean": "mean",
    "min": "min",
    "max": "max",
    "count": "count",
    "sum": "sum",
    "first": "first",
    "last": "last",
}


class InfluxStore:
    kind = "influxdb"

    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        retention_policy: str | None = None,
        timeout_s: float = 10.0,
        create_database: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.timeout_s = timeout_s
        self._session = requests.Session()
        if username is not None:
            self._session.auth = (username, password or "")
        self._database_ready = not create_database
        self._field_types: dict[str, dict[str, str]] = {}

    # -- HTTP ----------------------------------------------------------------------------------
    def _post(self, path: str, params: dict[str, str], data: bytes | None = None) -> requests.Response:
        try:
            return self._session.post(f"{self.url}{path}", params=params, data=data, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} cannot be reached: {exc}") from exc

    def _ensure_database(self) -> None:
        if self._database_ready:
            return
        # CREATE DATABASE is idempotent. On InfluxDB 2.x/3.x the database is a bucket mapping made
        # by the operator; a refusal here is then not an error for writing.
        resp = self._post("/query", {"q": f'CREATE DATABASE "{self.database}"'})
        if resp.status_code >= 500:
            raise StoreUnavailable(f"InfluxDB at {self.url}: {resp.status_code} {resp.text[:200]}")
        self._database_ready = True

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the series of the first statement."""
        self._ensure_database()
        resp = self._post("/query", {"db": self.database, "q": q, "epoch": "ns"})
        if resp.status_code >= 500 or resp.status_code in (401, 403):
            raise StoreUnavailable(f"InfluxDB query failed: {resp.status_code} {resp.text[:200]}")
        if resp.status_code != 200:
            raise StoreError(f"InfluxDB refused query {q!r}: {resp.status_code} {resp.text[:300]}")
        body = resp.json()
        results = body.get("results") or [{}]
        first = results[0]
        if "error" in first:
            raise StoreError(f"InfluxDB query {q!r}: {first['error']}")
        series: list[dict[str, Any]] = first.get("series", [])
        return series

    # -- Store interface -----------------------------------------------------------------------
    def write(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        self.write_lines(list(line_protocol(readings)))

    def write_points(self, measurement: str, points: Sequence[Point]) -> None:
        if not points:
            return
        check_points(measurement, points)
        self.write_lines(list(point_lines(measurement, points)))

    def _types(self, measurement: str, refresh: bool = False) -> dict[str, str]:
        types = self._field_types.get(measurement)
        if types is None or refresh:
            types = {}
            for series in self.query(f'SHOW FIELD KEYS FROM "{measurement}"'):
                for name, kind in series["values"]:
                    types[str(name)] = str(kind)
            self._field_types[measurement] = types
        return types

    def query_points(
        self, measurement: str, tags: Mapping[str, str], start_ns: int, end_ns: int
    ) -> list[Point]:
        clauses = [f'"{k}"={influxql_string(v)}' for k, v in sorted(tags.items())]
        clauses += [f"time >= {int(start_ns)}", f"time < {int(end_ns)}"]
        q = f'SELECT * FROM "{measurement}" WHERE {" AND ".join(clauses)} GROUP BY *'
        found = self.query(q)
        if not found:
            return []
        types = self._types(measurement)
        out: list[Point] = []
        for series in found:
            point_tags = {k: v for k, v in (series.get("tags") or {}).items() if v}
            columns = series["columns"]
            if any(c not in types for c in columns[1:]):
                types = self._types(measurement, refresh=True)
            for row in series["values"]:
                fields: dict[str, FieldValue] = {}
                for name, value in zip(columns[1:], row[1:], strict=True):
                    if value is None:
                        continue
                    kind = types.get(name, "")
                    # InfluxDB's JSON writes 60.0 as 60: give float fields back as floats.
                    fields[name] = float(value) if kind == "float" else value
                out.append(Point(measurement, point_tags, int(row[0]), fields))
        out.sort(key=lambda p: (p.ts_ns, p.tag_key()))
        return out

    def write_lines(self, lines: Sequence[str]) -> None:
        """Write line protocol (nanosecond timestamps) as it is: the path of the readings, the
        derived and the platform measurements (docs/store-schema.md)."""
        if not lines:
            return
        self._ensure_database()
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        for start in range(0, len(lines), WRITE_CHUNK_LINES):
            body = "\n".join(lines[start : start + WRITE_CHUNK_LINES]).encode()
            resp = self._post("/write", params, body)
            if resp.status_code == 204:
                continue
            if resp.status_code == 404:
                self._database_ready = False  # dropped database: create it again, then retry
            raise write_refusal(resp.status_code, resp.text, "InfluxDB refused the write")

    def _where(
        self,
        factory: str | None,
        device: str | None,
        channel: str | None,
        start_ns: int | None,
        end_ns: int | None,
    ) -> str:
        clauses = []
        for tag, value in (("factory", factory), ("device", device), ("channel", channel)):
            if value is not None:
                clauses.append(f'"{tag}"={influxql_string(value)}')
        if start_ns is not None:
            clauses.append(f"time >= {start_ns}")
        if end_ns is not None:
            clauses.append(f"time < {end_ns}")
        return (" WHERE " + " AND ".join(clauses)) if clauses else ""

    def readings(
        self,
        factory: str,
        device: str,
        channel: str,
        start_ns: int,
        end_ns: int,
        limit: int | None = None,
    ) -> list[Reading]:
        q = (
            f'SELECT "value", "flag", "seq", "verified" FROM "{MEASUREMENT}"'
            f"{self._where(factory, device, channel, start_ns, end_ns)} ORDER BY time ASC"
        )
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        out: list[Reading] = []
        for series in self.query(q):
            for ts, value, flag, seq, verified in series["values"]:
                if value is None:
                    # InfluxDB keeps each field apart: a query that runs while a point is being
                    # written can see its flag or seq and not yet its value. Such a point is in
                    # flight: the ingest hands it to the rules once its write returns.
                    continue
                out.append(
                    Reading(factory, device, channel, int(ts), float(value), flag or "N", seq, verified or "")
                )
        return out

    def aggregate(
        self,
        factory: str,
        device: str,
        channel: str,
        start_ns: int,
        end_ns: int,
        every_s: int,
        fn: str = "mean",
        valid_only: bool = False,
    ) -> list[Bucket]:
        check_aggregate(fn, every_s)
        where = self._where(factory, device, channel, start_ns, end_ns)
        if valid_only:
            where += " AND (\"flag\"='N' OR \"flag\"='S')"
        q = (
            f'SELECT {_INFLUX_AGG[fn]}("value") FROM "{MEASUREMENT}"{where}'
            f" GROUP BY time({int(every_s)}s) fill(none)"
        )
        out: list[Bucket] = []
        for series in self.query(q):
            for ts, value in series["values"]:
                if value is not None:
                    out.append(Bucket(int(ts), float(value)))
        return out

    def latest(self, factory: str | None = None, device: str | None = None) -> list[Reading]:
        q = (
            f'SELECT last("value") AS "value", "flag", "seq" FROM "{MEASUREMENT}"'
            f'{self._where(factory, device, None, None, None)} GROUP BY "factory", "device", "channel"'
        )
        out: list[Reading] = []
        for series in self.query(q):
            tags = series.get("tags", {})
            for ts, value, flag, seq in series["values"]:
                out.append(
                    Reading(
                        tags["factory"],
                        tags["device"],
                        tags["channel"],
                        int(ts),
                        float(value),
                        flag or "N",
                        seq,
                    )
                )
        out.sort(key=lambda r: r.series)
        return out

    def count(
        self,
        factory: str | None = None,
        device: str | None = None,
        channel: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        verified: str | None = None,
    ) -> int:
        where = self._where(factory, device, channel, start_ns, end_ns)
        if verified is not None:
            where += (" AND " if where else " WHERE ") + f'"verified"={influxql_string(verified)}'
        q = f'SELECT count("value") FROM "{MEASUREMENT}"{where}'
        series = self.query(q)
        if not series:
            return 0
        return int(series[0]["values"][0][1])

    def ping(self) -> None:
        try:
            resp = self._session.get(f"{self.url}/ping", timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} cannot be reached: {exc}") from exc
        if resp.status_code != 204:
            raise StoreUnavailable(f"InfluxDB ping answered {resp.status_code}")

    def close(self) -> None:
        self._session.close()


def build(settings: InfluxSettings) -> InfluxStore:
    return InfluxStore(
        settings.url,
        settings.database,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        retention_policy=settings.retention_policy,
        timeout_s=settings.timeout_s,
    )


KIND = Kind(InfluxSettings, build)
