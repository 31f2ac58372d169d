"""A clean town for the integrity analytics' evaluation, and the manipulations to inject into it.

The generator's parameters are data (bench/integrity_town.yaml), and so are the injections
(bench/integrity_injections.yaml). Each device-month is one stack CEMS (three pollutants, O2,
flow, temperature) of a factory with an energy meter, minute by minute over a local calendar
month: a plant load with a day shift, lighter Sundays, a slow random process and stops with
ramps; O2, flow and temperature following the load (temperature with the stack's lag); pollutant
concentrations following the load with processes at the minute and the hour scale and the
analyzer's noise, at the analyzer's resolution; daily calibration checks (C), maintenance (M),
stops flagged F, communication gaps. The arrays are the detectors' own input
(alerts/integrity/month.py), so the evaluation needs no store; :func:`readings` gives the same
device-month as readings for the tests that go through a real store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml
from scipy.signal import lfilter

from alerts.integrity.load import computed_hours
from alerts.integrity.month import (
    FLAG_CODES,
    MINUTE_NS,
    MINUTES_PER_HOUR,
    ChannelMinutes,
    DeviceMonth,
    FloatArray,
    PollutantHours,
    hourly_means,
)
from eit.confread import load_yaml
from eit.model import Reading
from eit.standards import Standards, default_standards
from eit.timeutil import datetime_to_ns
from eit.units import conversion_factor

HERE = Path(__file__).resolve().parent
TOWN_FILE = HERE / "integrity_town.yaml"
INJECTIONS_FILE = HERE / "integrity_injections.yaml"
DEVICE = "stack-1"
METER = "meter-1"
ANALYZER_CODES = ("C", "M", "F")
N, C, M, F = (FLAG_CODES[f] for f in ("N", "C", "M", "F"))


def factory_id(index: int) -> str:
    return f"g{index:04d}"


def load_params(path: Path = TOWN_FILE) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(path)
    return data


def load_injections(path: Path = INJECTIONS_FILE) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = load_yaml(path)["injections"]
    return data


def _draw(rng: np.random.Generator, spec: Any) -> float:
    if isinstance(spec, list):
        return float(rng.uniform(spec[0], spec[1]))
    return float(spec)


def profile_of(params: dict[str, Any], seed: int, index: int) -> str:
    names = list(params["profiles"])
    weights = np.array([params["profiles"][n]["weight"] for n in names], dtype=float)
    rng = np.random.default_rng([seed, index, 0])
    return str(names[int(rng.choice(len(names), p=weights / weights.sum()))])


def month_start(params: dict[str, Any]) -> tuple[datetime, int]:
    """The month's first local instant and its length in minutes."""
    tz = ZoneInfo(params["town"]["timezone"])
    first = date.fromisoformat(params["town"]["month"] + "-01")
    following = (first + timedelta(days=32)).replace(day=1)
    start = datetime(first.year, first.month, 1, tzinfo=tz)
    end = datetime(following.year, following.month, 1, tzinfo=tz)
    return start, int((end - start).total_seconds()) // 60


@dataclass(slots=True)
class Generated:
    """One clean (or injected) device-month, with what the generator knows about it."""

    month: DeviceMonth
    profile: str
    power_minutes: FloatArray
    limits: dict[str, float]  # pollutant -> 1-hour limit in the channel's unit
    references: dict[str, float | None]
    resolution: dict[str, float]
    ranges: dict[str, tuple[float, float]]
    injected: dict[str, Any] = field(default_factory=dict)

    def rebuild_hours(self) -> None:
        """The pollutants' hourly averages again, from the minutes (after an injection)."""
        o2 = self.month.channels["o2"].value
        for name, p in self.month.pollutants.items():
            limit = np.full(self.month.hours, self.limits[name])
            raw, corrected, valid = computed_hours(
                self.month.channels[name].value, o2, self.references[name], limit
            )
            p.raw, p.corrected, p.valid = raw, corrected, valid


def _ar(rng: np.random.Generator, n: int, sd: float, tau: float) -> FloatArray:
    """A stationary AR(1) process of ``n`` steps, standard deviation ``sd``, time constant ``tau``."""
    phi = float(np.exp(-1.0 / max(tau, 1e-9)))
    white = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    out: FloatArray = lfilter([1.0], [1.0, -phi], white)
    out[0] = rng.normal(0.0, sd)  # start in the stationary state
    return out


def _round(values: FloatArray, resolution: float, low: float, high: float) -> FloatArray:
    return np.clip(np.round(values / resolution) * resolution, low, high)


def generate(params: dict[str, Any], seed: int, index: int, standards: Standards | None = None) -> Generated:
    standards = standards or default_standards()
    profile_name = profile_of(params, seed, index)
    prof = params["profiles"][profile_name]
    plant = params["plant"]
    rng = np.random.default_rng([seed, index, 1])
    start, minutes = month_start(params)
    hours = minutes // MINUTES_PER_HOUR
    grid_start = datetime_to_ns(start)
    minute = np.arange(minutes)
    local_hour = (minute // 60) % 24
    weekday = np.array([(start + timedelta(minutes=int(m))).weekday() for m in range(0, minutes, 1440)])
    sunday = np.repeat(weekday == 6, 1440)[:minutes]

    # -- the plant's load -------------------------------------------------------------------------
    base = _draw(rng, plant["base"])
    shift = _draw(rng, plant["day_shift"])
    sunday_factor = _draw(rng, plant["sunday_factor"])
    hourly_load = base + _ar(rng, hours, plant["ar_sd"], plant["ar_hours"])
    load = np.interp(minute, np.arange(hours) * 60 + 30, hourly_load)
    load = load + np.where((local_hour >= 8) & (local_hour < 17), shift, 0.0)
    load = np.clip(np.where(sunday, load * sunday_factor, load), 0.15, 1.0)
    envelope = np.ones(minutes)
    stop_mask = np.zeros(minutes, dtype=bool)
    flagged_stops = np.zeros(minutes, dtype=bool)
    for _ in range(int(rng.poisson(plant["stops_per_month"]))):
        length = int(_draw(rng, plant["stop_hours"]) * 60)
        ramp = max(1, int(_draw(rng, plant["ramp_hours"]) * 60))
        first = int(rng.integers(0, minutes))
        last = min(minutes, first + length)
        stop_mask[first:last] = True
        down = np.arange(max(0, first - ramp), first)
        envelope[down] = np.minimum(envelope[down], (first - down) / ramp)
        up = np.arange(last, min(minutes, last + ramp))
        envelope[up] = np.minimum(envelope[up], (up - last + 1) / ramp)
        if rng.random() < plant["flag_f_share"]:
            flagged_stops[first:last] = True
    envelope[stop_mask] = 0.0
    effort = load * envelope
    firing = effort > 0.02

    # -- energy meter ------------------------------------------------------------------------------
    pw = prof["power"]
    full_kw = _draw(rng, pw["full_load_kw"])
    power = full_kw * (pw["idle_share"] + (1 - pw["idle_share"]) * effort)
    power = power * (1 + rng.normal(0.0, pw["noise_sd"], minutes))

    channels: dict[str, ChannelMinutes] = {}
    resolution: dict[str, float] = {}
    ranges: dict[str, tuple[float, float]] = {}

    def put(name: str, parameter: str, unit: str, values: FloatArray, spec: dict[str, Any]) -> None:
        low, high = spec.get("range", [0.0, 1e12])
        resolution[name] = float(spec["resolution"])
        ranges[name] = (float(low), float(high))
        channels[name] = ChannelMinutes(
            name,
            parameter,
            unit,
            _round(values, spec["resolution"], low, high),
            np.full(minutes, N, dtype=np.uint8),
        )

    # -- O2, flow, temperature ----------------------------------------------------------------------
    o2s = prof["o2"]
    o2_true = _draw(rng, o2s["full_load"]) + _draw(rng, o2s["low_load_rise"]) * (1 - effort)
    o2_true = o2_true + _ar(rng, minutes, o2s["ar_sd"], o2s["ar_minutes"])
    o2_true = np.where(firing, o2_true, 20.9)
    o2_value = o2_true + rng.normal(0.0, o2s["noise_sd"], minutes)
    put("o2", "o2", "%", np.clip(o2_value, 0.0, 20.95), o2s | {"range": [0, 25]})
    fl = prof["flow"]
    flow_full = _draw(rng, fl["full_load"])
    flow = (
        flow_full
        * (fl["min_share"] + (1 - fl["min_share"]) * effort)
        * (1 + rng.normal(0, fl["noise_sd"], minutes))
    )
    flow = np.where(firing, flow, np.abs(rng.normal(0.0, 0.003 * flow_full, minutes)))
    put("flow", "flow", "m3/h", flow, fl)
    te = prof["temperature"]
    target = np.where(
        firing, _draw(rng, te["full_load"]) - _draw(rng, te["low_load_drop"]) * (1 - effort), te["ambient"]
    )
    k = 1.0 / te["tau_minutes"]
    temperature, _ = lfilter([k], [1.0, -(1.0 - k)], target, zi=[target[0] * (1 - k)])
    put("temperature", "temperature", "C", temperature + rng.normal(0.0, te["noise_sd"], minutes), te)

    # -- pollutants --------------------------------------------------------------------------------
    limits: dict[str, float] = {}
    references: dict[str, float | None] = {}
    preset = standards.presets[prof["preset"]]
    reference = preset.reference_o2_percent
    for name, spec in prof["pollutants"].items():
        limit = next(lim for lim in preset.limits if lim.parameter == name and lim.averaging == "1h")
        assert limit.max is not None
        limit_cu = limit.max / conversion_factor(name, spec["unit"], limit.unit, standards)
        limits[name], references[name] = limit_cu, reference
        level = _draw(rng, spec["level"]) * limit_cu
        hour_wobble = np.interp(minute, np.arange(hours) * 60 + 30, rng.normal(0.0, spec["hour_sd"], hours))
        process = np.exp(_ar(rng, minutes, spec["ar_sd"], spec["ar_minutes"]) + hour_wobble)
        corrected = level * (1 - spec["load_slope"] * (1 - effort)) * process
        factor = (21.0 - o2_true) / (21.0 - reference) if reference is not None else 1.0
        raw = corrected * factor + rng.normal(0.0, spec["noise_sd"] * level, minutes)
        zero = np.abs(rng.normal(0.0, 0.002 * spec["range"][1], minutes))
        put(name, name, spec["unit"], np.where(firing, raw, zero), spec)

    # -- flags and gaps ----------------------------------------------------------------------------
    analyzer = [*prof["pollutants"], "o2"]
    stack = list(channels)

    def flag(names: list[str], where: np.ndarray, code: int) -> None:
        for name in names:
            channels[name].flag[where] = code
            channels[name].value[where] = np.nan

    flag(stack, flagged_stops, F)
    calibration = np.zeros(minutes, dtype=bool)
    for day in range(minutes // 1440):
        first = day * 1440 + plant["calibration_hour"] * 60 + int(rng.integers(0, 30))
        calibration[first : first + int(_draw(rng, plant["calibration_minutes"]))] = True
    flag(analyzer, calibration, C)
    if rng.random() < plant["maintenance_share"]:
        first = int(rng.integers(0, minutes))
        maintenance = np.zeros(minutes, dtype=bool)
        maintenance[first : first + int(_draw(rng, plant["maintenance_hours"]) * 60)] = True
        flag(analyzer, maintenance, M)
    for _ in range(int(rng.poisson(plant["gaps_per_month"]))):
        first = int(rng.integers(0, minutes))
        gap = np.zeros(minutes, dtype=bool)
        gap[first : first + int(_draw(rng, plant["gap_minutes"]))] = True
        flag(stack, gap, 0)

    power_hourly, _ = hourly_means(power)
    month = DeviceMonth(
        factory_id(index),
        DEVICE,
        prof["preset"],
        params["town"]["month"],
        grid_start,
        grid_start,
        grid_start + minutes * MINUTE_NS,
        channels,
        {
            name: PollutantHours(
                name,
                name,
                spec["unit"],
                np.empty(0),
                np.empty(0),
                np.empty(0, dtype=bool),
                reference,
                "minutes",
            )
            for name, spec in prof["pollutants"].items()
        },
        power_hourly,
    )
    generated = Generated(month, profile_name, power, limits, references, resolution, ranges)
    generated.rebuild_hours()
    return generated


# -- injections ------------------------------------------------------------------------------------
def _target_pollutant(g: Generated) -> str:
    """The pollutant nearest its limit: the one a manipulator would work on."""
    return max(g.month.pollutants, key=lambda n: float(np.nanmedian(g.month.pollutants[n].corrected)))


def _running_hours(g: Generated) -> np.ndarray:
    assert g.month.power_kw is not None
    power = g.month.power_kw
    return ~np.isnan(power) & (power > 0.3 * np.nanpercentile(power, 95))


def inject(g: Generated, kind: str, spec: dict[str, Any], rng: np.random.Generator) -> bool:
    """Apply one manipulation; False (and nothing changed that matters) when the device-month
    does not qualify (``applies_when``)."""
    m = g.month
    minutes = m.minutes
    need = spec.get("applies_when", {}) or {}
    if kind == "o2_manipulation":
        name = _target_pollutant(g)
        p = m.pollutants[name]
        hours = np.flatnonzero(np.nan_to_num(p.raw, nan=0.0) > spec["raw_above"])
        running = int(_running_hours(g).sum())
        if hours.size < need.get("min_hours", 1) or hours.size > need.get("max_share", 1.0) * running:
            return False
        o2 = m.channels["o2"]
        rows = o2.value.reshape(-1, 60)
        rows[hours] = _round(rows[hours] + spec["o2_offset"], g.resolution["o2"], 0.0, 25.0)
        g.rebuild_hours()
        g.injected[kind] = {"channel": name, "hours": int(hours.size)}
        return True
    if kind == "limit_hugging":
        name = _target_pollutant(g)
        p = m.pollutants[name]
        low, high = spec["hours_from"]
        band = np.flatnonzero(p.valid & (p.corrected >= low) & (p.corrected <= high))
        chosen = band[rng.random(band.size) < spec["share"]]
        if chosen.size < need.get("min_hours", 1):
            return False
        hidden = int((p.corrected[chosen] > 1.0).sum())
        if hidden < need.get("min_hidden_exceedances", 0):
            return False
        rows = m.channels[name].value.reshape(-1, 60)
        targets = rng.uniform(spec["pulled_to"][0], spec["pulled_to"][1], chosen.size)
        for hour, target in zip(chosen.tolist(), targets.tolist(), strict=True):
            # Scale the hour's minutes until its corrected average (after rounding) is the target.
            factor = target / p.corrected[hour]
            rows[hour] = _round(rows[hour] * factor, g.resolution[name], *g.ranges[name])
        g.rebuild_hours()
        g.injected[kind] = {
            "channel": name,
            "hours": int(chosen.size),
            "hidden_exceedances": hidden,
            "band_hours": int(band.size),
        }
        return True
    if kind == "replay":
        days = minutes // 1440
        running_by_day = _running_hours(g)[: days * 24].reshape(days, 24).sum(axis=1)
        sources = np.flatnonzero(running_by_day >= need.get("source_running_hours", 0))
        if sources.size == 0:
            return False
        source = int(rng.choice(sources))
        target = int(rng.choice([d for d in range(days) if d != source]))
        for c in m.channels.values():
            for arr in (c.value, c.flag):
                arr[target * 1440 : (target + 1) * 1440] = arr[source * 1440 : (source + 1) * 1440]
        g.rebuild_hours()
        g.injected[kind] = {"source_day": source, "target_day": target}
        return True
    if kind == "flag_abuse":
        running_at = np.flatnonzero(_running_hours(g))
        chosen = running_at[rng.random(running_at.size) < spec["share"]]
        codes = np.array([FLAG_CODES[f] for f in spec["flags"]], dtype=np.uint8)
        per_hour = codes[rng.integers(0, codes.size, chosen.size)]
        for c in m.channels.values():
            if c.parameter in ("flow", "temperature"):
                continue
            rows_v, rows_f = c.value.reshape(-1, 60), c.flag.reshape(-1, 60)
            rows_v[chosen] = np.nan
            rows_f[chosen] = per_hour[:, None]
        g.rebuild_hours()
        g.injected[kind] = {"hours": int(chosen.size), "running_hours": int(running_at.size)}
        return True
    if kind == "implausible_smoothness":
        days = minutes // 1440
        first = int(rng.integers(0, days - spec["days"] + 1))
        span = slice(first * 1440, (first + spec["days"]) * 1440)
        w = int(spec["window_minutes"])
        for name in m.pollutants:
            v = m.channels[name].value
            part = v[span]
            held = ~np.isnan(part)
            filled = np.where(held, part, 0.0)
            kernel = np.ones(w)
            sums = np.convolve(filled, kernel, mode="same")
            counts = np.convolve(held.astype(float), kernel, mode="same")
            smooth = np.where(held, sums / np.maximum(counts, 1.0), np.nan)
            v[span] = _round(smooth, g.resolution[name], *g.ranges[name])
        g.rebuild_hours()
        g.injected[kind] = {"first_day": first, "days": spec["days"]}
        return True
    if kind == "cross_channel":
        runs = _running_hours(g)
        length = int(rng.integers(spec["hours"][0], spec["hours"][1] + 1))
        starts = [h for h in range(0, m.hours - length) if runs[h : h + length].all()]
        if not starts:
            return False
        first = int(rng.choice(starts))
        span = slice(first * 60, (first + length) * 60)
        n = length * 60
        fake = {
            "o2": 20.9 + rng.normal(0, 0.03, n),
            "flow": np.abs(rng.normal(0, 100.0, n)),
            "temperature": 30.0 + rng.normal(0, 0.5, n),
        }
        for c in m.channels.values():
            values = fake.get(c.parameter, np.abs(rng.normal(0, 0.3, n)))
            c.value[span] = _round(values, g.resolution[c.channel], *g.ranges[c.channel])
            c.flag[span] = N
        g.rebuild_hours()
        g.injected[kind] = {"first_hour": first, "hours": length}
        return True
    raise ValueError(f"unknown injection {kind!r}")


# -- the town as a site registry and as readings ---------------------------------------------------
def site(params: dict[str, Any], seed: int, count: int) -> dict[str, Any]:
    """The site registry of ``count`` generated factories (profiles as :func:`generate` draws them)."""
    factories = []
    for index in range(count):
        prof = params["profiles"][profile_of(params, seed, index)]
        channels: list[dict[str, Any]] = [
            {"id": name, "unit": spec["unit"], "range": list(spec["range"])}
            for name, spec in prof["pollutants"].items()
        ]
        channels += [
            {"id": "o2", "unit": "%", "range": [0, 25]},
            {"id": "flow", "unit": "m3/h", "range": list(prof["flow"]["range"])},
            {"id": "temperature", "unit": "C", "range": list(prof["temperature"]["range"])},
        ]
        factories.append(
            {
                "id": factory_id(index),
                "name": f"Generated factory {index}",
                "location": {"lat": 12.7, "lon": 101.1},
                "district": "Generated",
                "devices": [
                    {"id": DEVICE, "kind": "stack", "standard": prof["preset"], "channels": channels},
                    {
                        "id": METER,
                        "kind": "energy",
                        "channels": [{"id": "power", "unit": "kW", "range": [0, 100000]}],
                    },
                ],
            }
        )
    return {
        "town": {
            "id": params["town"]["id"],
            "name": "Generated town",
            "timezone": params["town"]["timezone"],
        },
        "factories": factories,
    }


def write_site(path: Path, params: dict[str, Any], seed: int, count: int) -> Path:
    path.write_text(
        "# Generated by bench/integrity_town.py; not a real town.\n"
        + yaml.safe_dump(site(params, seed, count), sort_keys=False)
    )
    return path


FLAG_NAMES = {code: name for name, code in FLAG_CODES.items()}


def readings(g: Generated, start_minute: int = 0, end_minute: int | None = None) -> Iterator[Reading]:
    """The device-month as the store would hold it: one reading a minute per channel (flagged
    minutes with the value 0), and the energy meter's power."""
    m = g.month
    end_minute = m.minutes if end_minute is None else end_minute
    for c in m.channels.values():
        for k in range(start_minute, end_minute):
            code = int(c.flag[k])
            if code == 0:
                continue
            value = float(c.value[k]) if code in (1, 2) else 0.0
            yield Reading(
                m.factory, m.device, c.channel, m.grid_start_ns + k * MINUTE_NS, value, FLAG_NAMES[code]
            )
    for k in range(start_minute, end_minute):
        yield Reading(m.factory, METER, "power", m.grid_start_ns + k * MINUTE_NS, float(g.power_minutes[k]))
