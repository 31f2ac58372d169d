"""Thai AQI: sub-indices by linear interpolation inside the PCD bands, overall = the highest.

Breakpoints, averaging periods and band names are data (eit/standards/th_aqi.yaml) with sources;
the unconfirmed ones are marked there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

from eit.confread import Section, read_yaml
from eit.standards import Standards, methods
from eit.store import Point
from eit.storeschema import DEVICE, FACTORY, Aqi
from eit.units import conversion_factor

SOURCE = "eit/standards/th_aqi.yaml"


@dataclass(frozen=True, slots=True)
class AqiPollutant:
    id: str
    averaging: str
    unit: str
    decimals: int
    confirmed: bool
    breakpoints: tuple[tuple[float, float | None], ...]


@dataclass(frozen=True, slots=True)
class AqiTable:
    bands: tuple[tuple[str, int, int | None], ...]  # id, low, high
    pollutants: dict[str, AqiPollutant]
    open_top_band_confirmed: bool


@cache
def aqi_table() -> AqiTable:
    ref = resources.files("eit").joinpath("standards/th_aqi.yaml")
    with resources.as_file(ref) as real:
        root = Section.of(read_yaml(real, SOURCE))
    root.text("source")
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
        listed = psec.raw("breakpoints")
        if not isinstance(listed, list):
            psec.fail("breakpoints", "expected a list of [low, high] pairs")
        bps = tuple(_pair(psec, f"breakpoints.{i}", pair) for i, pair in enumerate(listed))
        if len(bps) != len(bands):
            psec.fail("breakpoints", f"{len(bps)} bands given, the AQI has {len(bands)}")
        pollutants[pid] = AqiPollutant(
            pid,
            psec.text("averaging", choices=("1h", "8h", "24h")),
            psec.text("unit"),
            psec.integer("decimals", minimum=0),
            psec.boolean("confirmed"),
            bps,
        )
        psec.finish()
    table = AqiTable(tuple(bands), pollutants, root.boolean("open_top_band_confirmed"))
    root.finish()
    return table


def sub_index(pollutant: str, concentration: float) -> tuple[float, str]:
    """(AQI sub-index, band id) of a concentration in the pollutant's AQI unit."""
    table = aqi_table()
    p = table.pollutants[pollutant]
    scale = 10**p.decimals
    c = math.floor(max(concentration, 0.0) * scale + 1e-9) / scale  # truncated, as PCD does
    for index, ((c_lo, c_hi), (band, i_lo, i_hi)) in enumerate(zip(p.breakpoints, table.bands, strict=True)):
        if c_hi is None or c <= c_hi:
            if c_hi is None or i_hi is None:
                # Open top band: continue with the slope of the band below.
                (pc_lo, pc_hi), (_, pi_lo, pi_hi) = p.breakpoints[index - 1], table.bands[index - 1]
                assert pc_hi is not None and pi_hi is not None
                slope = (pi_hi - pi_lo) / (pc_hi - pc_lo)
                return i_lo + slope * (c - c_lo), band
            if c < c_lo:  # between two bands' printed limits (e.g. 15.05): the upper band
                c = c_lo
            return (i_hi - i_lo) / (c_hi - c_lo) * (c - c_lo) + i_lo, band
    raise AssertionError("unreachable: the last band is open")


def band_of(aqi: float) -> str:
    for band, _, hi in aqi_table().bands:
        if hi is None or round(aqi) <= hi:
            return band
    return aqi_table().bands[-1][0]


def aqi_points(
    factory: str,
    device: str,
    hour_start_ns: int,
    concentrations: dict[str, tuple[float, str]],
    standards: Standards,
) -> list[Point]:
    """AQI points of one station for one hour. ``concentrations``: parameter -> (average over
    the AQI's averaging period, unit)."""
    table = aqi_table()
    method = methods()[Aqi.NAME].tag
    points = []
    best: float | None = None
    for parameter, (value, unit) in sorted(concentrations.items()):
        p = table.pollutants.get(parameter)
        if p is None:
            continue
        converted = value * conversion_factor(parameter, unit, p.unit, standards)
        index, band = sub_index(parameter, converted)
        best = index if best is None else max(best, index)
        points.append(
            Point(
                Aqi.NAME,
                {FACTORY: factory, DEVICE: device, Aqi.PARAMETER: parameter},
                hour_start_ns,
                {
                    Aqi.VALUE: float(index),
                    Aqi.BAND: band,
                    Aqi.CONCENTRATION: float(converted),
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
                {Aqi.VALUE: float(best), Aqi.BAND: band_of(best), Aqi.METHOD: method},
            )
        )
    return points


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
