"""Meter drivers, chosen by name from the agent's configuration.

A driver is one small protocol (:class:`edge.drivers.base.Driver`): ``connect``, ``read``,
``close``. Each lives in its own module, imported only when a device uses it, so the agent pulls
in pymodbus only when a Modbus device is configured.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edge.drivers.base import Driver, DriverFactory
from eit.confread import Section

_DRIVERS: dict[str, str] = {
    "csv": "edge.drivers.csv_replay",
    "modbus": "edge.drivers.modbus",
    "sim": "edge.drivers.sim",
}


def driver_names() -> tuple[str, ...]:
    return tuple(sorted(_DRIVERS))


def build_driver(name: str, sec: Section, base_dir: Path, device_id: str) -> Driver:
    """Build the driver ``name`` from its configuration section."""
    module = importlib.import_module(_DRIVERS[name])
    factory: DriverFactory = module.from_config
    return factory(sec, base_dir, device_id)
