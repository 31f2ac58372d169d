"""Unit conversions applied before a value is compared with a limit.

Gas concentrations: mg/m3 = ppm x MW / Vm, with Vm the molar volume at the Thai reference
conditions (25 C, 1 atm; the value lives in eit/standards/parameters.yaml). NOx is expressed as
NO2. Oxygen correction to a reference O2: C_ref = C_meas x (21 - O2_ref) / (21 - O2_meas).
"""

from __future__ import annotations

from eit.standards import Standards

_SCALE: dict[tuple[str, str], float] = {
    ("ppb", "ppm"): 1e-3,
    ("ppm", "ppb"): 1e3,
    ("ug/m3", "mg/m3"): 1e-3,
    ("mg/m3", "ug/m3"): 1e3,
    ("MWh", "kWh"): 1e3,
    ("kWh", "MWh"): 1e-3,
    ("MW", "kW"): 1e3,
    ("kW", "MW"): 1e-3,
    ("m3/d", "m3/h"): 1 / 24,
    ("m3/h", "m3/d"): 24.0,
    ("m3/s", "m3/h"): 3600.0,
    ("m3/h", "m3/s"): 1 / 3600,
}
_VOLUME = {"ppm": 1.0, "ppb": 1e-3}  # in ppm
_MASS = {"mg/m3": 1.0, "ug/m3": 1e-3}  # in mg/m3


class UnitError(ValueError):
    """Two units cannot be converted into each other for a parameter."""


def conversion_factor(parameter: str, from_unit: str, to_unit: str, standards: Standards) -> float:
    """The factor f such that value_in_to_unit = value_in_from_unit * f."""
    if from_unit == to_unit:
        return 1.0
    if (from_unit, to_unit) in _SCALE:
        return _SCALE[(from_unit, to_unit)]
    param = standards.parameters.get(parameter)
    mw = param.molecular_weight if param else None
    if from_unit in _VOLUME and to_unit in _MASS:
        if mw is None:
            raise UnitError(f"{parameter}: no molecular weight to convert {from_unit} to {to_unit}")
        return _VOLUME[from_unit] * mw / standards.molar_volume_l_per_mol / _MASS[to_unit]
    if from_unit in _MASS and to_unit in _VOLUME:
        if mw is None:
            raise UnitError(f"{parameter}: no molecular weight to convert {from_unit} to {to_unit}")
        return _MASS[from_unit] * standards.molar_volume_l_per_mol / mw / _VOLUME[to_unit]
    raise UnitError(f"{parameter}: cannot convert {from_unit} to {to_unit}")


def convert(value: float, parameter: str, from_unit: str, to_unit: str, standards: Standards) -> float:
    return value * conversion_factor(parameter, from_unit, to_unit, standards)


def o2_correct(concentration: float, o2_measured_percent: float, o2_reference_percent: float) -> float:
    """Correct a dry-basis concentration to the reference oxygen content.

    Raises ValueError for O2 at or above 21 %, where the correction is undefined.
    """
    if o2_measured_percent >= 21.0:
        raise ValueError(f"O2 {o2_measured_percent:g} % is at or above 21 %: no oxygen correction possible")
    if o2_measured_percent < 0:
        raise ValueError(f"O2 {o2_measured_percent:g} % is negative")
    return concentration * (21.0 - o2_reference_percent) / (21.0 - o2_measured_percent)
