"""The integrity analytics' thresholds, read from data (alerts/integrity/thresholds.yaml by
default, or an officer's own file): every number a detector compares with, its rationale, and the
statistical test with its significance where one decides.

Read with the platform's YAML loader: a wrong value is reported with the file, the line and the
key path, every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from eit.confread import Problems, Section, read_yaml

SHIPPED = "alerts/integrity/thresholds.yaml"


@dataclass(frozen=True, slots=True)
class Running:
    """When a plant counts as running in an hour."""

    power_fraction: float
    flow_fraction: float
    o2_firing_max_percent: float
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "power_fraction": (0.01, 0.99),
        "flow_fraction": (0.01, 0.99),
        "o2_firing_max_percent": (1.0, 20.9),
    }


@dataclass(frozen=True, slots=True)
class O2Thresholds:
    alpha: float
    min_step_percent: float
    splits: tuple[float, ...]
    min_hours_above: int
    min_hours_below: int
    floor_share: float
    floors: dict[str, float]
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "alpha": (1e-12, 0.05),
        "min_step_percent": (0.1, 10.0),
        "min_hours_above": (3, 500),
        "min_hours_below": (10, 500),
        "floor_share": (0.001, 1.0),
    }


@dataclass(frozen=True, slots=True)
class HuggingThresholds:
    alpha: float
    min_drop: float
    bandwidth_sd: float
    min_bandwidth: float
    max_bandwidth: float
    bins_per_side: int
    min_hours_near: int
    edge_band_from: float
    edge_step: float
    min_rate_ratio: float
    min_edges: int
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "alpha": (1e-12, 0.05),
        "edge_band_from": (0.1, 1.0),
        "edge_step": (0.1, 10.0),
        "min_rate_ratio": (1.0, 100.0),
        "min_edges": (1, 10000),
        "min_drop": (0.0, 0.99),
        "bandwidth_sd": (0.1, 10.0),
        "min_bandwidth": (0.005, 1.0),
        "max_bandwidth": (0.005, 1.0),
        "bins_per_side": (3, 100),
        "min_hours_near": (1, 1000),
    }


@dataclass(frozen=True, slots=True)
class SmoothnessThresholds:
    day_ratio: float
    min_days: int
    min_running_minutes_per_day: int
    peer_ratio: float
    min_peers: int
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "day_ratio": (0.001, 1.0),
        "min_days": (1, 31),
        "min_running_minutes_per_day": (60, 1440),
        "peer_ratio": (0.001, 1.0),
        "min_peers": (2, 10000),
    }


@dataclass(frozen=True, slots=True)
class ReplayThresholds:
    min_run_minutes: int
    max_group: int
    candidates: int
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "min_run_minutes": (10, 44640),
        "max_group": (2, 100),
        "candidates": (1, 100),
    }


@dataclass(frozen=True, slots=True)
class FlagThresholds:
    alpha: float
    expected_share: float
    min_share: float
    flagged_minutes_per_hour: int
    min_running_hours: int
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "alpha": (1e-12, 0.05),
        "expected_share": (0.0001, 0.5),
        "min_share": (0.001, 1.0),
        "flagged_minutes_per_hour": (1, 60),
        "min_running_hours": (1, 744),
    }


@dataclass(frozen=True, slots=True)
class CrossChannelThresholds:
    min_run_hours: int
    min_mismatch_hours: int
    alpha: float
    min_rank_correlation: float
    min_power_variation: float
    min_hours: int
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "min_run_hours": (1, 744),
        "min_mismatch_hours": (1, 744),
        "alpha": (1e-12, 0.05),
        "min_rank_correlation": (-1.0, 1.0),
        "min_power_variation": (0.0, 10.0),
        "min_hours": (10, 744),
    }


@dataclass(frozen=True, slots=True)
class Thresholds:
    source: str
    running: Running
    o2_manipulation: O2Thresholds
    limit_hugging: HuggingThresholds
    implausible_smoothness: SmoothnessThresholds
    replay: ReplayThresholds
    flag_abuse: FlagThresholds
    cross_channel: CrossChannelThresholds

    def o2_floor(self, preset: str | None) -> float | None:
        """The O2 floor of a preset: the longest prefix listed (``th.stack.boiler``) wins."""
        if preset is None:
            return None
        best: tuple[int, float] | None = None
        for prefix, floor in self.o2_manipulation.floors.items():
            if (preset == prefix or preset.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), floor)
        return best[1] if best else None


KINDS = (
    "o2_manipulation",
    "limit_hugging",
    "implausible_smoothness",
    "replay",
    "flag_abuse",
    "cross_channel",
)


def _read(sec: Section, cls: Any, extra: dict[str, Any] | None = None) -> Any:
    """The dataclass ``cls`` from ``sec``: numbers within the class's bounds; the kind's
    ``test``, ``rationale`` and ``references`` are text every kind must carry."""
    values: dict[str, Any] = dict(extra or {})
    for f in fields(cls):
        if f.name in values:
            continue
        if f.type == "int":
            low, high = cls.BOUNDS[f.name]
            values[f.name] = sec.integer(f.name, minimum=int(low), maximum=int(high))
        elif f.type == "tuple[float, ...]":
            raw = sec.raw(f.name)
            if (
                not isinstance(raw, list)
                or not raw
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
            ):
                sec.fail(f.name, "expected a list of numbers, e.g. [0.5, 0.6, 0.7]")
            values[f.name] = tuple(float(v) for v in raw)
        else:
            low, high = cls.BOUNDS[f.name]
            values[f.name] = sec.number(f.name, minimum=low, maximum=high)
    return cls(**values)


def _explained(sec: Section) -> None:
    sec.text("rationale")
    sec.str_list("references", [])
    sec.boolean("confirmed", True)
    if sec.has("test"):
        sec.text("test")


def load_thresholds(path: Path | str | None = None) -> Thresholds:
    """The thresholds file (the shipped one by default); every problem reported at once."""
    if path is None:
        with resources.as_file(resources.files("alerts").joinpath("integrity/thresholds.yaml")) as real:
            doc = read_yaml(real, SHIPPED)
        source = SHIPPED
    else:
        source = str(path)
        doc = read_yaml(path)
    root = Section.of(doc)
    problems = Problems()
    parts: dict[str, Any] = {}
    with problems.gather():
        root.integer("version", minimum=1, maximum=1)
    with problems.gather():
        sec = root.section("running", required=True)
        _explained(sec)
        parts["running"] = _read(sec, Running)
        sec.finish()
    kinds = root.section("kinds", required=True)
    readers: dict[str, Any] = {
        "limit_hugging": HuggingThresholds,
        "implausible_smoothness": SmoothnessThresholds,
        "replay": ReplayThresholds,
        "flag_abuse": FlagThresholds,
        "cross_channel": CrossChannelThresholds,
    }
    for kind in KINDS:
        with problems.gather():
            sec = kinds.section(kind, required=True)
            _explained(sec)
            if kind == "o2_manipulation":
                floors: dict[str, float] = {}
                fsec = sec.section("floors", required=True)
                for preset in list(fsec.data):
                    floors[str(preset)] = fsec.number(str(preset), minimum=0.0, maximum=20.9)
                fsec.finish()
                parts[kind] = _read(sec, O2Thresholds, {"floors": floors})
            else:
                parts[kind] = _read(sec, readers[kind])
            sec.finish()
    with problems.gather():
        kinds.finish()
    with problems.gather():
        root.finish()
    problems.check()
    hug: HuggingThresholds = parts["limit_hugging"]
    if hug.min_bandwidth > hug.max_bandwidth:
        kinds.section("limit_hugging").fail("min_bandwidth", "is above max_bandwidth")
    return Thresholds(source=source, **parts)
