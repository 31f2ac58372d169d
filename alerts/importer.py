"""`eit import`: historical readings from CSV into the store, then the derived data.

Columns: ``time`` (RFC 3339 with a zone, or epoch seconds; from 2000 to now, the contract's
bounds: eit/bounds.py), ``factory``, ``device``, ``channel``,
``value``, ``flag`` (HJ 212; empty means N). A row that cannot be used is reported with its line
number and the problem and counted; every valid row is imported. Values outside the channel's
measuring range are stored flagged T, as the live ingest does.

The derived data (hourly, rolling, daily, aqi, energy) are then recomputed for the imported span
(alerts/recompute.py: the live engine's own read-back path over the stored readings): the same
numbers whichever path computed them. Imported hours are a historical load, not late data: they
are not marked retroactive, and no alert is raised or notified.
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from alerts.recompute import recompute
from alerts.settings import RuleSettings
from eit.bounds import MAX_FUTURE_S, time_problem
from eit.model import FLAGS, Reading
from eit.registry import Registry
from eit.store import Store
from eit.timeutil import NS_PER_S, parse_iso_ns

COLUMNS = ("time", "factory", "device", "channel", "value", "flag")
CHUNK = 5000
# A field longer than this is refused with its line (csv's own limit, stated here so that a
# change of the module's default does not change it); a longer line is cut before it is read.
MAX_FIELD_BYTES = 128 * 1024
MAX_LINE_CHARS = 4 * MAX_FIELD_BYTES


@dataclass(slots=True)
class ImportResult:
    rows: int = 0
    imported: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # the first few, "line N: problem"
    hours: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


class RowError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _parse_time(text: str, now_ns: int) -> int:
    """The row's time within the contract's bounds (eit/bounds.py): from 2000 to the server
    clock plus the ingest's default ``max_future_s``."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            ts_ns = parse_iso_ns(text[:64])
        except (ValueError, OverflowError) as exc:
            raise RowError("bad_timestamp", f"time {text[:64]!r}: {exc}") from None
    else:
        if not math.isfinite(seconds) or abs(seconds) > 1e12:
            # 1e12 s is far beyond any bound below; it keeps the conversion to ns exact and cheap.
            raise RowError("time_out_of_range", f"time {text[:64]!r} is not a time this platform keeps")
        ts_ns = round(seconds * NS_PER_S)
    problem = time_problem(ts_ns, now_ns, MAX_FUTURE_S)
    if problem is not None:
        raise RowError(problem.reason, f"time {text[:64]!r}: {problem.detail}")
    return ts_ns


def read_rows(
    path: Path, registry: Registry, result: ImportResult, max_errors: int = 50
) -> Iterator[Reading]:
    """The valid rows of ``path`` as readings; each other row is counted in ``result`` by reason
    and reported with its line (the first ``max_errors``): a row with fields missing or too many,
    a field over :data:`MAX_FIELD_BYTES`, a line that is not CSV, a time outside the contract's
    bounds, an unknown factory, device or channel, a value that is not a finite number."""
    csv.field_size_limit(MAX_FIELD_BYTES)  # the module's default too; said here on purpose
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(_bounded_lines(fh))
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            header = []
        except csv.Error as exc:
            raise ValueError(f"{path}: line 1: the header is not CSV: {exc}") from None
        missing = [c for c in COLUMNS[:-1] if c not in header]
        if missing:
            raise ValueError(
                f"{path}: line 1: missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})"
            )
        now = time.time_ns()

        def reject(line: int, exc: RowError) -> None:
            result.rejected[exc.reason] += 1
            if len(result.errors) < max_errors:
                result.errors.append(f"{path}: line {line}: {exc}")

        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a field over the limit, a NUL byte: the reader goes on
                result.rows += 1
                reject(reader.line_num, RowError("bad_csv", f"not a CSV row this importer reads: {exc}"))
                continue
            line = reader.line_num
            if not fields:
                continue  # a blank line
            result.rows += 1
            if len(fields) != len(header):
                reason = "short_row" if len(fields) < len(header) else "long_row"
                reject(line, RowError(reason, f"{len(fields)} fields, the header has {len(header)}"))
                continue
            try:
                yield _reading(dict(zip(header, fields, strict=True)), registry, now)
            except RowError as exc:
                reject(line, exc)


def _bounded_lines(fh: TextIO) -> Iterator[str]:
    """The file's lines, each cut at MAX_LINE_CHARS (the csv reader then refuses the row's
    over-long field): one line of a gigabyte is not read into memory at once."""
    while True:
        line = fh.readline(MAX_LINE_CHARS)
        if not line:
            return
        if len(line) == MAX_LINE_CHARS and not line.endswith("\n"):
            while True:  # the rest of the over-long line, dropped in pieces
                rest = fh.readline(MAX_LINE_CHARS)
                if not rest or rest.endswith("\n"):
                    break
            line = line + "\n"
        yield line


def _reading(row: dict[str, str], registry: Registry, now_ns: int) -> Reading:
    factory, device, channel = (row.get(k, "").strip() for k in ("factory", "device", "channel"))
    f = registry.factories.get(factory)
    if f is None:
        raise RowError("unknown_factory", f"factory '{factory}' is not in the site registry")
    d = f.devices.get(device)
    if d is None:
        raise RowError("unknown_device", f"device '{device}' is not registered for factory '{factory}'")
    ch = d.channels.get(channel)
    if ch is None:
        raise RowError("unknown_channel", f"channel '{channel}' is not registered for {factory}/{device}")
    ts = _parse_time(row.get("time", ""), now_ns)
    raw = (row.get("value") or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise RowError("bad_value", f"value {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError("non_finite_value", f"value {raw!r} is not finite")
    flag = (row.get("flag") or "").strip().upper() or "N"
    if flag not in FLAGS:
        raise RowError("bad_flag", f"flag {flag!r} is not an HJ 212 flag ({', '.join(FLAGS)})")
    if flag == "N" and (value > ch.range_max or value < ch.range_min):
        flag = "T"
    return Reading(factory, device, channel, ts, value, flag)


def import_csv(
    path: Path, registry: Registry, store: Store, settings: RuleSettings | None = None
) -> ImportResult:
    result = ImportResult()
    readings = list(read_rows(path, registry, result))
    readings.sort(key=lambda r: r.ts_ns)
    for start in range(0, len(readings), CHUNK):
        store.write(readings[start : start + CHUNK])
    result.imported = len(readings)
    if not readings:
        return result
    result.first_ns, result.last_ns = readings[0].ts_ns, readings[-1].ts_ns
    factories = {r.factory for r in readings}
    done = recompute(registry, store, result.first_ns, result.last_ns + 1, factories, settings)
    result.hours = done.hours
    return result
