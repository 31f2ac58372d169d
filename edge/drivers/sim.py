"""A simulated meter for demonstrations and tests.

Profiles:
- ``normal``: each channel varies around its mean with Gaussian noise and a slow drift;
- ``exceeding``: channels with a ``high`` value ramp from their mean to it over ``ramp_s`` and
  stay there (the others behave normally);
- ``flatline``: after ``after_s`` every channel repeats its last value exactly;
- ``dropout``: the meter stops answering for ``off_s`` out of every ``period_s``.

Values are clipped to each channel's [min, max]. A seed makes runs repeatable.

A channel with ``counter_per_h`` is a counter (an energy meter's kWh register): it reads ``mean``
at :data:`COUNTER_EPOCH` and climbs by ``counter_per_h`` an hour of the clock, whatever the
profile, so it never goes down, and a history simulated on a virtual clock (server/history.py)
and the live meter after it read one continuous register.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge.drivers.base import DriverError, ScanValues
from eit.confread import Section
from eit.model import ID_HINT, ID_PATTERN

PROFILES = ("normal", "exceeding", "flatline", "dropout")
# A simulated counter reads its ``mean`` at this time (seconds since 1970, UTC).
COUNTER_EPOCH = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class SimChannel:
    id: str
    mean: float
    sd: float
    minimum: float
    maximum: float
    high: float | None
    counter_per_h: float | None = None  # a counter: climbs by this much an hour, never down


class SimDriver:
    def __init__(
        self,
        device_id: str,
        channels: list[SimChannel],
        profile: str = "normal",
        seed: int | None = None,
        ramp_s: float = 10.0,
        after_s: float = 30.0,
        period_s: float = 120.0,
        off_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device_id = device_id
        # Seconds since 1970 (counters read from it); a test or a history may run the meter on a
        # clock of its own.
        self.clock = clock
        self.channels = channels
        self.profile = profile
        self.ramp_s = ramp_s
        self.after_s = after_s
        self.period_s = period_s
        self.off_s = off_s
        self._rng = random.Random(seed)
        self._t0 = 0.0
        self._last: dict[str, float] = {}

    def connect(self) -> None:
        self._t0 = self.clock()

    def close(self) -> None:
        pass

    def read(self) -> ScanValues:
        now = self.clock()
        elapsed = now - self._t0
        if self.profile == "dropout" and (elapsed % self.period_s) >= self.period_s - self.off_s:
            raise DriverError(f"simulated meter '{self.device_id}' is not answering (dropout)")
        if self.profile == "flatline" and elapsed >= self.after_s and self._last:
            return ScanValues(dict(self._last))
        values: dict[str, float] = {}
        for ch in self.channels:
            if ch.counter_per_h is not None:
                counted = ch.mean + ch.counter_per_h * (now - COUNTER_EPOCH) / 3600.0
                # A clock set back does not turn the register back.
                counted = max(self._last.get(ch.id, ch.minimum), counted)
                values[ch.id] = round(min(ch.maximum, max(ch.minimum, counted)), 3)
                continue
            drift = ch.sd * math.sin(elapsed / 300.0 + len(ch.id))
            centre = ch.mean
            if self.profile == "exceeding" and ch.high is not None:
                share = min(1.0, elapsed / self.ramp_s) if self.ramp_s > 0 else 1.0
                centre = ch.mean + (ch.high - ch.mean) * share
            value = centre + drift + self._rng.gauss(0.0, ch.sd)
            values[ch.id] = round(min(ch.maximum, max(ch.minimum, value)), 3)
        self._last = values
        return ScanValues(values)


def from_config(sec: Section, base_dir: Path, device_id: str) -> SimDriver:
    profile = sec.text("profile", "normal", choices=PROFILES)
    channels: list[SimChannel] = []
    for cid, csec in sec.mapping_sections("channels", required=True):
        if not ID_PATTERN.fullmatch(cid):
            csec.fail("", f"'{cid}' is not a valid channel id: {ID_HINT}")
        mean = csec.number("mean")
        minimum = csec.number("min", 0.0)
        maximum = csec.number("max", max(mean * 10, 1.0))
        if minimum >= maximum:
            csec.fail("max", f"max {maximum:g} must be above min {minimum:g}")
        channels.append(
            SimChannel(
                id=cid,
                mean=mean,
                sd=csec.number("sd", abs(mean) * 0.05, minimum=0),
                minimum=minimum,
                maximum=maximum,
                high=csec.number("high", None),
                counter_per_h=csec.number("counter_per_h", None, exclusive_minimum=0),
            )
        )
        csec.finish()
    if not channels:
        sec.fail("channels", "a simulated meter needs at least one channel")
    if profile == "exceeding" and not any(c.high is not None for c in channels):
        sec.fail("profile", "the exceeding profile needs a 'high' value on at least one channel")
    driver = SimDriver(
        device_id,
        channels,
        profile=profile,
        seed=sec.integer("seed", None),
        ramp_s=sec.number("ramp_s", 10.0, minimum=0),
        after_s=sec.number("after_s", 30.0, minimum=0),
        period_s=sec.number("period_s", 120.0, exclusive_minimum=0),
        off_s=sec.number("off_s", 60.0, minimum=0),
    )
    if driver.off_s > driver.period_s:
        sec.fail("off_s", f"off_s {driver.off_s:g} is longer than period_s {driver.period_s:g}")
    sec.finish()
    return driver
