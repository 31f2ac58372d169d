"""The town indicator catalogue (eit/indicators.yaml and a town's own files): each indicator's
names, owner agency, unit, direction, periods and formula in a declared vocabulary, with its source
and a worked example. Nothing in a catalogue is executed: the formula names one of a fixed set of
aggregations (alerts/indicators.py holds their mechanism).

Periods are the registry zone's calendar months and years; :func:`period_bounds` gives them as UTC
nanoseconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from eit.confread import Problems, Section, read_yaml
from eit.model import ID_HINT, ID_PATTERN
from eit.timeutil import datetime_to_ns, parse_iso_ns

SOURCE: Final = "eit/indicators.yaml"
MONTH: Final = "month"
YEAR: Final = "year"
PERIODS: Final = (MONTH, YEAR)
DIRECTIONS: Final = ("lower", "higher")
MEASUREMENTS: Final = ("hourly", "rolling", "daily", "aqi", "energy", "registry")
AGGREGATIONS: Final = ("sum", "count_true", "share_true", "none_true", "flag_true", "days_at_or_below")
COMBINES: Final = ("sum", "mean", "ratio")
FILTERS: Final = ("device_kind", "parameter")
DEVICE_KINDS: Final = ("stack", "effluent", "ambient", "energy")
# Which aggregations each measurement may take: the field's type decides it.
_ALLOWED: Final = {
    "hourly": {"count_true", "share_true", "none_true", "sum"},
    "rolling": {"count_true", "share_true", "none_true"},
    "daily": {"count_true", "share_true", "none_true", "sum"},
    "aqi": {"days_at_or_below"},
    "energy": {"sum"},
    "registry": {"flag_true"},
}
_FIELDS: Final = {
    "hourly": ("exceeded", "valid", "retroactive", "points", "minutes"),
    "rolling": ("exceeded", "valid"),
    "daily": ("complete", "valid_hours", "expected_hours"),
    "aqi": ("value",),
    "energy": ("kwh", "co2_kg"),
    "registry": ("public",),
}
_BOOLEAN_AGGREGATIONS: Final = {"count_true", "share_true", "none_true", "flag_true"}
_BOOLEAN_FIELDS: Final = {"exceeded", "valid", "retroactive", "complete", "public"}


@dataclass(frozen=True, slots=True)
class Formula:
    measurement: str
    field: str
    aggregation: str
    combine: str
    filters: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    threshold: float | None = None
    # Further measurements read with the same field (``measurement: [hourly, rolling]``): a
    # factory's clock hours and its rolling windows alike.
    also: tuple[str, ...] = ()

    @property
    def measurements(self) -> tuple[str, ...]:
        return (self.measurement, *self.also)

    @property
    def per_device(self) -> bool:
        """Contributions per station (device) rather than per factory."""
        return self.aggregation == "days_at_or_below"


@dataclass(frozen=True, slots=True)
class ExamplePoint:
    measurement: str
    tags: dict[str, str]
    ts_ns: int
    fields: dict[str, float | bool]


@dataclass(frozen=True, slots=True)
class ExampleDevice:
    factory: str
    device: str
    kind: str
    public: bool = True


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    period: date  # the first day of the example's month
    points: tuple[ExamplePoint, ...]
    registry: tuple[ExampleDevice, ...]
    value: float


@dataclass(frozen=True, slots=True)
class Indicator:
    id: str
    version: int
    name_en: str
    name_th: str
    owner: str
    unit: str
    direction: str
    periods: tuple[str, ...]
    formula: Formula
    source: str
    example: Example
    # "all_factories": the public form counts every registered factory in the denominator (its
    # registry facts only, never its data): "N of M factories".
    public_denominator: str = "scope"
    origin: str = SOURCE

    @property
    def method(self) -> str:
        """What the stored contributions record as their method: ``catalogue id/version``."""
        return f"{self.id}/{self.version}"

    @property
    def percent(self) -> bool:
        return self.unit == "%"


@dataclass(frozen=True, slots=True)
class Agency:
    id: str
    en: str
    th: str


@dataclass(frozen=True, slots=True)
class Catalogue:
    agencies: dict[str, Agency]
    indicators: dict[str, Indicator]


def period_bounds(kind: str, first_day: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of the local month or year that starts on ``first_day``, as UTC ns."""
    start = datetime(first_day.year, first_day.month if kind == MONTH else 1, 1, tzinfo=tz)
    if kind == MONTH:
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end = datetime(year, month, 1, tzinfo=tz)
    else:
        end = datetime(start.year + 1, 1, 1, tzinfo=tz)
    return datetime_to_ns(start), datetime_to_ns(end)


def periods_between(kind: str, first: date, last: date) -> list[date]:
    """The first days of the months (or years) that overlap [first, last]."""
    out: list[date] = []
    if kind == YEAR:
        return [date(y, 1, 1) for y in range(first.year, last.year + 1)]
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def period_label(kind: str, first_day: date) -> str:
    return f"{first_day:%Y-%m}" if kind == MONTH else f"{first_day:%Y}"


def parse_period_label(text: str) -> tuple[str, date]:
    """``2026-01`` (a month) or ``2026`` (a year)."""
    try:
        if len(text) == 4:
            return YEAR, date(int(text), 1, 1)
        year, month = text.split("-")
        return MONTH, date(int(year), int(month), 1)
    except ValueError:
        raise ValueError(f"period {text!r}: use 2026-01 (a month) or 2026 (a year)") from None


def _read_formula(sec: Section) -> Formula:
    listed = sec.raw("measurement")
    if isinstance(listed, list):
        names = tuple(str(m) for m in listed)
        if not names or any(m not in MEASUREMENTS for m in names) or len(set(names)) != len(names):
            sec.fail("measurement", f"expected one or more of {', '.join(MEASUREMENTS)}, each once")
        if "registry" in names and len(names) > 1:
            sec.fail("measurement", "the registry is read alone")
    else:
        names = (sec.text("measurement", choices=MEASUREMENTS),)
    measurement = names[0]
    fld = sec.text(
        "field", choices=tuple(f for f in _FIELDS[measurement] if all(f in _FIELDS[m] for m in names))
    )
    aggregation = sec.text("aggregation", choices=AGGREGATIONS)
    for name in names:
        if aggregation not in _ALLOWED[name]:
            sec.fail(
                "aggregation",
                f"'{aggregation}' does not apply to {name} (use {', '.join(sorted(_ALLOWED[name]))})",
            )
    if (aggregation in _BOOLEAN_AGGREGATIONS) != (fld in _BOOLEAN_FIELDS):
        needs = "a true/false field" if aggregation in _BOOLEAN_AGGREGATIONS else "a number field"
        sec.fail("field", f"aggregation '{aggregation}' needs {needs}; '{fld}' is not one")
    combine = sec.text("combine", choices=COMBINES)
    if aggregation in ("share_true", "none_true", "flag_true") and combine != "ratio":
        sec.fail("combine", f"aggregation '{aggregation}' makes a share: combine it with 'ratio'")
    filters: dict[str, tuple[str, ...]] = {}
    if sec.has("filters"):
        fsec = sec.section("filters")
        for name in list(fsec.data):
            if name not in FILTERS:
                fsec.fail(name, f"unknown filter; use {', '.join(FILTERS)}")
            values = tuple(fsec.str_list(name))
            if not values:
                fsec.fail(name, "give at least one value")
            if name == "device_kind":
                for v in values:
                    if v not in DEVICE_KINDS:
                        fsec.fail(name, f"'{v}' is not a device kind ({', '.join(DEVICE_KINDS)})")
            if name == "parameter" and measurement != "aqi":
                fsec.fail(name, "the parameter filter applies to the aqi measurement only")
            filters[name] = values
        fsec.finish()
    threshold = sec.number("threshold", None)
    if aggregation == "days_at_or_below" and threshold is None:
        sec.fail("threshold", "days_at_or_below needs a threshold")
    if aggregation != "days_at_or_below" and threshold is not None:
        sec.fail("threshold", f"aggregation '{aggregation}' takes no threshold")
    sec.finish()
    return Formula(measurement, fld, aggregation, combine, filters, threshold, names[1:])


def _read_example(sec: Section, formula: Formula) -> Example:
    text = sec.text("text")
    label = sec.text("period")
    try:
        kind, first = parse_period_label(label)
    except ValueError as exc:
        sec.fail("period", str(exc))
    if kind != MONTH:
        sec.fail("period", "a worked example is for one month, e.g. 2026-01")
    points: list[ExamplePoint] = []
    for psec in sec.sections("points", required=True):
        measurement = psec.text("measurement", choices=MEASUREMENTS[:-1])
        tags = {
            k: psec.text(k) for k in ("factory", "device", "channel", "parameter", "window") if psec.has(k)
        }
        try:
            ts = parse_iso_ns(psec.text("time"))
        except ValueError as exc:
            psec.fail("time", str(exc))
        fields: dict[str, float | bool] = {}
        for name in _FIELDS[measurement]:
            if psec.has(name):
                raw = psec.raw(name)
                if isinstance(raw, bool):
                    fields[name] = raw
                else:
                    fields[name] = psec.number(name)
        if not fields:
            psec.fail("", f"an example point of {measurement} needs one of {', '.join(_FIELDS[measurement])}")
        psec.finish()
        points.append(ExamplePoint(measurement, tags, ts, fields))
    devices = []
    for dsec in sec.sections("registry"):
        devices.append(
            ExampleDevice(
                dsec.text("factory"),
                dsec.text("device"),
                dsec.text("kind", choices=DEVICE_KINDS),
                dsec.boolean("public", True),
            )
        )
        dsec.finish()
    value = sec.number("value")
    sec.finish()
    return Example(text, first, tuple(points), tuple(devices), value)


def read_catalogue(root: Section, problems: Problems, agencies: dict[str, Agency]) -> dict[str, Indicator]:
    """The indicators of one catalogue file (agencies: those known so far, this file's included)."""
    found: dict[str, Indicator] = {}
    sections: list[Section] = []
    with problems.gather():
        sections = list(root.sections("indicators", required=True))
    for isec in sections:
        with problems.gather():
            iid = isec.text("id", pattern=ID_PATTERN, hint=ID_HINT)
            if iid in found:
                isec.fail("id", f"indicator '{iid}' is defined twice")
            names = isec.section("name", required=True)
            name_en, name_th = names.text("en"), names.text("th")
            names.finish()
            owner = isec.text("owner")
            with problems.gather():  # read on, so that the formula's problems are reported too
                if owner not in agencies:
                    isec.fail("owner", f"unknown agency '{owner}' (known: {', '.join(sorted(agencies))})")
            periods = tuple(isec.str_list("periods"))
            for p in periods:
                if p not in PERIODS:
                    isec.fail("periods", f"'{p}' is not a period ({', '.join(PERIODS)})")
            if not periods:
                isec.fail("periods", "give at least one period")
            formula = _read_formula(isec.section("formula", required=True))
            public_denominator = isec.text("public_denominator", "scope", choices=("scope", "all_factories"))
            if public_denominator == "all_factories" and formula.aggregation != "flag_true":
                isec.fail("public_denominator", "only a registry flag may count every factory")
            indicator = Indicator(
                id=iid,
                version=isec.integer("version", minimum=1),
                name_en=name_en,
                name_th=name_th,
                owner=owner,
                unit=isec.text("unit"),
                direction=isec.text("direction", choices=DIRECTIONS),
                periods=periods,
                formula=formula,
                source=isec.text("source"),
                example=_read_example(isec.section("example", required=True), formula),
                public_denominator=public_denominator,
                origin=root.source,
            )
            isec.finish()
            found[iid] = indicator
    return found


def _read_agencies(root: Section) -> dict[str, Agency]:
    out: dict[str, Agency] = {}
    for aid, asec in root.mapping_sections("agencies"):
        out[aid] = Agency(aid, asec.text("en"), asec.text("th"))
        asec.finish()
    return out


def load_catalogue(extra_files: tuple[Path, ...] = ()) -> Catalogue:
    """The shipped catalogue and a town's own files (each may add agencies and indicators; an id
    given twice is an error naming both files)."""
    return _load(tuple(str(p) for p in extra_files))


@cache
def _load(extra_files: tuple[str, ...]) -> Catalogue:
    problems = Problems()
    with resources.as_file(resources.files("eit").joinpath("indicators.yaml")) as real:
        roots = [Section.of(read_yaml(real, SOURCE))]
    for name in extra_files:
        roots.append(Section.of(read_yaml(Path(name))))
    agencies: dict[str, Agency] = {}
    indicators: dict[str, Indicator] = {}
    for root in roots:
        with problems.gather():
            if root.has("version"):
                root.integer("version", minimum=1)
            agencies.update(_read_agencies(root))
        for iid, indicator in read_catalogue(root, problems, agencies).items():
            with problems.gather():
                if iid in indicators:
                    root.fail(
                        "indicators", f"indicator '{iid}' is defined in {indicators[iid].origin} already"
                    )
                indicators[iid] = indicator
        with problems.gather():
            root.finish()
    problems.check()
    return Catalogue(agencies, indicators)


# -- the town's targets and open-data settings (the site registry's `indicators` and `open_data`) --
DEFAULT_LICENCE: Final = "CC-BY-4.0"
LICENSES_SOURCE: Final = "eit/licenses.yaml"
# The Data Package contributor roles (Frictionless Data Package v1).
CONTRIBUTOR_ROLES: Final = ("author", "publisher", "maintainer", "wrangler", "contributor")


@dataclass(frozen=True, slots=True)
class Target:
    """An indicator's baseline and target: the trajectory is the straight line between them."""

    indicator: str
    baseline_year: int
    baseline_value: float
    target_year: int
    target_value: float
    source: str
    illustrative: bool
    period: str = YEAR  # the period whose value the baseline, target and trajectory are for

    def trajectory(self, year: int) -> float:
        """The value the straight line from baseline to target gives for ``year`` (the baseline
        before it starts, the target after it ends)."""
        if year <= self.baseline_year:
            return self.baseline_value
        if year >= self.target_year:
            return self.target_value
        share = (year - self.baseline_year) / (self.target_year - self.baseline_year)
        return self.baseline_value + (self.target_value - self.baseline_value) * share


@dataclass(frozen=True, slots=True)
class Licence:
    id: str  # Open Definition id
    title: str
    path: str


@dataclass(frozen=True, slots=True)
class Contributor:
    title: str
    role: str
    email: str = ""


@dataclass(frozen=True, slots=True)
class OpenData:
    licence: Licence
    publisher: str
    contributors: tuple[Contributor, ...] = ()


@dataclass(frozen=True, slots=True)
class TownIndicators:
    """The site registry's indicator settings: the town's own catalogue files and its targets."""

    catalogue_files: tuple[Path, ...] = ()
    targets: dict[str, Target] = dataclasses.field(default_factory=dict)


@cache
def licences() -> dict[str, Licence]:
    with resources.as_file(resources.files("eit").joinpath("licenses.yaml")) as real:
        root = Section.of(read_yaml(real, LICENSES_SOURCE))
    out: dict[str, Licence] = {}
    for sec in root.sections("licenses", required=True):
        lic = Licence(sec.text("id"), sec.text("title"), sec.text("path"))
        sec.finish()
        out[lic.id] = lic
    root.finish()
    return out


def read_town_indicators(sec: Section, base: Path) -> TownIndicators:
    """The registry's ``indicators`` section: ``catalogue_files`` (the town's own indicators) and
    ``targets`` (id -> baseline, target, source, illustrative)."""
    files = []
    for index, name in enumerate(sec.str_list("catalogue_files", [])):
        p = Path(name) if Path(name).is_absolute() else base / name
        if not p.is_file():
            sec.fail("catalogue_files", f"item {index}: file {p} not found")
        files.append(p)
    catalogue = load_catalogue(tuple(files))
    targets: dict[str, Target] = {}
    for iid, tsec in sec.mapping_sections("targets"):
        if iid not in catalogue.indicators:
            tsec.fail(
                "", f"no indicator '{iid}' in the catalogue ({', '.join(sorted(catalogue.indicators))})"
            )
        base_sec = tsec.section("baseline", required=True)
        target_sec = tsec.section("target", required=True)
        baseline_year = base_sec.integer("year", minimum=2000, maximum=2100)
        target_year = target_sec.integer("year", minimum=2000, maximum=2100)
        if target_year <= baseline_year:
            target_sec.fail("year", f"the target year must come after the baseline year {baseline_year}")
        target = Target(
            iid,
            baseline_year,
            base_sec.number("value"),
            target_year,
            target_sec.number("value"),
            tsec.text("source"),
            tsec.boolean("illustrative", False),
            tsec.text("period", YEAR, choices=PERIODS),
        )
        if target.period not in catalogue.indicators[iid].periods:
            tsec.fail(
                "period", f"indicator '{iid}' is computed for {', '.join(catalogue.indicators[iid].periods)}"
            )
        base_sec.finish()
        target_sec.finish()
        tsec.finish()
        targets[iid] = target
    sec.finish()
    return TownIndicators(tuple(files), targets)


def read_open_data(sec: Section, town_name: str) -> OpenData:
    """The registry's ``open_data`` section: ``licence`` (an Open Definition id of
    eit/licenses.yaml, default CC-BY-4.0), ``publisher`` and ``contributors``."""
    known = licences()
    licence_id = sec.text("licence", DEFAULT_LICENCE)
    if licence_id not in known:
        sec.fail("licence", f"'{licence_id}' is not a licence of {LICENSES_SOURCE} ({', '.join(known)})")
    contributors = []
    for csec in sec.sections("contributors"):
        contributors.append(
            Contributor(
                csec.text("title"),
                csec.text(
                    "role", "contributor", choices=("author", "publisher", "maintainer", "contributor")
                ),
                csec.text("email", ""),
            )
        )
        csec.finish()
    publisher = sec.text("publisher", town_name)
    sec.finish()
    return OpenData(known[licence_id], publisher, tuple(contributors))
