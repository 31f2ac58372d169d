"""The embedded store: SQLite, one file, nothing else to install.

Readings are keyed by (factory, device, channel, ts_ns) in a WITHOUT ROWID table, so writing the
same key twice overwrites (idempotent, like InfluxDB). WAL mode with synchronous=FULL: when
``write`` returns the batch is on disk, and the ingest may acknowledge it to the broker.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationInfo, model_validator

from eit.model import Reading
from eit.plugins import Kind
from eit.sqlitedb import immediate, open_durable
from eit.store import Bucket, Point, StoreError, StoreUnavailable, check_aggregate, check_points
from ingest.store.settings import StoreSettings


class SqliteSettings(StoreSettings):
    """``store: {kind: sqlite, path: readings.db}``; the path defaults to data_dir/readings.db."""

    kind: Literal["sqlite"] = "sqlite"
    path: Path

    @model_validator(mode="before")
    @classmethod
    def _default_path(cls, data: Any, info: ValidationInfo) -> Any:
        data_dir = (info.context or {}).get("data_dir")
        if isinstance(data, dict) and data.get("path") is None and isinstance(data_dir, Path):
            return {**data, "path": data_dir / "readings.db"}
        return data


_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    factory TEXT    NOT NULL,
    device  TEXT    NOT NULL,
    channel TEXT    NOT NULL,
    ts_ns   INTEGER NOT NULL,
    value   REAL    NOT NULL,
    flag    TEXT    NOT NULL DEFAULT 'N',
    seq     INTEGER,
    verified TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (factory, device, channel, ts_ns)
) WITHOUT ROWID;
-- Derived points (hourly, rolling, daily, aqi, energy, platform): keyed like InfluxDB by
-- measurement, tag set (canonical "k=v,k=v") and time; tags and fields as JSON objects.
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT    NOT NULL,
    tag_key     TEXT    NOT NULL,
    ts_ns       INTEGER NOT NULL,
    tags        TEXT    NOT NULL,
    fields      TEXT    NOT NULL,
    PRIMARY KEY (measurement, tag_key, ts_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_time ON points (measurement, ts_ns);
"""

_SQL_AGG = {
    "mean": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "count": "count(value)",
    "sum": "sum(value)",
}


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        db = self._db()
        db.executescript(_SCHEMA)
        # A file from before signed scans: the readings' ``verified`` column is added in place.
        columns = {row[1] for row in db.execute("PRAGMA table_info(readings)")}
        if "verified" not in columns:
            db.execute("ALTER TABLE readings ADD COLUMN verified TEXT NOT NULL DEFAULT ''")

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = open_durable(self.path)
            self._local.db = db
            with self._conn_lock:
                self._connections.append(db)
        return db

    def write(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        rows = [
            (r.factory, r.device, r.channel, r.ts_ns, r.value, r.flag, r.seq, r.verified) for r in readings
        ]
        db = self._db()
        with self._write_lock, self._errors(), immediate(db) as cur:
            cur.executemany(
                "INSERT OR REPLACE INTO readings"
                " (factory, device, channel, ts_ns, value, flag, seq, verified)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def readings(
        self,
        factory: str,
        device: str,
        channel: str,
        start_ns: int,
        end_ns: int,
        limit: int | None = None,
    ) -> list[Reading]:
        sql = (
            "SELECT ts_ns, value, flag, seq, verified FROM readings"
            " WHERE factory=? AND device=? AND channel=? AND ts_ns>=? AND ts_ns<? ORDER BY ts_ns"
        )
        params: list[object] = [factory, device, channel, start_ns, end_ns]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self._db().execute(sql, params).fetchall()
        return [
            Reading(factory, device, channel, ts, val, flag, seq, verified)
            for ts, val, flag, seq, verified in rows
        ]

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
        where = "factory=:f AND device=:d AND channel=:c AND ts_ns>=:start AND ts_ns<:end"
        if valid_only:
            where += " AND flag IN ('N', 'S')"
        if fn in ("first", "last"):
            # SQLite returns the other columns of the row that holds the min()/max().
            select = f"value, {'min' if fn == 'first' else 'max'}(ts_ns)"
        else:
            select = _SQL_AGG[fn]
        sql = (
            f"SELECT (ts_ns / :every) * :every AS b, {select} FROM readings"
            f" WHERE {where} GROUP BY b ORDER BY b"
        )
        params = {
            "every": every_s * 1_000_000_000,
            "f": factory,
            "d": device,
            "c": channel,
            "start": start_ns,
            "end": end_ns,
        }
        rows = self._db().execute(sql, params).fetchall()
        return [Bucket(int(row[0]), float(row[1])) for row in rows]

    def latest(self, factory: str | None = None, device: str | None = None) -> list[Reading]:
        where, params = _filters(factory, device, None)
        sql = (
            "SELECT factory, device, channel, max(ts_ns), value, flag, seq, verified FROM readings"
            f"{where} GROUP BY factory, device, channel ORDER BY factory, device, channel"
        )
        rows = self._db().execute(sql, params).fetchall()
        return [Reading(f, d, c, ts, v, flag, seq, ver) for f, d, c, ts, v, flag, seq, ver in rows]

    def count(
        self,
        factory: str | None = None,
        device: str | None = None,
        channel: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        verified: str | None = None,
    ) -> int:
        where, params = _filters(factory, device, channel)
        clauses = [where[len(" WHERE ") :]] if where else []
        if verified is not None:
            clauses.append("verified=?")
            params.append(verified)
        if start_ns is not None:
            clauses.append("ts_ns>=?")
            params.append(start_ns)
        if end_ns is not None:
            clauses.append("ts_ns<?")
            params.append(end_ns)
        sql = "SELECT count(*) FROM readings"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        row = self._db().execute(sql, params).fetchone()
        return int(row[0])

    def write_points(self, measurement: str, points: Sequence[Point]) -> None:
        if not points:
            return
        check_points(measurement, points)
        rows = [
            (
                measurement,
                p.tag_key(),
                p.ts_ns,
                json.dumps(dict(p.tags), sort_keys=True, ensure_ascii=False),
                json.dumps(dict(p.fields), sort_keys=True, ensure_ascii=False),
            )
            for p in points
        ]
        db = self._db()
        with self._write_lock, self._errors(), immediate(db) as cur:
            cur.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?)", rows)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as the store interface's: what the rows cause (an integer beyond 64
        bits, a constraint) is StoreError; what the file causes (a full disk, I/O, a lock held
        past the timeout, a read-only or damaged file) is StoreUnavailable."""
        try:
            yield
        except OverflowError as exc:  # Python int too large to convert to SQLite INTEGER
            raise StoreError(f"SQLite store {self.path}: {exc}", "value_out_of_range") from exc
        except (sqlite3.IntegrityError, sqlite3.DataError) as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def query_points(
        self, measurement: str, tags: Mapping[str, str], start_ns: int, end_ns: int
    ) -> list[Point]:
        sql = "SELECT ts_ns, tags, fields FROM points WHERE measurement=? AND ts_ns>=? AND ts_ns<?"
        params: list[object] = [measurement, start_ns, end_ns]
        for name, value in sorted(tags.items()):
            sql += " AND json_extract(tags, ?) = ?"
            params.extend([f'$."{name}"', value])
        sql += " ORDER BY ts_ns, tag_key"
        rows = self._db().execute(sql, params).fetchall()
        return [Point(measurement, json.loads(t), int(ts), json.loads(f)) for ts, t, f in rows]

    def ping(self) -> None:
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._conn_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()


def _filters(factory: str | None, device: str | None, channel: str | None) -> tuple[str, list[object]]:
    clauses = []
    params: list[object] = []
    for column, value in (("factory", factory), ("device", device), ("channel", channel)):
        if value is not None:
            clauses.append(f"{column}=?")
            params.append(value)
    return ((" WHERE " + " AND ".join(clauses)) if clauses else ""), params


def build(settings: SqliteSettings) -> SqliteStore:
    return SqliteStore(settings.path)


KIND = Kind(SqliteSettings, build)
