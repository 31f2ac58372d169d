"""Loading the standards data shipped in eit/standards/: parameters and limit presets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path

from eit.confread import Section, read_yaml
from eit.errors import ConfigError
from eit.storeschema import Aqi, Daily, Energy, Hourly, Rolling

AVERAGING_PERIODS: dict[str, int] = {
    "instant": 0,
    "1h": 3600,
    "8h": 8 * 3600,
    "24h": 24 * 3600,
    "1mo": 31 * 24 * 3600,
    "1y": 365 * 24 * 3600,
}
PRESET_ID = re.compile(r"[a-z0-9]+(\.[a-z0-9_]+)+")

# Values of a site that a preset's limit may be computed from (a device attribute in the site
# registry), with the unit they are given in.
SITE_VALUES: dict[str, str] = {"receiving_water_tds_mg_l": "mg/L"}


@dataclass(frozen=True, slots=True)
class Parameter:
    id: str
    name_en: str
    name_th: str
    units: tuple[str, ...]
    molecular_weight: float | None


@dataclass(frozen=True, slots=True)
class Limit:
    """A limit on one parameter: a maximum, a minimum, or both (a range such as pH)."""

    parameter: str
    unit: str
    averaging: str
    max: float | None = None
    min: float | None = None
    source: str = ""
    confirmed: bool = True
    averaging_confirmed: bool = True
    effective_from: date | None = None
    effective_to: date | None = None
    dates_confirmed: bool = True  # false where a source gives a date in force as "about"
    origin: str = ""  # "preset th.stack.boiler.biomass" or "permit EIA-2019-044"
    kind: str = "standard"  # "standard" or "permit" (as POMS reports the threshold type)
    note: str = ""

    def in_force(self, day: date) -> bool:
        if self.effective_from is not None and day < self.effective_from:
            return False
        return not (self.effective_to is not None and day > self.effective_to)


@dataclass(frozen=True, slots=True)
class SiteLimit:
    """A limit computed from a value of the site: max = the site value + ``max_above``.

    The site value is a device attribute in the site registry (``SITE_VALUES``). Where a device
    gives it, the registry turns this into a plain :class:`Limit` that replaces the preset's
    limits on the same parameter and averaging; where it does not, the rule does not apply (its
    condition, ``applies_to``, is not met) and the preset's plain limits stand. The rules only
    ever see plain limits.
    """

    parameter: str
    unit: str
    averaging: str
    site_value: str
    max_above: float
    applies_to: str
    source: str
    confirmed: bool = True
    averaging_confirmed: bool = True
    note: str = ""

    def resolve(self, value: float, origin: str) -> Limit:
        return Limit(
            parameter=self.parameter,
            unit=self.unit,
            averaging=self.averaging,
            max=value + self.max_above,
            source=self.source,
            confirmed=self.confirmed,
            averaging_confirmed=self.averaging_confirmed,
            origin=f"{origin}, {self.site_value} {value:g} + {self.max_above:g}",
            kind="standard",
            note=self.note or self.applies_to,
        )


@dataclass(frozen=True, slots=True)
class Preset:
    id: str
    title_en: str
    title_th: str
    kind: str
    source: str
    limits: tuple[Limit, ...]
    reference_o2_percent: float | None = None
    screening: bool = False
    site_limits: tuple[SiteLimit, ...] = ()


@dataclass(frozen=True, slots=True)
class Standards:
    parameters: dict[str, Parameter]
    presets: dict[str, Preset]
    molar_volume_l_per_mol: float
    files: tuple[str, ...] = field(default_factory=tuple)


def read_day(sec: Section, key: str) -> tuple[date | None, bool]:
    """A date in force and whether the sources confirm it to the day: written ``2026-01-01``,
    or ``{date: 2022-07-09, confirmed: false}`` where a source gives it as "about"."""
    if not sec.has(key):
        sec.raw(key, None)
        return None, True
    if not isinstance(sec.data[key], dict):
        return sec.day(key), True
    dated = sec.section(key)
    day = dated.day("date")
    confirmed = dated.boolean("confirmed", True)
    dated.finish()
    return day, confirmed


def read_limit(
    sec: Section, default_source: str, origin: str, kind: str, default_confirmed: bool = True
) -> Limit:
    """Read one limit entry (shared by presets, estate overrides and the site registry's permits)."""
    parameter = sec.text("parameter")
    unit = sec.text("unit")
    averaging = sec.text("averaging", "1h", choices=tuple(AVERAGING_PERIODS))
    max_value = sec.number("max", None)
    min_value = sec.number("min", None)
    if max_value is None and min_value is None:
        sec.fail("max", "a limit needs max, min or both")
    if max_value is not None and min_value is not None and min_value > max_value:
        sec.fail("min", f"min {min_value:g} is above max {max_value:g}")
    source = sec.text("source", default_source)
    if not source:
        sec.fail("source", "every limit needs its source")
    eff_from, from_confirmed = read_day(sec, "effective_from")
    eff_to, to_confirmed = read_day(sec, "effective_to")
    if eff_from and eff_to and eff_to < eff_from:
        sec.fail("effective_to", "ends before it starts")
    limit = Limit(
        parameter=parameter,
        unit=unit,
        averaging=averaging,
        max=max_value,
        min=min_value,
        source=source,
        confirmed=sec.boolean("confirmed", default_confirmed),
        averaging_confirmed=sec.boolean("averaging_confirmed", True),
        effective_from=eff_from,
        effective_to=eff_to,
        dates_confirmed=from_confirmed and to_confirmed,
        origin=origin,
        kind=kind,
        note=sec.text("note", ""),
    )
    sec.finish()
    return limit


def _load_parameters(path: Path | None) -> tuple[dict[str, Parameter], float, str]:
    if path is None:
        ref = resources.files("eit").joinpath("standards/parameters.yaml")
        source = "eit/standards/parameters.yaml"
        with resources.as_file(ref) as real:
            doc = read_yaml(real, source)
    else:
        source = str(path)
        doc = read_yaml(path)
    root = Section.of(doc)
    mv = root.section("molar_volume", required=True)
    molar_volume = mv.number("l_per_mol", exclusive_minimum=0)
    mv.text("source")
    mv.finish()
    params: dict[str, Parameter] = {}
    for pid, sec in root.mapping_sections("parameters", required=True):
        params[pid] = Parameter(
            id=pid,
            name_en=sec.text("en"),
            name_th=sec.text("th"),
            units=tuple(str(u) for u in sec.str_list("units")),
            molecular_weight=sec.number("mw", None, exclusive_minimum=0),
        )
        sec.finish()
    root.finish()
    return params, molar_volume, source


def load_standards(extra_files: tuple[Path, ...] = ()) -> Standards:
    """Parameters plus presets: the shipped Thai presets and any extra preset files."""
    params, molar_volume, params_source = _load_parameters(None)
    presets: dict[str, Preset] = {}
    files = [params_source]
    shipped = resources.files("eit").joinpath("standards/th.yaml")
    with resources.as_file(shipped) as real:
        _load_presets(real, "eit/standards/th.yaml", params, presets)
    files.append("eit/standards/th.yaml")
    for path in extra_files:
        _load_presets(path, str(path), params, presets)
        files.append(str(path))
    return Standards(params, presets, molar_volume, tuple(files))


@cache
def default_standards() -> Standards:
    return load_standards()


def _load_presets(path: Path, source: str, params: dict[str, Parameter], presets: dict[str, Preset]) -> None:
    root = Section.of(read_yaml(path, source))
    root.raw("sources", None)  # YAML anchors for sources; values are read through the limits
    for pid, sec in root.mapping_sections("presets", required=True):
        if not PRESET_ID.fullmatch(pid):
            sec.fail("", "preset ids are dotted lower-case names, e.g. th.stack.boiler.biomass")
        if pid in presets:
            raise ConfigError(source, f"presets.{pid}", "defined twice")
        title = sec.section("title", required=True)
        title_en = title.text("en")
        title_th = title.text("th")
        title.finish()
        kind = sec.text("kind", choices=("stack", "effluent", "ambient", "energy"))
        preset_source = sec.text("source")
        ref = sec.section("reference")
        o2_ref = ref.number("o2_percent", None, minimum=0, maximum=20.9)
        ref.number("temperature_c", None)
        ref.number("pressure_atm", None)
        ref.text("basis", None, choices=("dry", "wet"))
        ref.finish()
        screening = sec.boolean("screening", False)
        confirmed = sec.boolean("confirmed", True)  # the default of its limits
        limits = []
        for lsec in sec.sections("limits", required=True):
            limit = read_limit(lsec, preset_source, f"preset {pid}", "standard", confirmed)
            check_limit_parameter(lsec, limit, params)
            limits.append(limit)
        site_limits = [
            _read_site_limit(lsec, preset_source, confirmed, params) for lsec in sec.sections("site_limits")
        ]
        sec.finish()
        presets[pid] = Preset(
            pid,
            title_en,
            title_th,
            kind,
            preset_source,
            tuple(limits),
            o2_ref,
            screening,
            tuple(site_limits),
        )
    root.finish()


def _read_site_limit(
    sec: Section, default_source: str, default_confirmed: bool, params: dict[str, Parameter]
) -> SiteLimit:
    site_value = sec.text("site_value", choices=tuple(SITE_VALUES))
    limit = SiteLimit(
        parameter=sec.text("parameter"),
        unit=sec.text("unit"),
        averaging=sec.text("averaging", "1h", choices=tuple(AVERAGING_PERIODS)),
        site_value=site_value,
        max_above=sec.number("max_above_site_value", minimum=0),
        applies_to=sec.text("applies_to"),
        source=sec.text("source", default_source),
        confirmed=sec.boolean("confirmed", default_confirmed),
        averaging_confirmed=sec.boolean("averaging_confirmed", True),
        note=sec.text("note", ""),
    )
    if limit.unit != SITE_VALUES[site_value]:
        sec.fail("unit", f"{site_value} is given in {SITE_VALUES[site_value]}, the limit is in {limit.unit}")
    check_limit_parameter(sec, limit.resolve(0.0, ""), params)
    sec.finish()
    return limit


def check_limit_parameter(sec: Section, limit: Limit, params: dict[str, Parameter]) -> None:
    param = params.get(limit.parameter)
    if param is None:
        sec.fail("parameter", f"unknown parameter '{limit.parameter}'")
    if limit.unit not in param.units:
        sec.fail("unit", f"'{limit.unit}' is not a unit of {limit.parameter} ({', '.join(param.units)})")


@dataclass(frozen=True, slots=True)
class Method:
    """How one derived measurement is computed (eit/standards/methods.yaml)."""

    measurement: str
    id: str
    version: int
    confirmed: bool
    source: str

    @property
    def tag(self) -> str:
        """What every stored point of the measurement records: ``minute_means/2``."""
        return f"{self.id}/{self.version}"


DERIVED = (Hourly.NAME, Rolling.NAME, Daily.NAME, Aqi.NAME, Energy.NAME)
METHOD_ID = re.compile(r"[a-z][a-z0-9_]{0,62}")


@cache
def methods() -> dict[str, Method]:
    """The methods of the derived measurements, by measurement name."""
    source = "eit/standards/methods.yaml"
    with resources.as_file(resources.files("eit").joinpath("standards/methods.yaml")) as real:
        root = Section.of(read_yaml(real, source))
    found: dict[str, Method] = {}
    for name, sec in root.mapping_sections("methods", required=True):
        if name not in DERIVED:
            sec.fail("", f"unknown measurement; the derived ones are {', '.join(DERIVED)}")
        found[name] = Method(
            name,
            sec.text("id", pattern=METHOD_ID, hint="a lower-case name such as minute_means"),
            sec.integer("version", minimum=1),
            sec.boolean("confirmed"),
            sec.text("source"),
        )
        sec.text("description")
        sec.finish()
    root.finish()
    missing = [name for name in DERIVED if name not in found]
    if missing:
        root.fail("methods", f"no method for {', '.join(missing)}")
    return found
