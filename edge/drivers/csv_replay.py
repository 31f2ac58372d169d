"""Replays a CSV file of recorded readings, to upload historical data through the normal path
(outbox, broker, ingest), each row with its own timestamp.

    - id: boiler-1
      driver: csv
      scan_interval_s: 0.05           # one row per scan: 20 rows a second
      csv:
        path: history/boiler-1-2025-10.csv
        time_column: time             # ISO 8601, or epoch seconds with time_format: epoch
        time_format: iso              # iso, epoch, or a strptime format such as "%d/%m/%Y %H:%M"
        timezone: Asia/Bangkok        # for times written without a zone (default UTC)
        columns: {so2: SO2_ppm, o2: O2_pct}   # channel: column (default: every other column)
        flag_columns: {so2: SO2_flag} # optional HJ 212 flag per channel

A row that cannot be used (bad time, no value) is skipped with a warning naming the file, the
line and the problem, and counted; a bad cell loses only its own value. When the file ends the
device stops scanning; an agent whose devices have all finished exits once the broker has every
scan. Replaying again sends the rows again: the store keeps each (channel, time) once.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.drivers.base import DriverError, ScanValues, SourceExhausted
from eit.confread import Section
from eit.model import FLAGS, ID_PATTERN
from eit.timeutil import NS_PER_S, datetime_to_ns, parse_iso_ns

log = logging.getLogger("eit.edge.csv")


class CsvReplayDriver:
    def __init__(
        self,
        device_id: str,
        path: Path,
        time_column: str,
        time_format: str,
        zone: tzinfo,
        columns: dict[str, str] | None,
        flag_columns: dict[str, str],
        delimiter: str,
    ) -> None:
        self.device_id = device_id
        self.path = path
        self.time_column = time_column
        self.time_format = time_format
        self.zone = zone
        self.columns = columns
        self.flag_columns = flag_columns
        self.delimiter = delimiter
        self.rows_sent = 0
        self.rows_skipped = 0
        self._file: TextIO | None = None
        self._rows: Iterator[dict[str, str]] | None = None
        self._reader: csv.DictReader[str] | None = None

    def connect(self) -> None:
        if self._file is not None:
            return
        try:
            self._file = self.path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise DriverError(f"cannot open {self.path}: {exc.strerror}") from None
        self._reader = csv.DictReader(self._file, delimiter=self.delimiter)
        header = self._reader.fieldnames or []
        if self.time_column not in header:
            raise DriverError(f"{self.path}: no column '{self.time_column}' (columns: {', '.join(header)})")
        if self.columns is None:
            skip = {self.time_column, *self.flag_columns.values()}
            self.columns = {c: c for c in header if c not in skip and ID_PATTERN.fullmatch(c)}
        missing = [c for c in [*self.columns.values(), *self.flag_columns.values()] if c not in header]
        if missing:
            raise DriverError(f"{self.path}: no column '{missing[0]}' (columns: {', '.join(header)})")
        self._rows = iter(self._reader)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._reader = None
        self._rows = None

    def read(self) -> ScanValues:
        if self._rows is None:
            self.connect()
        assert self._rows is not None and self._reader is not None and self.columns is not None
        for row in self._rows:
            line = self._reader.line_num
            scan = self._scan(row, line)
            if scan is not None:
                self.rows_sent += 1
                return scan
            self.rows_skipped += 1
        log.info(
            "device %s: replay of %s finished: %d row(s) sent, %d skipped",
            self.device_id,
            self.path,
            self.rows_sent,
            self.rows_skipped,
        )
        raise SourceExhausted(f"replay of {self.path} finished")

    def _scan(self, row: dict[str, str], line: int) -> ScanValues | None:
        assert self.columns is not None
        where = f"{self.path}:{line}"
        try:
            ts_ns = self._time(row.get(self.time_column) or "")
        except ValueError as exc:
            log.warning(
                "device %s: %s: row skipped: column %s: %s", self.device_id, where, self.time_column, exc
            )
            return None
        values: dict[str, float] = {}
        flags: dict[str, str] = {}
        for channel, column in self.columns.items():
            cell = (row.get(column) or "").strip()
            if not cell:
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                log.warning(
                    "device %s: %s: column %s: %r is not a number", self.device_id, where, column, cell
                )
                continue
            values[channel] = value
            flag_column = self.flag_columns.get(channel)
            if flag_column is not None:
                flag = (row.get(flag_column) or "N").strip() or "N"
                if flag not in FLAGS:
                    log.warning(
                        "device %s: %s: column %s: %r is not an HJ 212 flag; value sent flagged D",
                        self.device_id,
                        where,
                        flag_column,
                        flag,
                    )
                    flag = "D"
                if flag != "N":
                    flags[channel] = flag
        if not values:
            log.warning("device %s: %s: row skipped: no value in any channel column", self.device_id, where)
            return None
        return ScanValues(values, flags, ts_ns=ts_ns)

    def _time(self, text: str) -> int:
        text = text.strip()
        if not text:
            raise ValueError("empty")
        if self.time_format == "epoch":
            seconds = float(text)
            if not math.isfinite(seconds) or seconds < 0:
                raise ValueError(f"{text!r} is not epoch seconds")
            return round(seconds * NS_PER_S)
        if self.time_format == "iso":
            try:
                return parse_iso_ns(text)
            except ValueError as exc:
                try:
                    dt = datetime.fromisoformat(text)
                except ValueError:
                    raise exc from None
                if dt.tzinfo is not None:
                    raise
                return datetime_to_ns(dt.replace(tzinfo=self.zone))  # no zone: the configured one
        dt = datetime.strptime(text, self.time_format)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.zone)
        return datetime_to_ns(dt)


def from_config(sec: Section, base_dir: Path, device_id: str) -> CsvReplayDriver:
    path = sec.path_value("path", base_dir)
    if not path.is_file():
        sec.fail("path", f"file {path} not found")
    zone_name = sec.text("timezone", "UTC")
    zone: tzinfo
    try:
        zone = UTC if zone_name == "UTC" else ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        sec.fail("timezone", f"'{zone_name}' is not a time zone name such as UTC or Asia/Bangkok")
    delimiter = sec.text("delimiter", ",")
    if len(delimiter) != 1:
        sec.fail("delimiter", "expected one character")

    def mapping(key: str) -> dict[str, str] | None:
        raw = sec.raw(key, None)
        if raw is None:
            return None
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            sec.fail(key, "expected a mapping of channel: column name")
        for channel in raw:
            if not isinstance(channel, str) or not ID_PATTERN.fullmatch(channel):
                sec.fail(f"{key}.{channel}", "not a valid channel id")
        return {str(k): str(v) for k, v in raw.items()}

    driver = CsvReplayDriver(
        device_id,
        path,
        time_column=sec.text("time_column", "time"),
        time_format=sec.text("time_format", "iso"),
        zone=zone,
        columns=mapping("columns"),
        flag_columns=mapping("flag_columns") or {},
        delimiter=delimiter,
    )
    sec.finish()
    try:
        driver.connect()
    except DriverError as exc:
        sec.fail("path", str(exc))
    driver.close()
    return driver
