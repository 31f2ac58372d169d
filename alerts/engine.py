"""The compliance engine: legal averages in event time, rules, and the alerts they raise.

Per reading (the hot path, O(1) per rule): the reading goes into its series' clock-hour
accumulator (with the O2 correction of its scan when its standard has a reference O2) and through
the sensor-fault rules. Per batch: the running hour of each touched series is screened against
its 1-hour limits (a provisional exceedance, an early warning). Every ``check_interval_s``
(:meth:`AlertEngine.tick`): hours that ended ``close_delay_s`` ago are closed: averaged, judged,
written to the store (``hourly``, ``rolling``, ``daily``, ``aqi``, ``energy``; docs/store-schema.md);
silent devices go stale; unacknowledged alerts escalate.

Event time: a reading counts in the hour its time stamp falls in, whenever it arrives. Data for
an hour that was already closed (an edge backlog draining after an outage) reopens that hour: it
is recomputed (from the store when the engine did not see the whole hour), rewritten with
``retroactive`` set, and an exceedance found that way opens an alert marked retroactive.

Rules and their alert keys (factory, device, channel, rule):
- ``limit``: the clock-hour average (corrected, converted) beyond a 1-hour limit or range; a
  provisional alert while the running hour's valid average is already beyond it, confirmed or
  withdrawn when the hour closes;
- ``limit_8h``, ``limit_24h``: rolling averages (ambient air), refreshed hourly;
- ``limit_instant``: a permit's instantaneous limit;
- ``early_warning``: an average at ``early_warning_fraction`` of a limit;
- ``stale``: no data for ``stale_after_s`` or the broker's ``offline`` status (channel ``*``);
- ``flatline``, ``spike``, ``stuck``, ``rate``: sensor faults (alerts/faults.py).
Hysteresis and minimum durations keep a condition near a limit from flapping; a resolved alert
whose condition returns within ``flap_window_s`` is reopened, not re-notified.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from alerts import aqi as aqi_mod
from alerts.compliance import (
    WINDOWS,
    HourResult,
    Verdict,
    daily_point,
    day_bounds,
    hour_result,
    judge,
    limits_for,
    local_day,
    needs_o2_correction,
    rolling_result,
)
from alerts.energy import energy_point
from alerts.faults import FaultFinding, FaultSettings, FaultState
from alerts.messages import fragment, render
from alerts.model import ENGINE, OPEN, RESOLVED, Alert, AlertEvent, AlertKey
from alerts.notifiers.dispatch import Dispatcher
from alerts.settings import RuleSettings
from alerts.state import AlertStore
from alerts.windows import HOUR_NS, NO_O2, O2_AT_21, HourAccumulator, accumulate, hour_start
from eit import wire
from eit.model import VALID_FLAGS, Reading
from eit.registry import Channel, Registry
from eit.standards import Limit
from eit.store import Point, Store, StoreError, StoreUnavailable
from eit.storeschema import Hourly, series_tags
from eit.timeutil import NS_PER_S, now_ns, ns_to_datetime

log = logging.getLogger("eit.alerts.engine")

RULE_LIMIT = "limit"
RULE_STALE = "stale"
RULE_EARLY = "early_warning"
RULE_INSTANT = "limit_instant"
DEVICE_PARAMETER = "*"  # the parameter of device-wide alerts (stale)
QUARTER_HOUR_NS = 900 * NS_PER_S
# Reading hours back from the store (after a restart, or a backlog older than memory) holds the
# rules while it runs: at most this long per tick, the rest on the next ticks.
STORE_READS_PER_TICK_S = 0.5
KEEP_HOURS = 30  # hours of accumulators and results kept in memory per series


def _g(value: float) -> str:
    return f"{value:.4g}"


@dataclass(slots=True, eq=False)
class _Series:
    key: tuple[str, str, str]
    channel: Channel
    device_kind: str
    o2_channel: str | None  # the device's O2 channel when this one is corrected to a reference O2
    o2_reference: float | None
    hourly_limits: bool
    rolling_windows: tuple[str, ...]
    instant: bool
    screening: bool
    faults: FaultState
    hours: dict[int, HourAccumulator] = field(default_factory=dict)
    closed: dict[int, tuple[float, bool]] = field(default_factory=dict)  # hour -> (corrected, valid)
    history_loaded: bool = False
    exceed_run: int = 0
    clear_run: int = 0
    days_touched: set[date] = field(default_factory=set)
    # The limits in force, by averaging period, for one quarter hour (time zones move the local
    # day at whole quarter hours): looked up once, not per reading.
    limits_at: int = -1
    limits_cache: dict[str, list[Limit]] = field(default_factory=dict)


class AlertEngine:
    """A ReadingSink (ingest/service.py): ``on_readings`` and ``on_status`` after each stored batch."""

    def __init__(
        self,
        registry: Registry,
        alerts: AlertStore,
        dispatcher: Dispatcher,
        stale_after_s: float = 120.0,
        clock: Callable[[], int] = now_ns,
        on_event: Callable[[AlertEvent], None] | None = None,
        *,
        settings: RuleSettings | None = None,
        store: Store | None = None,
    ) -> None:
        self.registry = registry
        self.alerts = alerts
        self.dispatcher = dispatcher
        self.settings = settings or RuleSettings(stale_after_s=stale_after_s)
        self.stale_after_s = self.settings.stale_after_s
        self.clock = clock
        self.on_event = on_event
        self.store = store
        self.tz = ZoneInfo(registry.timezone)
        self.standards = registry.standards
        self._lock = threading.RLock()
        self.started_ns = clock()
        # The first hour the engine sees from its start: memory holds earlier hours only in part.
        self._first_whole_hour = self.started_ns - self.started_ns % HOUR_NS + HOUR_NS
        self._active: dict[AlertKey, Alert] = {a.key: a for a in alerts.list(state="active", limit=1_000_000)}
        self._last_seen: dict[tuple[str, str], int] = {
            (f.id, d.id): self.started_ns for f in registry.factories.values() for d in f.devices.values()
        }
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._dirty: set[tuple[tuple[str, str, str], int]] = set()
        self._days_closed: dict[tuple[str, str, str], date] = {}
        self._pending_points: dict[str, list[Point]] = {}
        self.counters: dict[str, int] = {"hours_closed": 0, "hours_retroactive": 0, "store_errors": 0}

    # -- series --------------------------------------------------------------------------------
    def _make_series(self, key: tuple[str, str, str]) -> _Series | None:
        channel = self.registry.channel(*key)
        device = self.registry.device(key[0], key[1])
        if channel is None or device is None:
            return None
        o2_channel = None
        o2_ref = None
        if needs_o2_correction(channel):
            o2_channel = next((c.id for c in device.channels.values() if c.parameter == "o2"), None)
            o2_ref = channel.o2_reference_percent if o2_channel else None
        averagings = {lim.averaging for lim in (*channel.preset_limits, *channel.permit_limits)}
        windows = tuple(w for w in WINDOWS if w in averagings or device.kind == "ambient")
        preset = self.standards.presets.get(channel.preset or "")
        s = self.settings
        faults = FaultState(
            FaultSettings(
                s.flatline_s,
                s.flatline_tolerance,
                s.spike_z,
                s.spike_window,
                s.stuck_s,
                s.fault_clear_s,
                s.rate_of_change.get(channel.parameter),
                channel.range_min,
                channel.range_max,
            )
        )
        series = _Series(
            key,
            channel,
            device.kind,
            o2_channel,
            o2_ref,
            "1h" in averagings,
            windows,
            "instant" in averagings,
            bool(preset and preset.screening),
            faults,
        )
        self._series[key] = series
        return series

    # -- ReadingSink ---------------------------------------------------------------------------
    def on_readings(self, readings: Sequence[Reading], now: int) -> None:
        with self._lock:
            closed_before = hour_start(now - int(self.settings.close_delay_s * NS_PER_S)) - HOUR_NS
            # The O2 of each scan, for the correction of the pollutants of the same scan.
            o2: dict[tuple[str, str, int], tuple[float, str]] = {}
            for r in readings:
                if r.channel == "o2":
                    o2[(r.factory, r.device, r.ts_ns)] = (r.value, r.flag)
            touched: set[_Series] = set()
            devices_seen: set[tuple[str, str]] = set()
            last_factory = last_device = None
            findings: list[FaultFinding] = []
            series_map = self._series
            dirty = self._dirty
            valid_flags = VALID_FLAGS
            for r in readings:
                factory, device, flag, value, ts = r.factory, r.device, r.flag, r.value, r.ts_ns
                key = (factory, device, r.channel)
                st = series_map.get(key)
                if st is None:
                    st = self._make_series(key)
                    if st is None:
                        continue
                # The readings of a scan come together: the device set is touched once per run.
                if factory is not last_factory or device is not last_device:
                    devices_seen.add((factory, device))
                    last_factory, last_device = factory, device
                h = ts - ts % HOUR_NS
                acc = st.hours.get(h)
                if acc is None:
                    acc = st.hours[h] = HourAccumulator(h)
                    if h < self._first_whole_hour or h < now - now % HOUR_NS - KEEP_HOURS * HOUR_NS:
                        acc.whole = False
                o2_reference = st.o2_reference
                if flag not in valid_flags:
                    acc.leave_out(flag)
                elif o2_reference is None:
                    acc.add_valid(ts, value, value)
                else:  # alerts.windows.add_point with the O2 of this scan
                    scan_o2 = o2.get((factory, device, ts))
                    if scan_o2 is None or scan_o2[1] not in valid_flags:
                        acc.leave_out(NO_O2)
                    elif scan_o2[0] >= 21.0 or scan_o2[0] < 0.0:
                        acc.leave_out(O2_AT_21)
                    else:
                        acc.add_valid(ts, value, value * (21.0 - o2_reference) / (21.0 - scan_o2[0]))
                if h <= closed_before or h in st.closed:
                    dirty.add((key, h))
                else:
                    touched.add(st)
                if st.instant and flag in valid_flags:
                    self._check_instant(st, r, now)
                st.faults.check(ts, value, flag, r.channel, st.channel.unit, findings)
                if findings:
                    for finding in findings:
                        self._fault(st, finding, now)
                    findings.clear()
            for st in touched:
                self._screen_running_hour(st, now)
            for factory, device in devices_seen:
                self._last_seen[(factory, device)] = now
                self._clear((factory, device, DEVICE_PARAMETER, RULE_STALE), now, "data arrives again")

    def on_status(self, factory: str, device: str, state: str, now: int) -> None:
        if state != wire.STATUS_OFFLINE:
            return
        with self._lock:
            if self._last_seen.get((factory, device)) == now:
                # Data of this device came in the same batch: this `offline` is older news (the
                # retained last will a reconnecting ingest receives first). Silence still goes
                # stale after stale_after_s.
                return
            self._raise(
                (factory, device, DEVICE_PARAMETER, RULE_STALE),
                "warning",
                "stale_offline",
                {"factory": factory, "device": device},
                now,
            )

    # -- periodic ------------------------------------------------------------------------------
    def tick(self, now: int | None = None) -> None:
        """Close ended hours, recompute late ones, check staleness, escalate."""
        now = self.clock() if now is None else now
        with self._lock:
            self._refresh_active()
            self._close_hours(now)
            self._recompute_dirty(now)
            self._close_days(now)
            pending, self._pending_points = self._pending_points, {}
            self._check_stale(now)
            self._clear_quiet_faults(now)
        self._flush_points(pending)  # outside the lock: a slow store must not hold up the ingest
        self._escalate(now)

    def _refresh_active(self) -> None:
        """Officers change alerts too (acknowledge, resolve by hand, from another process)."""
        self._active = {a.key: a for a in self.alerts.list(state="active", limit=1_000_000)}

    def _check_stale(self, now: int) -> None:
        for (factory, device), last in self._last_seen.items():
            dev = self.registry.device(factory, device)
            limit_s = (
                dev.stale_after_s if dev and dev.stale_after_s else None
            ) or self.settings.stale_after_s
            silent_s = (now - last) / NS_PER_S
            if silent_s > limit_s:
                self._raise(
                    (factory, device, DEVICE_PARAMETER, RULE_STALE),
                    "warning",
                    "stale_silent",
                    {
                        "factory": factory,
                        "device": device,
                        "silent": f"{silent_s:.0f}",
                        "limit": f"{limit_s:.0f}",
                    },
                    now,
                )

    def _clear_quiet_faults(self, now: int) -> None:
        clear_ns = int(self.settings.fault_clear_s * NS_PER_S)
        for st in self._series.values():
            f = st.faults
            if f.spike_raised and now - f.spike_ts >= clear_ns and now - f.last_ts < clear_ns:
                f.spike_raised = False
                self._clear((*st.key, "spike"), now, "no spike for the clearing period")
            if f.rate_raised and now - f.rate_ts >= clear_ns and now - f.last_ts < clear_ns:
                f.rate_raised = False
                self._clear((*st.key, "rate"), now, "no fast change for the clearing period")

    # -- hours ---------------------------------------------------------------------------------
    def _whole(self, st: _Series, acc: HourAccumulator, deadline: float) -> HourAccumulator | None:
        """The hour's accumulator with all of its points: from memory when memory saw the whole
        hour, else read from the store once (then kept whole in memory). None when the store
        reads of this tick are used up (``deadline``): the hour waits for the next tick, so that
        reading a backlog's hours back never holds the rules (and the ingest) up for long."""
        if acc.whole or self.store is None:
            return acc
        if time.monotonic() > deadline:
            return None
        loaded = self._from_store(st, acc.start_ns)
        if loaded is None:
            return acc  # the store has none of it (or cannot be read): what memory has
        st.hours[acc.start_ns] = loaded
        return loaded

    def _close_hours(self, now: int) -> None:
        closable = hour_start(now - int(self.settings.close_delay_s * NS_PER_S)) - HOUR_NS
        forget = hour_start(now) - KEEP_HOURS * HOUR_NS
        deadline = time.monotonic() + STORE_READS_PER_TICK_S
        for st in list(self._series.values()):
            for h in sorted(st.hours):
                if h > closable:
                    break
                if h in st.closed:
                    continue
                if (st.key, h) in self._dirty:
                    continue  # it arrived after its hour had ended: recomputed as retroactive
                acc = self._whole(st, st.hours[h], deadline)
                if acc is None:
                    break  # closed on a later tick
                self._finish_hour(st, acc, retroactive=False, now=now)
            for h in [h for h in st.hours if h < forget]:
                del st.hours[h]
            for h in [h for h in st.closed if h < forget]:
                del st.closed[h]

    def _recompute_dirty(self, now: int) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = sorted(self._dirty, key=lambda item: item[1]), set()
        deadline = time.monotonic() + STORE_READS_PER_TICK_S
        for key, h in dirty:
            st = self._series[key]
            acc = st.hours.get(h)
            if acc is None:
                continue
            whole = self._whole(st, acc, deadline)
            if whole is None:
                self._dirty.add((key, h))  # on a later tick
                continue
            self._finish_hour(st, whole, retroactive=True, now=now)

    def _from_store(self, st: _Series, h: int) -> HourAccumulator | None:
        assert self.store is not None
        factory, device, channel = st.key
        try:
            readings = self.store.readings(factory, device, channel, h, h + HOUR_NS)
            o2 = None
            if st.o2_channel is not None:
                o2 = {
                    r.ts_ns: (r.value, r.flag)
                    for r in self.store.readings(factory, device, st.o2_channel, h, h + HOUR_NS)
                }
        except (StoreUnavailable, StoreError) as exc:
            self.counters["store_errors"] += 1
            log.error("cannot read hour %s of %s from the store: %s", h, "/".join(st.key), exc)
            return None
        if not readings:
            return None
        return accumulate(h, ((r.ts_ns, r.value, r.flag) for r in readings), o2, st.o2_reference)

    def _finish_hour(self, st: _Series, acc: HourAccumulator, retroactive: bool, now: int) -> None:
        h = acc.start_ns
        day = local_day(h, self.tz)
        result = hour_result(
            st.key, acc, st.channel, day, self.standards, self.settings.hysteresis, retroactive
        )
        st.closed[h] = (result.corrected if result.corrected is not None else 0.0, result.valid)
        self.counters["hours_closed" if not retroactive else "hours_retroactive"] += 1
        self._queue(result.point())
        st.days_touched.add(day)
        if retroactive:
            key = st.key
            if self._days_closed.get(key) is not None and day <= self._days_closed[key]:
                self._dirty_day(st, day)
        if st.hourly_limits:
            self._judge_hour(st, result, now)
        if st.rolling_windows:
            ends = [h + HOUR_NS] if not retroactive else [h + k * HOUR_NS for k in range(1, 25)]
            for end in ends:
                if end <= hour_start(now) or not retroactive:
                    self._rolling(st, end, now, retroactive)
        if st.device_kind == "energy" and st.channel.parameter in ("energy", "power"):
            self._energy(st, result, day)

    def _queue(self, point: Point | None) -> None:
        if point is not None:
            self._pending_points.setdefault(point.measurement, []).append(point)

    def _flush_points(self, pending: dict[str, list[Point]]) -> None:
        if self.store is None:
            return
        for measurement, points in pending.items():
            try:
                self.store.write_points(measurement, points)
            except (StoreUnavailable, StoreError) as exc:
                self.counters["store_errors"] += 1
                log.error("cannot write %d %s points: %s", len(points), measurement, exc)
                if isinstance(exc, StoreUnavailable):
                    with self._lock:  # try again on the next tick
                        self._pending_points.setdefault(measurement, []).extend(points)

    # -- rolling windows and the AQI -----------------------------------------------------------
    def _history(self, st: _Series, end: int) -> dict[int, tuple[float, bool]]:
        if not st.history_loaded and self.store is not None:
            st.history_loaded = True
            try:
                stored = self.store.query_points(
                    Hourly.NAME,
                    series_tags(st.key),
                    end - 48 * HOUR_NS,
                    end,
                )
            except (StoreUnavailable, StoreError) as exc:
                log.error("cannot read hourly history of %s: %s", "/".join(st.key), exc)
                stored = []
            for p in stored:
                if p.ts_ns not in st.closed:
                    corrected = p.fields.get(Hourly.CORRECTED, 0.0)
                    st.closed[p.ts_ns] = (float(corrected), p.fields.get(Hourly.VALID) is True)
        return st.closed

    def _rolling(self, st: _Series, end: int, now: int, retroactive: bool) -> None:
        day = local_day(end - HOUR_NS, self.tz)
        history = self._history(st, end)
        for window in st.rolling_windows:
            result = rolling_result(
                st.key,
                window,
                end,
                history,
                st.channel,
                day,
                self.standards,
                self.settings.completeness,
                self.settings.hysteresis,
            )
            self._queue(result.point())
            if (
                result.verdict is not None
                and result.valid
                and (not retroactive or end == self._latest_end(st))
            ):
                self._judge_average(
                    (*st.key, f"limit_{window}"),
                    st,
                    result.verdict,
                    "limit_rolling",
                    {"window": window, "period": self._local(end), "hours": str(result.hours)},
                    end - HOUR_NS,
                    now,
                    retroactive,
                )
        if st.device_kind == "ambient":
            self._aqi(st.key[0], st.key[1], end - HOUR_NS, day)

    def _latest_end(self, st: _Series) -> int:
        return max(st.closed) + HOUR_NS if st.closed else 0

    def _aqi(self, factory: str, device: str, h: int, day: date) -> None:
        """AQI for the station at hour ``h``: written when its last channel closes the hour."""
        table = aqi_mod.aqi_table()
        concentrations: dict[str, tuple[float, str]] = {}
        dev = self.registry.device(factory, device)
        if dev is None:
            return
        for channel in dev.channels.values():
            p = table.pollutants.get(channel.parameter)
            st = self._series.get((factory, device, channel.id))
            if p is None or st is None:
                continue
            hours = {"1h": 1, "8h": 8, "24h": 24}[p.averaging]
            values = [st.closed[h - k * HOUR_NS] for k in range(hours) if h - k * HOUR_NS in st.closed]
            valid = [v for v, ok in values if ok]
            needed = max(1, int(hours * self.settings.completeness + 0.999999))
            if len(valid) >= needed:
                concentrations[channel.parameter] = (sum(valid) / len(valid), channel.unit)
        for point in aqi_mod.aqi_points(factory, device, h, concentrations, self.standards):
            self._queue(point)

    def _energy(self, st: _Series, result: HourResult, day: date) -> None:
        if result.first_value is None or result.last_value is None:
            return
        if st.channel.parameter == "energy":
            previous = self._series_last_value(st, result.start_ns - HOUR_NS)
            start_value = previous if previous is not None else result.first_value
            kwh = max(0.0, result.last_value - start_value)
            if st.channel.unit == "MWh":
                kwh *= 1000.0
        else:
            dev = self.registry.device(st.key[0], st.key[1])
            if dev is not None and any(c.parameter == "energy" for c in dev.channels.values()):
                return  # the counter is the better measure
            kwh = (result.value or 0.0) * (1000.0 if st.channel.unit == "MW" else 1.0)
        self._queue(energy_point(st.key[0], st.key[1], result.start_ns, kwh, day))

    def _series_last_value(self, st: _Series, h: int) -> float | None:
        acc = st.hours.get(h)
        return acc.last_value if acc is not None and acc.points else None

    # -- days ----------------------------------------------------------------------------------
    def _close_days(self, now: int) -> None:
        today = local_day(now - int(self.settings.close_delay_s * NS_PER_S), self.tz)
        for st in self._series.values():
            for day in sorted(st.days_touched):
                if day >= today:
                    continue
                st.days_touched.discard(day)
                self._write_day(st, day)
                last = self._days_closed.get(st.key)
                if last is None or day > last:
                    self._days_closed[st.key] = day

    def _dirty_day(self, st: _Series, day: date) -> None:
        st.days_touched.add(day)

    def _write_day(self, st: _Series, day: date) -> None:
        start, end = day_bounds(day, self.tz)
        valid = sum(1 for h, (_, ok) in st.closed.items() if start <= h < end and ok)
        if self.store is not None and min(st.closed, default=start) > start:
            # Some of the day's hours closed before this engine started: count them from the store.
            try:
                stored = self.store.query_points(Hourly.NAME, series_tags(st.key), start, end)
                seen = {p.ts_ns for p in stored if p.fields.get(Hourly.VALID) is True}
                seen |= {h for h, (_, ok) in st.closed.items() if start <= h < end and ok}
                valid = len(seen)
            except (StoreUnavailable, StoreError) as exc:
                log.error("cannot read the hours of %s for %s: %s", day, "/".join(st.key), exc)
        self._queue(daily_point(st.key, day, self.tz, valid, self.settings.completeness))

    # -- judging -------------------------------------------------------------------------------
    def _local(self, ts_ns: int) -> str:
        return ns_to_datetime(ts_ns).astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def _period(self, h: int) -> str:
        start = ns_to_datetime(h).astimezone(self.tz)
        return f"{start:%Y-%m-%d %H:00}-{start:%H}:59"

    def _limit_params(self, st: _Series, verdict: Verdict, value_params: dict[str, str]) -> dict[str, str]:
        lim = verdict.limit
        side = verdict.side
        params = {
            "channel": st.key[2],
            "value": _g(verdict.compared),
            "unit": lim.unit,
            "side": side,
            "kind": lim.kind,
            "bound": _g(verdict.bound),
            "origin": lim.origin,
            "o2": _g(st.o2_reference) if st.o2_reference is not None else "",
            "correction": fragment("correction", "en", o2=_g(st.o2_reference))
            if st.o2_reference is not None
            else "",
            "screening": fragment("screening", "en") if st.screening else "",
            **value_params,
        }
        if not lim.averaging_confirmed:
            params["origin"] += ", averaging period unconfirmed"
        return params

    def _judge_hour(self, st: _Series, result: HourResult, now: int) -> None:
        key = (*st.key, RULE_LIMIT)
        active = self._active.get(key)
        verdict = result.verdict
        h = result.start_ns
        if not result.valid or verdict is None:
            if active is not None and active.provisional and active.period_start_ns == h:
                self._withdraw(active, f"the hour {self._period(h)} is not valid: {result.reason}", now)
            return
        params = self._limit_params(st, verdict, {"period": self._period(h), "points": str(result.points)})
        if result.retroactive:
            params["retroactive"] = "yes"
        if verdict.exceeded:
            if active is not None:
                if active.provisional:
                    self._update(
                        active, "confirmed", now, "limit_hour", params, verdict, h, provisional=False
                    )
                elif not result.retroactive:
                    self._update(active, "updated", now, "limit_hour", params, verdict, h)
            else:
                st.exceed_run = (
                    st.exceed_run + 1 if not result.retroactive else self.settings.open_after_hours
                )
                if st.exceed_run >= self.settings.open_after_hours:
                    self._raise(
                        key, "critical", "limit_hour", params, now, verdict, h, retroactive=result.retroactive
                    )
            st.clear_run = 0
            self._clear((*st.key, RULE_EARLY), now, "superseded by the exceedance")
            return
        if result.retroactive:
            if active is not None and active.provisional and active.period_start_ns == h:
                self._withdraw(
                    active, f"late data: the hour {self._period(h)} averaged {_g(verdict.compared)}", now
                )
            return
        st.exceed_run = 0
        if active is not None and active.provisional and active.period_start_ns == h:
            self._withdraw(
                active,
                f"the clock-hour average {self._period(h)} is {_g(verdict.compared)} {verdict.limit.unit},"
                f" within the limit {_g(verdict.bound)}",
                now,
            )
        elif active is not None:
            if verdict.clear:
                st.clear_run += 1
                if st.clear_run >= self.settings.clear_after_hours:
                    self._clear(
                        key, now, f"the clock-hour average {self._period(h)} is {_g(verdict.compared)}"
                    )
                    st.clear_run = 0
            else:
                st.clear_run = 0
        self._early_warning(st, verdict, "clock-hour average", self._period(h), h, now)

    def _judge_average(
        self,
        key: AlertKey,
        st: _Series,
        verdict: Verdict,
        template: str,
        extra: dict[str, str],
        period_start: int,
        now: int,
        retroactive: bool,
    ) -> None:
        params = self._limit_params(st, verdict, extra)
        if retroactive:
            params["retroactive"] = "yes"
        active = self._active.get(key)
        if verdict.exceeded:
            if active is None:
                self._raise(
                    key, "critical", template, params, now, verdict, period_start, retroactive=retroactive
                )
            elif not retroactive:
                self._update(active, "updated", now, template, params, verdict, period_start)
        elif active is not None and verdict.clear and not retroactive:
            self._clear(key, now, f"the {extra.get('window', '')} average is {_g(verdict.compared)}")

    def _early_warning(
        self, st: _Series, verdict: Verdict, basis: str, period: str, h: int, now: int
    ) -> None:
        fraction = self.settings.early_warning_fraction
        share = verdict.fraction_of_max()
        key = (*st.key, RULE_EARLY)
        if fraction <= 0 or share is None:
            return
        if fraction <= share and not verdict.exceeded:
            if key not in self._active and (*st.key, RULE_LIMIT) not in self._active:
                params = self._limit_params(st, verdict, {"basis": basis, "period": period})
                params["percent"] = f"{share * 100:.0f}"
                self._raise(key, "warning", "early_warning", params, now, verdict, h)
        elif key in self._active and share < fraction * (1 - self.settings.hysteresis):
            self._clear(key, now, f"the {basis} is {share * 100:.0f} % of the limit")

    def _screen_running_hour(self, st: _Series, now: int) -> None:
        """A provisional exceedance (or early warning) while the running hour is still open."""
        if not st.hourly_limits:
            return
        h = max(st.hours)
        acc = st.hours[h]
        if acc.points < self.settings.provisional_min_points or h in st.closed:
            return
        limits = self._limits(st, h, "1h")
        corrected = acc.mean_corrected()
        if not limits or corrected is None:
            return
        verdict = judge(corrected, st.channel, limits, self.standards, self.settings.hysteresis)
        if verdict is None:
            return
        key = (*st.key, RULE_LIMIT)
        if verdict.exceeded:
            if key not in self._active and self.settings.open_after_hours == 1:
                params = self._limit_params(
                    st, verdict, {"period": self._period(h), "points": str(acc.points)}
                )
                self._raise(key, "warning", "limit_provisional", params, now, verdict, h, provisional=True)
                self._clear((*st.key, RULE_EARLY), now, "superseded by the exceedance")
            return
        self._early_warning_running(st, verdict, h, now)

    def _early_warning_running(self, st: _Series, verdict: Verdict, h: int, now: int) -> None:
        fraction = self.settings.early_warning_fraction
        share = verdict.fraction_of_max()
        key = (*st.key, RULE_EARLY)
        if fraction <= 0 or share is None or share < fraction:
            return
        if key not in self._active and (*st.key, RULE_LIMIT) not in self._active:
            params = self._limit_params(st, verdict, {"basis": "running hour", "period": self._period(h)})
            params["percent"] = f"{share * 100:.0f}"
            self._raise(key, "warning", "early_warning", params, now, verdict, h)

    def _limits(self, st: _Series, ts: int, averaging: str) -> list[Limit]:
        quarter = ts - ts % QUARTER_HOUR_NS
        if quarter != st.limits_at:
            st.limits_at = quarter
            st.limits_cache.clear()
        found = st.limits_cache.get(averaging)
        if found is None:
            found = st.limits_cache[averaging] = limits_for(st.channel, local_day(ts, self.tz), averaging)
        return found

    def _check_instant(self, st: _Series, r: Reading, now: int) -> None:
        limits = self._limits(st, r.ts_ns, "instant")
        verdict = (
            judge(r.value, st.channel, limits, self.standards, self.settings.hysteresis) if limits else None
        )
        if verdict is None:
            return
        key = (*st.key, RULE_INSTANT)
        if verdict.exceeded:
            if key not in self._active:
                params = self._limit_params(st, verdict, {})
                self._raise(key, "critical", "limit_instant", params, now, verdict, r.ts_ns)
        elif verdict.clear and key in self._active:
            self._clear(key, now, f"{r.channel} {_g(verdict.compared)} within the instantaneous limit")

    def _fault(self, st: _Series, finding: FaultFinding, now: int) -> None:
        key = (*st.key, finding.rule)
        if finding.raised:
            self._raise(
                key, "warning", finding.rule, finding.params, now, value=finding.value, bound=finding.bound
            )
        else:
            self._clear(key, now, "the sensor behaves again")

    # -- alert state ---------------------------------------------------------------------------
    def _raise(
        self,
        key: AlertKey,
        severity: str,
        template: str,
        params: dict[str, str],
        now: int,
        verdict: Verdict | None = None,
        period_start: int | None = None,
        *,
        provisional: bool = False,
        retroactive: bool = False,
        value: float | None = None,
        bound: float | None = None,
    ) -> None:
        if key in self._active:
            return
        message = render(template, params, "en")
        if verdict is not None:
            value, bound, unit = verdict.compared, verdict.bound, verdict.limit.unit
        else:
            unit = params.get("unit", "")
        previous = self.alerts.latest_for_key(key)
        if (
            previous is not None
            and previous.state == RESOLVED
            and previous.resolved_ns is not None
            and now - previous.resolved_ns <= self.settings.flap_window_s * NS_PER_S
        ):
            reopened = self.alerts.reopen(previous.id, now, message)
            if reopened is not None:
                reopened = self.alerts.update(
                    reopened.id,
                    now,
                    "updated",
                    message,
                    severity=severity,
                    message=message,
                    value=value,
                    limit_value=bound,
                    unit=unit,
                    provisional=provisional,
                    retroactive=retroactive,
                    period_start_ns=period_start,
                    template=template,
                    params=params,
                )
                self._active[key] = reopened
                self._emit(AlertEvent("reopened", reopened, reopened.escalation_step))
                return
        alert = self.alerts.open_alert(
            key,
            severity,
            message,
            now,
            value,
            bound,
            unit,
            provisional=provisional,
            retroactive=retroactive,
            period_start_ns=period_start,
            template=template,
            params=params,
        )
        if alert is None:  # already active in the store (another process, or before a restart)
            found = self.alerts.active(key)
            if found is not None:
                self._active[key] = found
            return
        self._active[key] = alert
        self._emit(AlertEvent("opened", alert, 0))

    def _update(
        self,
        alert: Alert,
        action: str,
        now: int,
        template: str,
        params: dict[str, str],
        verdict: Verdict,
        period_start: int,
        **extra: Any,
    ) -> None:
        message = render(template, params, "en")
        updated = self.alerts.update(
            alert.id,
            now,
            action,
            message,
            message=message,
            value=verdict.compared,
            limit_value=verdict.bound,
            template=template,
            params=params,
            period_start_ns=period_start,
            severity="critical",
            **extra,
        )
        self._active[alert.key] = updated
        self._emit(AlertEvent(action, updated, updated.escalation_step))

    def _withdraw(self, alert: Alert, why: str, now: int) -> None:
        resolved = self.alerts.resolve(alert.key, now, ENGINE, f"withdrawn: {why}")
        self._active.pop(alert.key, None)
        if resolved is not None:
            self._emit(AlertEvent("withdrawn", resolved, 0))

    def _clear(self, key: AlertKey, now: int, why: str) -> None:
        if key not in self._active:
            return
        del self._active[key]
        alert = self.alerts.resolve(key, now, ENGINE, why)
        if alert is not None:
            self._emit(AlertEvent("resolved", alert, 0))

    def _emit(self, event: AlertEvent) -> None:
        self.dispatcher.submit(event)
        if self.on_event is not None:
            self.on_event(event)

    # -- escalation ----------------------------------------------------------------------------
    def _escalate(self, now: int) -> None:
        delay_ns = int(self.settings.escalate_after_s * NS_PER_S)
        for alert in self.alerts.list(state=OPEN, limit=10_000):
            due = (now - alert.opened_ns) // delay_ns
            if due <= alert.escalation_step:
                continue
            step = alert.escalation_step + 1
            if not self.dispatcher.has_recipients(alert, step):
                continue
            escalated = self.alerts.escalate(
                alert.id, step, now, f"not acknowledged after {step * self.settings.escalate_after_s:.0f} s"
            )
            if escalated is not None:
                with self._lock:
                    if escalated.key in self._active:
                        self._active[escalated.key] = escalated
                self._emit(AlertEvent("escalated", escalated, step))

    def open_count(self) -> int:
        # No lock: len() of a dict is atomic, and /metrics must answer while a tick runs.
        return len(self._active)


class StaleChecker:
    """Calls :meth:`AlertEngine.tick` every ``interval_s`` on a background thread."""

    def __init__(self, engine: AlertEngine, interval_s: float) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules-tick", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.engine.tick()
            except Exception:
                log.exception("rules tick failed")
