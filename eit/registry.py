"""The site registry: the town, its factories, their devices and channels, and the limits each
channel is held to. A YAML file the operator keeps in version control.

Every error names the file, the key path and the problem, e.g.
``site.yaml: factories[0].devices[1].channels[2].unit: 'mg/Nm3' is not a unit of so2 (ppm, mg/m3)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from eit.confread import Problems, Section, read_yaml
from eit.errors import ConfigError
from eit.indicators import OpenData, TownIndicators, read_open_data, read_town_indicators
from eit.model import ID_HINT, ID_PATTERN
from eit.standards import (
    SITE_VALUES,
    Limit,
    Standards,
    check_limit_parameter,
    load_standards,
    read_limit,
)
from eit.units import UnitError, conversion_factor

DEVICE_KINDS = ("stack", "effluent", "ambient", "energy")
ROLES = ("officer", "supervisor", "admin")
LANGUAGES = ("th", "en")


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    parameter: str
    unit: str
    range_min: float
    range_max: float
    preset: str | None
    preset_limits: tuple[Limit, ...]
    permit_limits: tuple[Limit, ...]
    o2_reference_percent: float | None = None

    def limits_on(self, day: date) -> list[Limit]:
        """The limits in force on ``day``: permits first; presets for averaging periods no
        permit in force covers."""
        permits = [lim for lim in self.permit_limits if lim.in_force(day)]
        covered = {lim.averaging for lim in permits}
        presets = [lim for lim in self.preset_limits if lim.in_force(day) and lim.averaging not in covered]
        return permits + presets


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: str
    name: str
    channels: dict[str, Channel]
    stale_after_s: float | None = None
    # Values of the site that limits are computed from (eit.standards.SITE_VALUES), e.g.
    # receiving_water_tds_mg_l for an outfall to brackish water or the sea.
    site_values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Estate:
    """An industrial estate's own values: for the factories of the estate, each replaces the
    preset's limit on the same parameter and averaging (or adds one the preset lacks)."""

    name: str
    preset_limits: dict[str, tuple[Limit, ...]]  # preset id -> the estate's limits


@dataclass(frozen=True, slots=True)
class FactoryContact:
    """Someone at a factory who is told of the factory's own alerts (by e-mail, or by the Apprise
    URLs the server's notifier configuration gives for ``FACTORY/ID``)."""

    id: str
    name: str
    email: str
    language: str


@dataclass(frozen=True, slots=True)
class Factory:
    id: str
    name: str
    name_th: str
    diw_registration: str
    lat: float
    lon: float
    district: str
    estate: str
    devices: dict[str, Device]
    public: bool = True
    contacts: tuple[FactoryContact, ...] = ()
    # Duties of online monitors (alerts/duties/duties.yaml): `wpms` for a factory discharging
    # more than 500 m3/day of effluent (its effluent devices are WPMS), `cems` for one whose
    # stack devices are CEMS under the DIW notifications.
    wpms: bool = False
    cems: bool = False


@dataclass(frozen=True, slots=True)
class Officer:
    id: str
    name: str
    email: str
    role: str
    language: str
    factories: tuple[str, ...]
    districts: tuple[str, ...]
    escalate_to: str | None = None

    def covers(self, factory: Factory) -> bool:
        if "*" in self.factories:
            return True
        return factory.id in self.factories or factory.district in self.districts


@dataclass(frozen=True, slots=True)
class Registry:
    town_id: str
    town_name: str
    timezone: str
    factories: dict[str, Factory]
    officers: dict[str, Officer]
    standards: Standards
    source: str = ""
    device_count: int = field(default=0)
    estates: dict[str, Estate] = field(default_factory=dict)
    # Town indicators: the town's own catalogue files and targets; the open-data package's licence.
    indicators: TownIndicators = field(default_factory=TownIndicators)
    open_data: OpenData | None = None
    # The town's outline for the map (town.map_outline): rings of (lon, lat), e.g. the coast and
    # land clipped to the estate (scripts/make-map-outline); empty: the map draws a graticule only.
    map_outline: tuple[tuple[tuple[float, float], ...], ...] = ()

    def channel(self, factory: str, device: str, channel: str) -> Channel | None:
        f = self.factories.get(factory)
        if f is None:
            return None
        d = f.devices.get(device)
        if d is None:
            return None
        return d.channels.get(channel)

    def device(self, factory: str, device: str) -> Device | None:
        f = self.factories.get(factory)
        return f.devices.get(device) if f else None

    def officers_for(self, factory: str) -> list[Officer]:
        f = self.factories.get(factory)
        if f is None:
            return []
        return [o for o in self.officers.values() if o.covers(f)]


def load_registry(path: Path | str) -> Registry:
    """Load and check a site registry file; every problem found is reported at once."""
    path = Path(path)
    source = str(path)
    root = Section.of(read_yaml(path))
    problems = Problems()
    standards = load_standards(tuple(_extra_standards(root, path.parent)))
    town_id, town_name, timezone = "", "", "Asia/Bangkok"
    map_outline: tuple[tuple[tuple[float, float], ...], ...] = ()
    with problems.gather():
        town = root.section("town", required=True)
        town_id = town.text("id", pattern=ID_PATTERN, hint=ID_HINT)
        town_name = town.text("name")
        timezone = town.text("timezone", "Asia/Bangkok")
        if not _is_time_zone(timezone):
            town.fail(
                "timezone",
                f"'{timezone[:64]}' is not an IANA time zone (e.g. Asia/Bangkok; zoneinfo with the"
                " tzdata package)",
            )
        map_outline = _map_outline(town)
        town.finish()

    estates: dict[str, Estate] = {}
    estate_sections: list[Section] = []
    with problems.gather():
        estate_sections = list(root.sections("estates"))
    for esec in estate_sections:
        with problems.gather():
            estate = _read_estate(esec, standards, problems)
            if estate.name in estates:
                esec.fail("name", f"estate '{estate.name}' is defined twice")
            estates[estate.name] = estate

    factories: dict[str, Factory] = {}
    device_count = 0
    factory_sections: list[Section] = []
    with problems.gather():
        factory_sections = list(root.sections("factories", required=True))
        if not factory_sections:
            root.fail("factories", "the registry lists no factories")
    for fsec in factory_sections:
        with problems.gather():
            factory = _read_factory(fsec, standards, estates, problems)
            if factory.id in factories:
                fsec.fail("id", f"factory '{factory.id}' is defined twice")
            factories[factory.id] = factory
            device_count += len(factory.devices)
    estates_listed = {str(fsec.data.get("estate", "")) for fsec in factory_sections}
    for esec in estate_sections:
        with problems.gather():
            name = esec.data.get("name")
            if isinstance(name, str) and name not in estates_listed:
                esec.fail("name", f"no factory is in estate '{name}' (a factory's `estate` names it)")

    # Officers are checked against every factory the file lists, read or not, so a factory with
    # a problem of its own does not make each officer covering it a problem too.
    listed = [fsec.data for fsec in factory_sections]
    factory_ids = {str(f.get("id")) for f in listed}
    districts = {str(f.get("district", "")) for f in listed}
    officers: dict[str, Officer] = {}
    officer_sections: list[Section] = []
    with problems.gather():
        officer_sections = list(root.sections("officers"))
    for osec in officer_sections:
        with problems.gather():
            officer = _read_officer(osec, factory_ids, districts)
            if officer.id in officers:
                osec.fail("id", f"officer '{officer.id}' is defined twice")
            officers[officer.id] = officer
    officer_ids = {osec.data.get("id") for osec in officer_sections}  # read or not, as above
    for osec in officer_sections:
        with problems.gather():
            escalate_to = osec.data.get("escalate_to")
            if isinstance(escalate_to, str) and escalate_to not in officer_ids:
                osec.fail("escalate_to", f"no officer '{escalate_to}'")
    # Town indicators and open data (eit/indicators.py).
    indicators = TownIndicators()
    open_data: OpenData | None = None
    with problems.gather():
        indicators = read_town_indicators(root.section("indicators"), path.parent)
    with problems.gather():
        open_data = read_open_data(root.section("open_data"), town_name)

    with problems.gather():
        root.finish()
    problems.check()
    return Registry(
        town_id,
        town_name,
        timezone,
        factories,
        officers,
        standards,
        source,
        device_count,
        estates,
        indicators,
        open_data,
        map_outline,
    )


def _map_outline(town: Section) -> tuple[tuple[tuple[float, float], ...], ...]:
    """town.map_outline: a list of rings, each a list of at least 3 [lon, lat] points."""
    raw = town.raw("map_outline", None)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        town.fail("map_outline", "expected a list of rings, each a list of [lon, lat] points")
    rings = []
    for i, ring in enumerate(raw):
        if not isinstance(ring, list) or len(ring) < 3:
            town.fail("map_outline", f"ring {i}: expected at least 3 [lon, lat] points")
        points = []
        for j, pt in enumerate(ring):
            ok = (
                isinstance(pt, list)
                and len(pt) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pt)
                and -180 <= pt[0] <= 180
                and -90 <= pt[1] <= 90
            )
            if not ok:
                town.fail("map_outline", f"ring {i}, point {j}: expected [lon, lat] in degrees, got {pt!r}")
            points.append((float(pt[0]), float(pt[1])))
        rings.append(tuple(points))
    return tuple(rings)


def _extra_standards(root: Section, base: Path) -> list[Path]:
    files = root.str_list("standards_files", [])
    paths = []
    for index, name in enumerate(files):
        p = Path(name)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            root.fail("standards_files", f"item {index}: file {p} not found")
        paths.append(p)
    return paths


def _read_estate(sec: Section, standards: Standards, problems: Problems) -> Estate:
    name = sec.text("name")
    preset_limits: dict[str, tuple[Limit, ...]] = {}
    for pid, psec in sec.mapping_sections("presets", required=True):
        with problems.gather():
            if pid not in standards.presets:
                psec.fail("", f"unknown preset '{pid}'")
            source = psec.text("source")
            limits = []
            seen: set[tuple[str, str]] = set()
            for lsec in psec.sections("limits", required=True):
                limit = read_limit(lsec, source, f"preset {pid}, values of estate '{name}'", "standard")
                check_limit_parameter(lsec, limit, standards.parameters)
                if (limit.parameter, limit.averaging) in seen:
                    lsec.fail("parameter", f"{limit.parameter} ({limit.averaging}) is given twice for {pid}")
                seen.add((limit.parameter, limit.averaging))
                limits.append(limit)
            psec.finish()
            preset_limits[pid] = tuple(limits)
    sec.finish()
    return Estate(name, preset_limits)


def _read_factory(
    sec: Section, standards: Standards, estates: dict[str, Estate], problems: Problems
) -> Factory:
    fid = sec.text("id", pattern=ID_PATTERN, hint=ID_HINT)
    estate_name = sec.text("estate", "")
    estate = estates.get(estate_name)
    lat, lon = 0.0, 0.0
    with problems.gather():
        location = sec.section("location", required=True)
        lat = location.number("lat", minimum=-90, maximum=90)
        lon = location.number("lon", minimum=-180, maximum=180)
        location.finish()
    devices: dict[str, Device] = {}
    for dsec in sec.sections("devices", required=True):
        with problems.gather():
            device = _read_device(dsec, standards, estate, problems)
            if device.id in devices:
                dsec.fail("id", f"device '{device.id}' is defined twice in factory '{fid}'")
            devices[device.id] = device
    factory = Factory(
        id=fid,
        name=sec.text("name"),
        name_th=sec.text("name_th", ""),
        diw_registration=sec.text("diw_registration", ""),
        lat=lat,
        lon=lon,
        district=sec.text("district", ""),
        estate=estate_name,
        devices=devices,
        public=sec.boolean("public", True),
        contacts=_read_contacts(sec, fid, problems),
        wpms=sec.boolean("wpms", False),
        cems=sec.boolean("cems", False),
    )
    sec.finish()
    return factory


# An e-mail address as the registry takes it: something@somewhere.tld, without spaces.
EMAIL_PATTERN = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]+")


def _read_contacts(sec: Section, factory: str, problems: Problems) -> tuple[FactoryContact, ...]:
    """``contacts:`` of a factory: who at the factory hears of its alerts."""
    contacts: dict[str, FactoryContact] = {}
    for csec in sec.sections("contacts"):
        with problems.gather():
            cid = csec.text("id", pattern=ID_PATTERN, hint=ID_HINT)
            email = csec.text("email", "")
            if email and not EMAIL_PATTERN.fullmatch(email):
                csec.fail("email", f"'{email}' is not an e-mail address (name@example.org)")
            contact = FactoryContact(
                id=cid,
                name=csec.text("name", cid),
                email=email,
                language=csec.text("language", "th", choices=LANGUAGES),
            )
            csec.finish()
            if cid in contacts:
                csec.fail("id", f"contact '{cid}' is defined twice in factory '{factory}'")
            contacts[cid] = contact
    return tuple(contacts.values())


def _read_device(sec: Section, standards: Standards, estate: Estate | None, problems: Problems) -> Device:
    did = sec.text("id", pattern=ID_PATTERN, hint=ID_HINT)
    # A wrong kind is raised after the device's channels are checked (against no kind), so that
    # their problems are found in the same run.
    kind: str | None = None
    kind_error: ConfigError | None = None
    try:
        kind = sec.text("kind", choices=DEVICE_KINDS)
    except ConfigError as exc:
        kind_error = exc
    device_preset = _preset_id(sec, standards, kind)
    site_values: dict[str, float] = {}
    for name in SITE_VALUES:
        value = sec.number(name, None, minimum=0)
        if value is not None:
            site_values[name] = value
    channels: dict[str, Channel] = {}
    channel_sections = list(sec.sections("channels", required=True))
    if not channel_sections:
        sec.fail("channels", "a device needs at least one channel")
    used: set[str] = set()
    for csec in channel_sections:
        with problems.gather():
            channel = _read_channel(csec, standards, device_preset, kind, estate, site_values, used)
            if channel.id in channels:
                csec.fail("id", f"channel '{channel.id}' is defined twice in device '{did}'")
            channels[channel.id] = channel
    if len(channels) == len(channel_sections):  # (a channel with a problem is reported already)
        for name in site_values:
            if name not in used:
                users = [
                    f"{lim.parameter} under {p.id}"
                    for p in standards.presets.values()
                    for lim in p.site_limits
                    if lim.site_value == name
                ]
                sec.fail(name, f"no channel here has a limit made from it (only {', '.join(users)})")
    if kind_error is not None or kind is None:
        raise kind_error or ConfigError(sec.source, sec.key_path("kind"), "required key is missing")
    device = Device(
        id=did,
        kind=kind,
        name=sec.text("name", did),
        channels=channels,
        stale_after_s=sec.number("stale_after_s", None, exclusive_minimum=0),
        site_values=site_values,
    )
    sec.finish()
    return device


def _preset_id(sec: Section, standards: Standards, kind: str | None) -> str | None:
    preset = sec.text("standard", None)
    if preset is None:
        return None
    if preset not in standards.presets:
        close = [p for p in standards.presets if p.startswith(preset.rsplit(".", 1)[0])]
        hint = f" (did you mean {', '.join(sorted(close))}?)" if close else ""
        sec.fail("standard", f"unknown preset '{preset}'{hint}")
    if kind is not None and standards.presets[preset].kind != kind:
        sec.fail("standard", f"preset '{preset}' is for {standards.presets[preset].kind} devices, not {kind}")
    return str(preset)


def _read_channel(
    sec: Section,
    standards: Standards,
    device_preset: str | None,
    kind: str | None,
    estate: Estate | None,
    site_values: dict[str, float],
    used_site_values: set[str],
) -> Channel:
    cid = sec.text("id", pattern=ID_PATTERN, hint=ID_HINT)
    parameter = sec.text("parameter", cid)
    param = standards.parameters.get(parameter)
    if param is None:
        sec.fail(
            "parameter" if sec.has("parameter") else "id",
            f"unknown parameter '{parameter}' (known: {', '.join(sorted(standards.parameters))})",
        )
    unit = sec.text("unit")
    if unit not in param.units:
        sec.fail("unit", f"'{unit}' is not a unit of {parameter} ({', '.join(param.units)})")
    rng = sec.raw("range")
    if (
        not isinstance(rng, list)
        or len(rng) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng)
    ):
        sec.fail("range", "the measuring range must be [min, max], e.g. [0, 500]")
    if rng[0] >= rng[1]:
        sec.fail("range", f"min {rng[0]} must be below max {rng[1]}")
    preset = _preset_id(sec, standards, kind) if sec.has("standard") else device_preset
    preset_limits: tuple[Limit, ...] = ()
    o2_ref = None
    if preset is not None:
        p = standards.presets[preset]
        preset_limits = tuple(lim for lim in p.limits if lim.parameter == parameter)
        if estate is not None and preset in estate.preset_limits:
            preset_limits = _replace(
                preset_limits, [lim for lim in estate.preset_limits[preset] if lim.parameter == parameter]
            )
        for site_limit in p.site_limits:
            value = site_values.get(site_limit.site_value)
            if site_limit.parameter == parameter and value is not None:
                used_site_values.add(site_limit.site_value)
                preset_limits = _replace(preset_limits, [site_limit.resolve(value, f"preset {preset}")])
        o2_ref = p.reference_o2_percent
        for lim in preset_limits:
            _check_convertible(sec, "standard", lim, unit, standards)
    permits = []
    for psec in sec.sections("permit"):
        permit_id = psec.text("permit_id", "permit")
        psec.data.setdefault("parameter", parameter)
        limit = read_limit(_without(psec, "permit_id"), "", f"permit {permit_id}", "permit")
        if limit.parameter != parameter:
            psec.fail("parameter", f"a permit on channel '{cid}' must be for {parameter}")
        _check_convertible(psec, "unit", limit, unit, standards)
        permits.append(limit)
    sec.finish()
    return Channel(
        id=cid,
        parameter=parameter,
        unit=unit,
        range_min=float(rng[0]),
        range_max=float(rng[1]),
        preset=preset,
        preset_limits=preset_limits,
        permit_limits=tuple(permits),
        o2_reference_percent=o2_ref,
    )


def _replace(limits: tuple[Limit, ...], replacements: list[Limit]) -> tuple[Limit, ...]:
    """``limits`` with each replacement in place of those on its parameter and averaging."""
    replaced = {(lim.parameter, lim.averaging) for lim in replacements}
    kept = [lim for lim in limits if (lim.parameter, lim.averaging) not in replaced]
    return (*kept, *replacements)


def _without(sec: Section, key: str) -> Section:
    """The same section with ``key`` taken out (already read by the caller)."""
    data = {k: v for k, v in sec.data.items() if k != key}
    return Section(data, sec.source, sec.path, sec.origins)


def _check_convertible(sec: Section, key: str, lim: Limit, unit: str, standards: Standards) -> None:
    try:
        conversion_factor(lim.parameter, lim.unit, unit, standards)
    except UnitError as exc:
        sec.fail(key, f"limit from {lim.origin} is in {lim.unit}, channel is in {unit}: {exc}")


def _read_officer(sec: Section, factory_ids: set[str], known_districts: set[str]) -> Officer:
    oid = sec.text("id", pattern=ID_PATTERN, hint=ID_HINT)
    fact = tuple(sec.str_list("factories", []))
    for f in fact:
        if f != "*" and f not in factory_ids:
            sec.fail("factories", f"no factory '{f}' in the registry")
    districts = tuple(sec.str_list("districts", []))
    for d in districts:
        if d not in known_districts:
            sec.fail("districts", f"no factory is in district '{d}'")
    officer = Officer(
        id=oid,
        name=sec.text("name"),
        email=sec.text("email", ""),
        role=sec.text("role", "officer", choices=ROLES),
        language=sec.text("language", "th", choices=LANGUAGES),
        factories=fact,
        districts=districts,
        escalate_to=sec.text("escalate_to", None),
    )
    sec.finish()
    return officer


def _is_time_zone(name: str) -> bool:
    """Whether zoneinfo knows ``name`` (the system's zone files, else the tzdata package: the
    same answer on every machine the platform is installed on)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
