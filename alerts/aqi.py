"""Thai AQI: sub-indices by linear interpolation inside the PCD bands, overall = the highest.

Breakpoints, the days each table is in force, averaging periods, rounding and band names are data
(eit/standards/th_aqi.yaml) with sources; the unconfirmed ones are marked there.

Each concentration is rounded half up on its decimal text before the band is looked up (PCD
Notification B.E. 2566, clause 4.1), with :class:`decimal.Decimal`: 37.55 is 37.6. Float rounding
would not do: the float nearest 37.55 is 37.54999..., which ``round`` takes down. The decimal text
is the value written with ``SIGNIFICANT_DIGITS`` significant digits, which drops the binary noise
that averaging and unit conversion leave (0.0705 ppm x 1000 = 70.50000000000001 ppb) and keeps
every digit an analyser reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from itertools import pairwise

from eit.confread import Section, read_yaml
from eit.standards import Standards, methods, read_day
from eit.store import Point
from eit.storeschema import DEVICE, FACTORY, Aqi
from eit.units import conversion_factor

SOURCE = "eit/standards/th_aqi.yaml"
SIGNIFICANT_DIGITS = 12
ROUNDING_RULES = {"half_up": ROUND_HALF_UP}

Breakpoints = tuple[tuple[Decimal, Decimal | None], ...]


@dataclass(frozen=True, slots=True)
class BreakpointTable:
    """One pollutant's breakpoints and the local days they are in force (None: open)."""

    effective_from: date | None
    effective_to: date | None
    dates_confirmed: bool
    decimals: int
    confirmed: bool
    source: str
    breakpoints: Breakpoints

    def in_force(self, day: date) -> bool:
        if self.effective_from is not None and day < self.effective_from:
            return False
        return self.effective_to is None or day <= self.effective_to


@dataclass(frozen=True, slots=True)
class AqiPollutant:
    id: str
    averaging: str
    unit: str
    tables: tuple[BreakpointTable, ...]  # in date order, not overlapping

    def table_on(self, day: date) -> BreakpointTable | None:
        return next((t for t in self.tables if t.in_force(day)), None)


@dataclass(frozen=True, slots=True)
class AqiTable:
    bands: tuple[tuple[str, int, int | None], ...]  # id, low, high
    pollutants: dict[str, AqiPollutant]
    open_top_band_confirmed: bool
    rounding: str


@dataclass(frozen=True, slots=True)
class SubIndex:
    value: float
    band: str
    concentration: Decimal  # rounded as the lookup used it, in the pollutant's AQI unit


@cache
def aqi_table() -> AqiTable:
    ref = resources.files("eit").joinpath("standards/th_aqi.yaml")
    with resources.as_file(ref) as real:
        root = Section.of(read_yaml(real, SOURCE))
    root.text("source")
    rounding = root.section("rounding", required=True)
    rule = rounding.text("rule", choices=tuple(ROUNDING_RULES))
    rounding.text("source")
    rounding.finish()
    bands = []
    for bsec in root.sections("bands", required=True):
        low, high = _pair(bsec, "aqi")
        bands.append((bsec.text("id"), int(low), None if high is None else int(high)))
        bsec.text("colour")
        bsec.text("en")
        bsec.text("th")
        bsec.finish()
    pollutants = {}
    for pid, psec in root.mapping_sections("pollutants", required=True):
        averaging = psec.text("averaging", choices=("1h", "8h", "24h"))
        unit = psec.text("unit")
        tables = sorted(
            (_read_table(tsec, len(bands)) for tsec in psec.sections("tables", required=True)),
            key=lambda t: t.effective_from or date.min,
        )
        if not tables:
            psec.fail("tables", "a pollutant needs at least one table")
        for before, after in pairwise(tables):
            if before.effective_to is None or after.effective_from is None:
                psec.fail("tables", "only the first table may be open at the start, the last at the end")
            if before.effective_to >= after.effective_from:
                psec.fail("tables", f"tables overlap: {before.effective_to} and {after.effective_from}")
        pollutants[pid] = AqiPollutant(pid, averaging, unit, tuple(tables))
        psec.finish()
    table = AqiTable(tuple(bands), pollutants, root.boolean("open_top_band_confirmed"), rule)
    root.finish()
    return table


def _read_table(sec: Section, band_count: int) -> BreakpointTable:
    effective_from, from_confirmed = read_day(sec, "effective_from")
    effective_to, to_confirmed = read_day(sec, "effective_to")
    if effective_from and effective_to and effective_to < effective_from:
        sec.fail("effective_to", "ends before it starts")
    decimals = sec.integer("decimals", minimum=0, maximum=6)
    listed = sec.raw("breakpoints")
    if not isinstance(listed, list):
        sec.fail("breakpoints", "expected a list of [low, high] pairs")
    if len(listed) != band_count:
        sec.fail("breakpoints", f"{len(listed)} bands given, the AQI has {band_count}")
    step = Decimal(1).scaleb(-decimals)
    breakpoints: list[tuple[Decimal, Decimal | None]] = []
    for i, pair in enumerate(listed):
        low, high = (_decimal(v) for v in _pair(sec, f"breakpoints.{i}", pair))
        assert low is not None
        for edge in (low, high):
            if edge is not None and edge != edge.quantize(step):
                sec.fail(f"breakpoints.{i}", f"{edge} has more decimals than the table's {decimals}")
        if high is not None and high < low:
            sec.fail(f"breakpoints.{i}", f"{high} is below {low}")
        if high is None and i != band_count - 1:
            sec.fail(f"breakpoints.{i}", "only the top band may be open")
        if not breakpoints and low != 0:
            sec.fail(f"breakpoints.{i}", "the lowest band starts at 0")
        if breakpoints:
            below = breakpoints[-1][1]
            if below is None or low != below + step:
                sec.fail(
                    f"breakpoints.{i}", f"starts at {low}, the band below ends at {below}: a gap or overlap"
                )
        breakpoints.append((low, high))
    table = BreakpointTable(
        effective_from,
        effective_to,
        from_confirmed and to_confirmed,
        decimals,
        sec.boolean("confirmed"),
        sec.text("source"),
        tuple(breakpoints),
    )
    sec.finish()
    return table


def round_concentration(value: float, decimals: int) -> Decimal:
    """``value`` rounded half up to ``decimals`` on its decimal text (negative values count as 0)."""
    text = f"{max(value, 0.0):.{SIGNIFICANT_DIGITS}g}"
    return Decimal(text).quantize(Decimal(1).scaleb(-decimals), rounding=ROUNDING_RULES[aqi_table().rounding])


def sub_index(pollutant: str, concentration: float, day: date) -> SubIndex | None:
    """The AQI sub-index of a concentration in the pollutant's AQI unit, by the table in force on
    the local ``day`` (None: no table in force that day)."""
    table = aqi_table()
    found = table.pollutants[pollutant].table_on(day)
    if found is None:
        return None
    c = round_concentration(concentration, found.decimals)
    for index, ((c_lo, c_hi), (band, i_lo, i_hi)) in enumerate(
        zip(found.breakpoints, table.bands, strict=True)
    ):
        if c_hi is None or i_hi is None:
            # Open top band: continue with the slope of the band below.
            (pc_lo, pc_hi), (_, pi_lo, pi_hi) = found.breakpoints[index - 1], table.bands[index - 1]
            assert pc_hi is not None and pi_hi is not None
            value = i_lo + (pi_hi - pi_lo) * (c - c_lo) / (pc_hi - pc_lo)
            return SubIndex(float(value), band, c)
        if c <= c_hi:  # bands meet at the table's precision, so c_lo <= c here
            # Multiplied before dividing, so that a band's top edge gives its top index exactly.
            value = i_lo + (i_hi - i_lo) * (c - c_lo) / (c_hi - c_lo)
            return SubIndex(float(value), band, c)
    raise AssertionError("unreachable: the last band is open")


def aqi_points(
    factory: str,
    device: str,
    hour_start_ns: int,
    day: date,
    concentrations: dict[str, tuple[float, str]],
    standards: Standards,
) -> list[Point]:
    """AQI points of one station for one hour of the local ``day``. ``concentrations``:
    parameter -> (average over the AQI's averaging period, unit)."""
    table = aqi_table()
    method = methods()[Aqi.NAME].tag
    points = []
    best: SubIndex | None = None
    for parameter, (value, unit) in sorted(concentrations.items()):
        p = table.pollutants.get(parameter)
        if p is None:
            continue
        converted = value * conversion_factor(parameter, unit, p.unit, standards)
        found = sub_index(parameter, converted, day)
        if found is None:
            continue
        if best is None or found.value > best.value:
            best = found
        points.append(
            Point(
                Aqi.NAME,
                {FACTORY: factory, DEVICE: device, Aqi.PARAMETER: parameter},
                hour_start_ns,
                {
                    Aqi.VALUE: found.value,
                    Aqi.BAND: found.band,
                    Aqi.CONCENTRATION: float(found.concentration),
                    Aqi.METHOD: method,
                },
            )
        )
    if best is not None:
        points.append(
            Point(
                Aqi.NAME,
                {FACTORY: factory, DEVICE: device, Aqi.PARAMETER: Aqi.OVERALL},
                hour_start_ns,
                {Aqi.VALUE: best.value, Aqi.BAND: best.band, Aqi.METHOD: method},
            )
        )
    return points


def _decimal(value: float | None) -> Decimal | None:
    # repr gives the shortest text that reads back as the same float: 37.5 -> "37.5".
    return None if value is None else Decimal(repr(value))


def _pair(sec: Section, key: str, value: object = None) -> tuple[float, float | None]:
    """A [low, high] band edge pair (high may be null: open at the top)."""
    pair = sec.raw(key) if value is None else value
    if (
        not isinstance(pair, list)
        or len(pair) != 2
        or not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in pair)
        or pair[0] is None
    ):
        sec.fail(key, "expected [low, high] (high may be null)")
    return float(pair[0]), None if pair[1] is None else float(pair[1])
