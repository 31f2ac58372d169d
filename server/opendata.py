"""The open-data package: what the public is shown, as a Frictionless Data Package
(https://specs.frictionlessdata.io/data-package/): ``datapackage.json`` with a table schema per
resource, the licence, sources and contributors, and one CSV file per resource.

Resources, for the public factories only (the registry's ``public`` flag; the package says
"N of M factories"), over a period of local days:
- ``hourly-averages``: each channel's valid clock-hour averages (the ``hourly`` measurement);
- ``aqi``: the Thai AQI of the ambient stations, each hour;
- ``daily-completeness``: valid hours of each channel's local day;
- ``indicators``: the town indicators' public figures for the period's months and years.

The licence is the registry's ``open_data.licence`` (an Open Definition id, eit/licenses.yaml;
CC-BY-4.0 by default), which CKAN (the Thai open-data portal's software) takes as its
``license_id``. The metadata keys are the Data Package's own, which CKAN's Data Package importer
reads as they are.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from alerts.compliance import day_bounds
from alerts.indicators import scoreboard
from alerts.indicators_render import rows as scoreboard_rows
from eit import __version__
from eit.indicators import DEFAULT_LICENCE, licences
from eit.registry import Registry
from eit.store import Point, Store
from eit.storeschema import CHANNEL, DEVICE, FACTORY, Aqi, Daily, Hourly
from eit.timeutil import now_ns, ns_to_datetime, ns_to_iso

PROFILE: Final = "tabular-data-package"
CSV_DIALECT: Final = {"delimiter": ",", "lineTerminator": "\n", "header": True}

Field = tuple[str, str, str]  # name, Table Schema type, description


class Resource:
    """One CSV resource: its name, title, description, fields and rows."""

    def __init__(self, name: str, title: str, description: str, fields: Sequence[Field]) -> None:
        self.name = name
        self.title = title
        self.description = description
        self.fields = list(fields)
        self.rows: list[list[object]] = []

    @property
    def path(self) -> str:
        return f"{self.name}.csv"

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([f[0] for f in self.fields])
        for row in self.rows:
            writer.writerow([_cell(v) for v in row])
        return buf.getvalue()

    def descriptor(self, licence: dict[str, str]) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "profile": "tabular-data-resource",
            "title": self.title,
            "description": self.description,
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "dialect": CSV_DIALECT,
            "licenses": [licence],
            "schema": {
                "fields": [{"name": n, "type": t, "description": d} for n, t, d in self.fields],
                "missingValues": [""],
            },
        }


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


HOURLY_FIELDS: Final[list[Field]] = [
    ("time", "datetime", "start of the clock hour, UTC"),
    ("factory", "string", "factory id (site registry)"),
    ("device", "string", "device id"),
    ("channel", "string", "channel id"),
    ("parameter", "string", "measured parameter"),
    ("unit", "string", "unit of value and corrected"),
    ("value", "number", "mean of the hour's minute means of its valid points"),
    ("corrected", "number", "the same corrected to the standard's reference O2 (stacks), else value"),
    ("valid", "boolean", "a valid hour: a valid minute in each 15-minute quadrant"),
    ("limit", "number", "the 1-hour limit in force, in limit_unit"),
    ("limit_unit", "string", "unit of limit"),
    ("exceeded", "boolean", "a valid hour above the limit"),
    ("method", "string", "the method and its version"),
]
AQI_FIELDS: Final[list[Field]] = [
    ("time", "datetime", "start of the window's last hour, UTC"),
    ("factory", "string", "factory id of the station"),
    ("device", "string", "station id"),
    ("parameter", "string", "pm25, pm10, o3, co, no2, so2 or overall (the highest sub-index)"),
    ("value", "number", "Thai AQI sub-index"),
    ("band", "string", "very_good, good, moderate, unhealthy_sensitive, unhealthy"),
    ("concentration", "number", "the rounded average the band was looked up with (sub-indices only)"),
]
DAILY_FIELDS: Final[list[Field]] = [
    ("date", "date", "local day"),
    ("factory", "string", "factory id"),
    ("device", "string", "device id"),
    ("channel", "string", "channel id"),
    ("valid_hours", "integer", "valid clock hours of the day"),
    ("expected_hours", "integer", "clock hours of the local day"),
    ("completeness", "number", "valid_hours / expected_hours"),
    ("complete", "boolean", "completeness at or above the threshold (80 %)"),
]
INDICATOR_FIELDS: Final[list[Field]] = [
    ("indicator", "string", "indicator id (eit/indicators.yaml)"),
    ("owner", "string", "owner agency"),
    ("unit", "string", "unit of value and trajectory"),
    ("direction", "string", "lower or higher is better"),
    ("kind", "string", "month or year"),
    ("period", "string", "2026-01 (a month) or 2026 (a year), local calendar"),
    ("value", "number", "the town's value from the public factories' contributions"),
    ("numerator", "number", "what a share is made of"),
    ("denominator", "number", "what a share is made of"),
    ("factories", "integer", "public factories that contributed"),
    ("factories_in_scope", "integer", "N: public factories"),
    ("factories_total", "integer", "M: registered factories"),
    ("trajectory", "number", "the target's straight-line trajectory for the period's year"),
    ("on_track", "boolean", "value on the right side of the trajectory"),
    ("target_illustrative", "boolean", "the target is illustrative, not adopted"),
]


def _public_series(registry: Registry, kinds: Iterable[str]) -> list[tuple[str, str, str, str, str]]:
    wanted = set(kinds)
    return [
        (f.id, d.id, c.id, c.parameter, c.unit)
        for f in registry.factories.values()
        if f.public
        for d in f.devices.values()
        if d.kind in wanted
        for c in d.channels.values()
    ]


def build_package(
    registry: Registry, store: Store, first: date, last: date, clock: Callable[[], int] = now_ns
) -> tuple[dict[str, Any], list[Resource]]:
    """The descriptor and the resources of the public factories for [first, last] (local days)."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    tz = ZoneInfo(registry.timezone)
    start, _ = day_bounds(first, tz)
    _, end = day_bounds(last, tz)
    hourly = Resource(
        "hourly-averages",
        "Hourly averages",
        "Clock-hour averages of the public factories' stack, effluent and ambient channels.",
        HOURLY_FIELDS,
    )
    measured = _public_series(registry, ("stack", "effluent", "ambient"))
    for factory, device, channel, parameter, unit in measured:
        tags = {FACTORY: factory, DEVICE: device, CHANNEL: channel}
        for p in store.query_points(Hourly.NAME, tags, start, end):
            if Hourly.VALUE not in p.fields:
                continue
            f = p.fields
            hourly.rows.append(
                [ns_to_iso(p.ts_ns), factory, device, channel, parameter, unit, f.get(Hourly.VALUE),
                 f.get(Hourly.CORRECTED), f.get(Hourly.VALID), f.get(Hourly.LIMIT), f.get(Hourly.LIMIT_UNIT),
                 f.get(Hourly.EXCEEDED), f.get(Hourly.METHOD)]
            )  # fmt: skip
    aqi = Resource(
        "aqi", "Thai AQI", "Thai AQI of the public factories' ambient stations, each hour.", AQI_FIELDS
    )
    stations = sorted({(f, d) for f, d, _, _, _ in _public_series(registry, ("ambient",))})
    for factory, device in stations:
        points: list[Point] = store.query_points(Aqi.NAME, {FACTORY: factory, DEVICE: device}, start, end)
        for p in points:
            f = p.fields
            aqi.rows.append(
                [ns_to_iso(p.ts_ns), factory, device, p.tags.get(Aqi.PARAMETER), f.get(Aqi.VALUE),
                 f.get(Aqi.BAND), f.get(Aqi.CONCENTRATION)]
            )  # fmt: skip
    daily = Resource(
        "daily-completeness",
        "Daily data completeness",
        "Valid hours of each public channel's local day (Asia/Bangkok days).",
        DAILY_FIELDS,
    )
    for factory, device, channel, _, _ in measured:
        tags = {FACTORY: factory, DEVICE: device, CHANNEL: channel}
        for p in store.query_points(Daily.NAME, tags, start, end):
            f = p.fields
            local = ns_to_datetime(p.ts_ns).astimezone(tz).date().isoformat()
            daily.rows.append(
                [local, factory, device, channel, f.get(Daily.VALID_HOURS), f.get(Daily.EXPECTED_HOURS),
                 f.get(Daily.COMPLETENESS), f.get(Daily.COMPLETE)]
            )  # fmt: skip
    board = scoreboard(registry, store, first, last, public_only=True)
    indicators = Resource(
        "indicators",
        "Town indicators",
        "The town indicators' public figures (public factories' contributions only) for each month and"
        " year of the period, with each target's trajectory.",
        INDICATOR_FIELDS,
    )
    for row in scoreboard_rows(board):
        indicators.rows.append([row.get(name) for name, _, _ in INDICATOR_FIELDS])
    resources = [hourly, aqi, daily, indicators]
    return descriptor(registry, first, last, resources, board, clock), resources


def descriptor(
    registry: Registry,
    first: date,
    last: date,
    resources: Sequence[Resource],
    board: dict[str, Any],
    clock: Callable[[], int] = now_ns,
) -> dict[str, Any]:
    settings = registry.open_data
    lic = settings.licence if settings is not None else licences()[DEFAULT_LICENCE]
    licence = {"name": lic.id, "title": lic.title, "path": lic.path}
    publisher = settings.publisher if settings is not None else registry.town_name
    contributors = [{"title": publisher, "role": "publisher"}]
    if settings is not None and settings.contributors:
        contributors = [
            {"title": c.title, "role": c.role, **({"email": c.email} if c.email else {})}
            for c in settings.contributors
        ]
    n, m = board["factories_in_scope"], board["factories_total"]
    return {
        "profile": PROFILE,
        "name": f"{registry.town_id}-open-data",
        "title": f"{registry.town_name}: open data {first.isoformat()} to {last.isoformat()}",
        "description": (
            f"Pollution monitoring of {registry.town_name}, published by {publisher}: hourly averages,"
            f" Thai AQI, daily data completeness and the town indicators, {first.isoformat()} to"
            f" {last.isoformat()} ({registry.timezone} days). Public factories only: {n} of {m} factories."
        ),
        "version": __version__,
        "created": ns_to_iso(clock() - clock() % 1_000_000_000),
        "keywords": ["air quality", "effluent", "emissions", "eco-industrial town", "Thailand", "AQI"],
        "licenses": [licence],
        "sources": [
            {"title": f"EIT Monitor measurements of the public factories of {registry.town_name}"},
            {"title": "Thai emission and effluent standards (EIT Monitor eit/standards/th.yaml)"},
            {"title": "Pollution Control Department, Thai AQI (EIT Monitor eit/standards/th_aqi.yaml)"},
            {"title": "TGO grid emission factors (EIT Monitor eit/standards/th_grid.yaml)"},
            {"title": "EIT Monitor town indicator catalogue (eit/indicators.yaml)"},
        ],
        "contributors": contributors,
        "resources": [r.descriptor(licence) for r in resources],
    }


def write_package(
    registry: Registry, store: Store, first: date, last: date, out: Path
) -> list[tuple[str, int]]:
    """Write ``datapackage.json`` and the CSV files to ``out``: [(resource path, rows)]."""
    package, resources = build_package(registry, store, first, last)
    out.mkdir(parents=True, exist_ok=True)
    for r in resources:
        (out / r.path).write_text(r.csv_text(), encoding="utf-8")
    (out / "datapackage.json").write_text(json.dumps(package, ensure_ascii=False, indent=2), encoding="utf-8")
    return [(r.path, len(r.rows)) for r in resources]


def zip_package(registry: Registry, store: Store, first: date, last: date) -> bytes:
    """The same package as one zip file (datapackage.json beside its CSV files)."""
    package, resources = build_package(registry, store, first, last)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("datapackage.json", json.dumps(package, ensure_ascii=False, indent=2))
        for r in resources:
            z.writestr(r.path, r.csv_text())
    return buf.getvalue()
