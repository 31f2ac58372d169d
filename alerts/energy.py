"""Energy and CO2 of energy meters per clock hour: kWh x the grid emission factor in force on
that day (eit/standards/th_grid.yaml: the factors' history, with sources and effective dates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

from eit.confread import Section, read_yaml
from eit.standards import methods
from eit.store import Point
from eit.storeschema import DEVICE, FACTORY, Energy

SOURCE = "eit/standards/th_grid.yaml"


@dataclass(frozen=True, slots=True)
class GridFactor:
    kg_co2e_per_kwh: float
    effective_from: date | None  # None: from the start of the history
    confirmed: bool
    source: str
    # The last day the law still allows the previous factor; the rules use this one from
    # effective_from all the same.
    previous_allowed_until: date | None = None


@cache
def grid_factors() -> tuple[GridFactor, ...]:
    ref = resources.files("eit").joinpath("standards/th_grid.yaml")
    with resources.as_file(ref) as real:
        root = Section.of(read_yaml(real, SOURCE))
    out: list[GridFactor] = []
    for fsec in root.sections("factors", required=True):
        day = fsec.day("effective_from", None)
        allowed = fsec.day("previous_allowed_until", None)
        if allowed is not None and (day is None or allowed < day):
            fsec.fail("previous_allowed_until", "a transition ends on or after the factor's effective_from")
        if any(f.effective_from == day for f in out):
            fsec.fail(
                "effective_from",
                "two factors start on the same day" if day else "two factors without a start",
            )
        out.append(
            GridFactor(
                fsec.number("kg_co2e_per_kwh", exclusive_minimum=0),
                day,
                fsec.boolean("confirmed"),
                fsec.text("source"),
                allowed,
            )
        )
        fsec.finish()
    root.finish()
    return tuple(sorted(out, key=lambda f: f.effective_from or date.min))


def factor_on(day: date) -> GridFactor | None:
    """The factor in force on ``day`` (the latest that started on or before it)."""
    found = None
    for factor in grid_factors():
        if factor.effective_from is None or factor.effective_from <= day:
            found = factor
    return found


def energy_point(factory: str, device: str, hour_start_ns: int, kwh: float, day: date) -> Point | None:
    factor = factor_on(day)
    if factor is None:
        return None
    return Point(
        Energy.NAME,
        {FACTORY: factory, DEVICE: device},
        hour_start_ns,
        {
            Energy.KWH: float(kwh),
            Energy.CO2_KG: float(kwh * factor.kg_co2e_per_kwh),
            Energy.GRID_FACTOR: factor.kg_co2e_per_kwh,
            Energy.METHOD: methods()[Energy.NAME].tag,
        },
    )
