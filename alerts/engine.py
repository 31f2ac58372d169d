"""The compliance engine: legal averages in event time, rules, and the alerts they raise.

Decisions apart from effects: the engine decides in memory, under its lock, and hands what its
decisions do (derived points to write, alerts to raise, update or resolve) to an effect sink
(alerts/effects.py) that applies them outside the lock. Store reads happen outside the lock too,
in :meth:`AlertEngine.tick`: reading an hour back from a slow store delays that hour's verdict,
never :meth:`AlertEngine.on_readings`, so the ingest's acknowledgements never wait on rule I/O.

Per reading (the hot path, O(1) per rule): the reading goes into its series' clock-hour
accumulator, minute by minute (alerts/windows.py; with the O2 correction of its scan when its
standard has a reference O2), and through the sensor-fault rules. Per batch: the running hour of
each touched series is screened against its 1-hour limits (a provisional exceedance, an early
warning). Every ``check_interval_s`` (:meth:`AlertEngine.tick`): minutes that memory cannot vouch
for (a possible repeat arrived, or they began before this process did) are read back from the
store; hours that ended ``close_delay_s`` ago and are whole are closed: averaged, judged, written
(``hourly``, ``rolling``, ``daily``, ``aqi``, ``energy``; docs/store-schema.md); silent devices
go stale; unacknowledged alerts escalate.

**The replay invariant.** Every hourly, rolling and daily result equals what the store's
contents for its period give, whatever the delivery: redelivered, replayed, overwritten, late or
imported. An hour is judged only once every minute of it is known to match the store (see
alerts/windows.py); an hour that cannot be read back waits (it is never closed from partial
memory); a failed read is tried again on the next tick.

Event time: a reading counts in the hour its time stamp falls in, whenever it arrives. Data for
an hour that was already closed (an edge backlog draining after an outage) reopens that hour: it
is recomputed, rewritten with ``retroactive`` set, and an exceedance found that way opens an
alert marked retroactive.

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
from collections.abc import Callable, Collection, Sequence
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
from alerts.duties.calendar import ShutdownCalendar
from alerts.effects import (
    CurrentValue,
    DecideProvisional,
    Effect,
    EffectApplier,
    EffectSink,
    InlineEffects,
    RaiseAlert,
    RecordExceedance,
    ResolveAlert,
    SettleWork,
    UpdateAlert,
    WritePoints,
)
from alerts.energy import energy_point
from alerts.faults import FaultFinding, FaultSettings, FaultState
from alerts.messages import fragment
from alerts.model import ONGOING, OPEN, AlertEvent, AlertKey
from alerts.notifiers.dispatch import Dispatcher
from alerts.pending import DAY, HOUR, LATE, MemoryPendingWork, Numbered, PendingItem, PendingWork
from alerts.public_state import REPUBLISH_NS, public_state
from alerts.settings import RuleSettings
from alerts.state import AlertStore
from alerts.windows import (
    ALL_MINUTES,
    HOUR_NS,
    MINUTE_NS,
    MINUTES,
    NO_O2,
    O2_AT_21,
    HourAccumulator,
    accumulate,
    hour_start,
    minute_ranges,
)
from eit import wire
from eit.model import VALID_FLAGS, Reading
from eit.registry import Channel, Registry
from eit.standards import Limit, methods
from eit.store import Point, Store, StoreError, StoreUnavailable
from eit.storeschema import FACTORY, Hourly, PublicState, Rolling, series_tags
from eit.supervise import Stage, SupervisedLoop, Supervisor
from eit.timeutil import NS_PER_S, now_ns, ns_to_datetime

log = logging.getLogger("eit.alerts.engine")

RULE_LIMIT = "limit"
RULE_STALE = "stale"
RULE_EARLY = "early_warning"
RULE_INSTANT = "limit_instant"
DEVICE_PARAMETER = "*"  # the parameter of device-wide alerts (stale)
QUARTER_HOUR_NS = 900 * NS_PER_S
# Store reads per tick (read-backs of doubtful minutes, history): at most this long, the rest on
# the next ticks, so a backlog's read-backs never delay the rules' verdicts for long.
STORE_READS_PER_TICK_S = 0.5
KEEP_HOURS = 30  # hours of accumulators and results kept in memory per series
READ_ROUNDS_PER_TICK = 2
HISTORY_HOURS = 48  # hourly results read back for rolling windows and the AQI
LATEST_HOURS = 26  # how far back a restarted engine looks for a series' latest closed periods


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
    # Open hours only: a closed hour's minutes are dropped (late data reads it back whole).
    hours: dict[int, HourAccumulator] = field(default_factory=dict)
    closed: dict[int, tuple[float, bool]] = field(default_factory=dict)  # hour -> (corrected, valid)
    last_values: dict[int, float | None] = field(default_factory=dict)  # closed hour -> last valid value
    history_loaded: bool = False
    exceed_run: int = 0
    clear_run: int = 0
    # The latest closed legal periods: is the last judged hour above its limit (and which hour),
    # and each rolling window's latest (the public state, alerts/public_state.py).
    last_hour_exceeded: bool = False
    last_hour_judged: int = -1
    rolling_exceeded: dict[str, tuple[int, bool]] = field(default_factory=dict)
    days_touched: set[date] = field(default_factory=set)
    # The limits in force, by averaging period, for one quarter hour (time zones move the local
    # day at whole quarter hours): looked up once, not per reading.
    limits_at: int = -1
    limits_cache: dict[str, list[Limit]] = field(default_factory=dict)


@dataclass(slots=True)
class Condition:
    """What the engine knows of an active alert: enough to decide, nothing of the database."""

    key: AlertKey
    provisional: bool = False
    period_start_ns: int | None = None


@dataclass(frozen=True, slots=True)
class _HourRead:
    key: tuple[str, str, str]
    hour: int
    mask: int
    versions: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class _HistoryRead:
    key: tuple[str, str, str]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _DayRead:
    key: tuple[str, str, str]
    day: date


@dataclass(frozen=True, slots=True)
class _LatestRead:
    """The latest closed legal periods a series had before this engine started (the public state
    after a restart): its hourly and rolling points since ``since``."""

    key: tuple[str, str, str]
    since: int


_Read = _HourRead | _HistoryRead | _DayRead | _LatestRead


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
        effects: EffectSink | None = None,
        pending: PendingWork | None = None,
    ) -> None:
        self.registry = registry
        self.alerts = alerts
        self.dispatcher = dispatcher
        self.settings = settings or RuleSettings(stale_after_s=stale_after_s)
        self.stale_after_s = self.settings.stale_after_s
        self.clock = clock
        self.store = store
        self.tz = ZoneInfo(registry.timezone)
        self.standards = registry.standards
        self.pending: PendingWork = pending if pending is not None else MemoryPendingWork()
        self.applier = EffectApplier(
            alerts, store, dispatcher, on_event, self.settings.flap_window_s, self.pending
        )
        self.effects: EffectSink = effects if effects is not None else InlineEffects(self.applier)
        self._lock = threading.RLock()
        # Accepted shutdown windows (alerts/duties/calendar.py), set by the duties job's owner: a
        # device inside one raises no stale case; a factory shut down shows ``shutdown``.
        self.shutdowns: ShutdownCalendar | None = None
        # Store reads per tick (read-backs, history): bounded so a backlog's read-backs never hold
        # the verdicts up for long; `eit recompute` lifts the bound.
        self.read_budget_s = STORE_READS_PER_TICK_S
        self.started_ns = clock()
        # Minutes from here on pass through this engine whole; earlier ones are read back.
        self._known_from = -(-self.started_ns // MINUTE_NS) * MINUTE_NS
        # On a cluster worker: a factory whose partition this worker took at some time passes
        # through it whole from then on only (another worker had it before): factory -> minute.
        self._factory_known_from: dict[str, int] = {}
        # The conditions the rules see, by key: the cases whose condition is ongoing. Officers'
        # actions never change them (resolving a case leaves its condition to the rules).
        self._active: dict[AlertKey, Condition] = {
            a.key: Condition(a.key, a.provisional, a.period_start_ns)
            for a in alerts.list(condition=ONGOING, limit=1_000_000)
        }
        self._current_sent: dict[AlertKey, tuple[float, int]] = {}
        self._published: dict[str, tuple[str, tuple[str, ...], int]] = {}
        self._last_seen: dict[tuple[str, str], int] = {
            (f.id, d.id): self.started_ns for f in registry.factories.values() for d in f.devices.values()
        }
        # The newest scan time each device has delivered: a batch that brings nothing newer (a
        # redelivery, a replay) is not the device speaking again, so it ends no silence.
        self._newest_scan: dict[tuple[str, str], int] = {}
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._dirty: set[tuple[tuple[str, str, str], int]] = set()
        # On a cluster (docs/scale-out.md), the factories this worker's partitions hold now: the
        # staleness checks and public states cover only these. None: every factory (one machine).
        self.ownership: Callable[[], Collection[str]] | None = None
        self._owned: frozenset[str] | None = None
        self._days_closed: dict[tuple[str, str, str], date] = {}
        self._days_to_read: set[tuple[tuple[str, str, str], date]] = set()
        self._pending_points: dict[str, list[Point]] = {}
        self._effects: list[Effect] = []
        # Pending work (alerts/pending.py): recorded before a batch is acknowledged, settled once
        # its results are written. Numbers increase across restarts (they start at the clock).
        self._seq = time.time_ns()
        self._recorded: dict[PendingItem, int] = {}
        self._to_record: list[Numbered] = []
        self._to_settle: list[Numbered] = []
        self._recover()
        self.counters: dict[str, int] = {
            "hours_closed": 0,
            "hours_retroactive": 0,
            "store_errors": 0,
            "minutes_read_back": 0,
        }
        # Series with a limit whose latest closed periods the store is yet to tell (a restarted
        # engine must not call a factory compliant because it forgot the hour that exceeded): the
        # public state of their factory waits for them.
        self._latest_to_read: set[tuple[str, str, str]] = set()
        for f in registry.factories.values():
            for d in f.devices.values():
                for c in d.channels.values():
                    st = self._series.get((f.id, d.id, c.id)) or self._make_series((f.id, d.id, c.id))
                    if st is not None and (st.hourly_limits or st.rolling_windows):
                        self._latest_to_read.add(st.key)

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

    def _new_hour(self, st: _Series, h: int, now: int) -> HourAccumulator:
        """An hour's accumulator; the minutes memory cannot have seen whole are marked unknown:
        those before this engine started, or all of an hour closed already or older than memory
        keeps (late data reopens it: it is read back whole)."""
        known_from = max(self._known_from, self._factory_known_from.get(st.key[0], 0))
        if h in st.closed or h < hour_start(now) - KEEP_HOURS * HOUR_NS or h + HOUR_NS <= known_from:
            unknown = ALL_MINUTES
        else:
            unknown = _minutes_before(h, known_from)
        acc = st.hours[h] = HourAccumulator(h, unknown)
        self._owe((HOUR, st.key, h))
        return acc

    def reopen(self, hours: Sequence[tuple[tuple[str, str, str], int]]) -> int:
        """Recompute these (series, hour start) from the store on the coming ticks, as closed hours
        that late data reopened are (``eit recompute``). Returns how many were reopened."""
        reopened = 0
        with self._lock:
            for key, h in hours:
                st = self._series.get(key) or self._make_series(key)
                if st is None:
                    continue
                st.hours[h] = HourAccumulator(h, ALL_MINUTES)
                st.closed.pop(h, None)
                reopened += 1
        return reopened

    # -- pending work --------------------------------------------------------------------------
    def _owe(self, item: PendingItem) -> None:
        if item not in self._recorded:
            self._seq += 1
            self._recorded[item] = self._seq
            self._to_record.append((item, self._seq))

    def _paid(self, item: PendingItem) -> None:
        seq = self._recorded.pop(item, None)
        if seq is not None:
            self._to_settle.append((item, seq))

    def _record_owed(self) -> None:
        """Make the work decided so far durable (before the batch is acknowledged)."""
        with self._lock:
            owed, self._to_record = self._to_record, []
        if owed:
            self.pending.record(owed)

    def _recover(self) -> None:
        """Reopen the work a previous process left pending: each such hour is read back whole."""
        for (kind, key, start), seq in self.pending.items():
            st = self._series.get(key) or self._make_series(key)
            if st is None:
                continue  # no longer in the registry
            self._recorded[(kind, key, start)] = seq
            if kind == DAY:
                st.days_touched.add(local_day(start, self.tz))
                continue
            if start not in st.hours:
                st.hours[start] = HourAccumulator(start, ALL_MINUTES)
            if kind == LATE:
                self._dirty.add((key, start))

    # -- ReadingSink ---------------------------------------------------------------------------
    def on_readings(self, readings: Sequence[Reading], now: int) -> None:
        with self._lock:
            self._take_readings(readings, now)
            effects = self._take_effects()
        self._record_owed()  # durable before the batch is acknowledged
        self.effects.submit(effects)

    def _take_readings(self, readings: Sequence[Reading], now: int) -> None:
        closed_before = hour_start(now - int(self.settings.close_delay_s * NS_PER_S)) - HOUR_NS
        # The O2 of each scan, for the correction of the pollutants of the same scan.
        o2: dict[tuple[str, str, int], tuple[float, str]] = {}
        for r in readings:
            if r.channel == "o2":
                o2[(r.factory, r.device, r.ts_ns)] = (r.value, r.flag)
        touched: set[_Series] = set()
        # Per device, the newest scan time in this batch (a run of one device's readings is
        # folded in when the next device starts, and at the end).
        devices_seen: dict[tuple[str, str], int] = {}
        last_factory = last_device = None
        run_newest = -1
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
                if last_factory is not None and last_device is not None:
                    run_key = (last_factory, last_device)
                    devices_seen[run_key] = max(devices_seen.get(run_key, -1), run_newest)
                last_factory, last_device = factory, device
                run_newest = ts
            elif ts > run_newest:
                run_newest = ts
            h = ts - ts % HOUR_NS
            acc = st.hours.get(h)
            if acc is None:
                acc = self._new_hour(st, h, now)
            o2_reference = st.o2_reference
            if flag not in valid_flags:
                taken = acc.leave_out(ts, flag)
            elif o2_reference is None:
                taken = acc.add_valid(ts, value, value)
            else:  # alerts.windows.add_point with the O2 of this scan
                scan_o2 = o2.get((factory, device, ts))
                if scan_o2 is None or scan_o2[1] not in valid_flags:
                    taken = acc.leave_out(ts, NO_O2)
                elif scan_o2[0] >= 21.0 or scan_o2[0] < 0.0:
                    taken = acc.leave_out(ts, O2_AT_21)
                else:
                    taken = acc.add_valid(ts, value, value * (21.0 - o2_reference) / (21.0 - scan_o2[0]))
            if not taken and r.channel == "o2":
                self._doubt_corrected(factory, device, r.channel, ts, now)
            if h <= closed_before or h in st.closed:
                if (key, h) not in dirty:
                    dirty.add((key, h))
                    self._owe((LATE, key, h))
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
        if last_factory is not None and last_device is not None:
            run_key = (last_factory, last_device)
            devices_seen[run_key] = max(devices_seen.get(run_key, -1), run_newest)
        for (factory, device), newest in devices_seen.items():
            known = self._newest_scan.get((factory, device))
            if known is not None and newest <= known:
                continue  # only scans delivered before: a redelivery, not the device speaking again
            self._newest_scan[(factory, device)] = newest
            self._last_seen[(factory, device)] = now
            self._clear((factory, device, DEVICE_PARAMETER, RULE_STALE), now, "data arrives again")

    def _doubt_corrected(self, factory: str, device: str, o2_channel: str, ts: int, now: int) -> None:
        """An O2 value that may have been overwritten: the pollutants corrected with it are in
        doubt too, for that minute."""
        h = ts - ts % HOUR_NS
        for st in self._series.values():
            if st.key[0] == factory and st.key[1] == device and st.o2_channel == o2_channel:
                acc = st.hours.get(h)
                if acc is None:
                    acc = self._new_hour(st, h, now)
                acc.doubt(ts)

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
            effects = self._take_effects()
        self.effects.submit(effects)

    # -- periodic ------------------------------------------------------------------------------
    def tick(self, now: int | None = None) -> None:
        """Read back what memory cannot vouch for, close ended hours, recompute late ones, check
        staleness, escalate. Store and database I/O happen outside the lock."""
        now = self.clock() if now is None else now
        with self._lock:
            plan = self._plan_reads(now)
        # Closing hours and days can ask for reads of its own (a day that began before the
        # engine did): a second round takes them in the same tick.
        for _ in range(READ_ROUNDS_PER_TICK):
            results = self._read(plan)
            with self._lock:
                self._apply_reads(results, now)
                self._close_hours(now)
                self._recompute_dirty(now)
                self._close_days(now)
                asked = set(plan)
                plan = [read for read in self._plan_reads(now) if read not in asked]
                effects = self._take_effects()
            self._record_owed()
            self.effects.submit(effects)
            if not plan:
                break
        owned = frozenset(self.ownership()) if self.ownership is not None else None
        with self._lock:
            self._take_ownership(owned, now)
            self._check_stale(now)
            self._clear_quiet_faults(now)
            self._publish_states(now)
            effects = self._take_effects()
        self.effects.submit(effects)
        self._escalate(now)

    # -- reading back --------------------------------------------------------------------------
    def _plan_reads(self, now: int) -> list[_Read]:
        """What memory cannot vouch for and a verdict needs now, oldest first: doubtful or
        unknown minutes of hours about to close, of hours late data reopened, and of the running
        hour of series with a 1-hour limit (its provisional screening); rolling history of series
        about to close an hour; days that began before the engine did. The other running hours
        are read back when they close: a restart does not read back every series at once."""
        closable = hour_start(now - int(self.settings.close_delay_s * NS_PER_S)) - HOUR_NS
        hours: list[_HourRead] = []
        histories: list[_Read] = []
        for st in self._series.values():
            running = max(st.hours, default=None) if st.hourly_limits else None
            for h, acc in st.hours.items():
                mask = acc.to_read
                if mask and (h <= closable or h == running or (st.key, h) in self._dirty):
                    versions = tuple((m, acc.versions[m]) for m in range(MINUTES) if mask >> m & 1)
                    hours.append(_HourRead(st.key, h, mask, versions))
            if st.rolling_windows and not st.history_loaded and st.hours and min(st.hours) <= closable:
                end = hour_start(now)
                histories.append(_HistoryRead(st.key, end - HISTORY_HOURS * HOUR_NS, end))
        hours.sort(key=lambda r: r.hour)
        days: list[_Read] = [_DayRead(key, day) for key, day in sorted(self._days_to_read)]
        since = hour_start(now) - LATEST_HOURS * HOUR_NS
        latest: list[_Read] = [_LatestRead(key, since) for key in sorted(self._latest_to_read)]
        return [*hours, *latest, *histories, *days]

    def _read(self, plan: list[_Read]) -> list[tuple[_Read, Any]]:
        """Perform the reads of a plan, for at most STORE_READS_PER_TICK_S; stops at the first
        failure (the store is likely down: the next tick tries again)."""
        if self.store is None or not plan:
            return []
        deadline = time.monotonic() + self.read_budget_s
        results: list[tuple[_Read, Any]] = []
        for read in plan:
            if time.monotonic() > deadline:
                break
            try:
                results.append((read, self._read_one(read)))
            except (StoreUnavailable, StoreError) as exc:
                self.counters["store_errors"] += 1
                log.error("cannot read back from the store (tried again next tick): %s", exc)
                break
        return results

    def _read_one(self, read: _Read) -> Any:
        assert self.store is not None
        if isinstance(read, _HourRead):
            st = self._series[read.key]
            factory, device, channel = read.key
            points: list[tuple[int, float, str]] = []
            o2: dict[int, tuple[float, str]] | None = {} if st.o2_channel is not None else None
            for first, last in minute_ranges(read.mask):
                start, end = read.hour + first * MINUTE_NS, read.hour + last * MINUTE_NS
                points.extend(
                    (r.ts_ns, r.value, r.flag)
                    for r in self.store.readings(factory, device, channel, start, end)
                )
                if o2 is not None and st.o2_channel is not None:
                    for r in self.store.readings(factory, device, st.o2_channel, start, end):
                        o2[r.ts_ns] = (r.value, r.flag)
            return accumulate(read.hour, points, o2, st.o2_reference)
        if isinstance(read, _HistoryRead):
            return self.store.query_points(Hourly.NAME, series_tags(read.key), read.start, read.end)
        if isinstance(read, _LatestRead):
            tags = series_tags(read.key)
            hourly = self.store.query_points(Hourly.NAME, tags, read.since, 2**62)
            rolling = self.store.query_points(Rolling.NAME, tags, read.since, 2**62)
            return hourly, rolling
        start, end = day_bounds(read.day, self.tz)
        return self.store.query_points(Hourly.NAME, series_tags(read.key), start, end)

    def _apply_reads(self, results: list[tuple[_Read, Any]], now: int) -> None:
        screen: set[_Series] = set()
        for read, result in results:
            st = self._series[read.key]
            if isinstance(read, _HourRead):
                acc = st.hours.get(read.hour)
                if acc is not None and acc.replace(read.mask, result, read.versions):
                    self.counters["minutes_read_back"] += bin(read.mask).count("1")
                    if acc.complete and read.hour == max(st.hours):
                        screen.add(st)
            elif isinstance(read, _LatestRead):
                self._latest_to_read.discard(read.key)
                hourly, rolling = result
                for p in hourly:
                    if p.ts_ns > st.last_hour_judged and Hourly.LIMIT in p.fields:
                        st.last_hour_judged = p.ts_ns
                        st.last_hour_exceeded = p.fields.get(Hourly.EXCEEDED) is True
                for p in rolling:
                    window = str(p.tags.get(Rolling.WINDOW, ""))
                    if p.ts_ns > st.rolling_exceeded.get(window, (-1, False))[0]:
                        valid = p.fields.get(Rolling.VALID) is True
                        st.rolling_exceeded[window] = (
                            p.ts_ns,
                            valid and p.fields.get(Rolling.EXCEEDED) is True,
                        )
            elif isinstance(read, _HistoryRead):
                st.history_loaded = True
                for p in result:
                    if p.ts_ns not in st.closed:
                        corrected = p.fields.get(Hourly.CORRECTED, 0.0)
                        st.closed[p.ts_ns] = (float(corrected), p.fields.get(Hourly.VALID) is True)
            else:
                self._days_to_read.discard((read.key, read.day))
                start, end = day_bounds(read.day, self.tz)
                seen = {p.ts_ns for p in result if p.fields.get(Hourly.VALID) is True}
                seen |= {h for h, (_, ok) in st.closed.items() if start <= h < end and ok}
                self._queue(daily_point(st.key, read.day, self.tz, len(seen), self.settings.completeness))
                self._paid((DAY, st.key, start))
        for st in screen:
            self._screen_running_hour(st, now)

    def owned_from(self, factories: Collection[str], at_ns: int) -> None:
        """This worker holds these factories' partition from ``at_ns`` on (a cluster worker that
        took its lease; docs/scale-out.md). What it processed of them before may lack what the
        previous holder processed meanwhile: every open hour's minutes before ``at_ns`` are read
        back from the store before the hour is judged (the store holds the other worker's writes:
        its lease had lapsed before this one was taken), the rolling history and the latest closed
        periods too. An hour opened later marks those minutes unknown as a restart does."""
        known = -(-at_ns // MINUTE_NS) * MINUTE_NS
        with self._lock:
            for factory in factories:
                self._factory_known_from[factory] = max(self._factory_known_from.get(factory, 0), known)
            for st in self._series.values():
                if st.key[0] not in factories:
                    continue
                for h, acc in st.hours.items():
                    acc.forget(_minutes_before(h, known))
                st.history_loaded = False
                if st.hourly_limits or st.rolling_windows:
                    self._latest_to_read.add(st.key)

    def _take_ownership(self, owned: frozenset[str] | None, now: int) -> None:
        """A factory this worker has just come to own is silent from now on, not since whenever
        this worker last saw it (another worker had its data meanwhile): a silent factory goes
        stale ``stale_after_s`` after it changed hands at the latest."""
        if owned is not None:
            for factory in owned - (self._owned or frozenset()):
                known = self.registry.factories.get(factory)
                for device in known.devices if known is not None else ():
                    self._last_seen[(factory, device)] = max(self._last_seen.get((factory, device), now), now)
        self._owned = owned

    def _check_stale(self, now: int) -> None:
        for (factory, device), last in self._last_seen.items():
            if self._owned is not None and factory not in self._owned:
                continue  # another worker's partition: its staleness is that worker's to judge
            dev = self.registry.device(factory, device)
            limit_s = (
                dev.stale_after_s if dev and dev.stale_after_s else None
            ) or self.settings.stale_after_s
            silent_s = (now - last) / NS_PER_S
            if self.shutdowns is not None and self.shutdowns.covers(factory, device, now):
                self._clear(
                    (factory, device, DEVICE_PARAMETER, RULE_STALE),
                    now,
                    "a planned shutdown accepted by an officer covers the device",
                )
                continue
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

    def _publish_states(self, now: int) -> None:
        """Each factory's public state (alerts/public_state.py), written when it changes and
        every REPUBLISH_NS while it holds."""
        exceeding: dict[str, set[str]] = {}
        for st in self._series.values():
            if st.last_hour_exceeded or any(ok for _, ok in st.rolling_exceeded.values()):
                exceeding.setdefault(st.key[0], set()).add(st.channel.parameter)
        provisional: dict[str, set[str]] = {}
        for key, cond in self._active.items():
            if cond.provisional:
                channel = self.registry.channel(key[0], key[1], key[2])
                provisional.setdefault(key[0], set()).add(channel.parameter if channel else key[2])
        newest: dict[str, int] = {}
        for (factory, _), seen in self._last_seen.items():
            newest[factory] = max(seen, newest.get(factory, seen))
        no_data_ns = int(self.settings.public_no_data_after_s * NS_PER_S)
        waiting = {key[0] for key in self._latest_to_read}
        for factory in self.registry.factories:
            if factory in waiting:
                continue  # its latest closed periods are not read back yet
            if self._owned is not None and factory not in self._owned:
                continue  # another worker's partition publishes its state
            shut = self.shutdowns is not None and self.shutdowns.factory_shut(factory, now)
            state, params = public_state(
                exceeding.get(factory, ()),
                provisional.get(factory, ()),
                newest.get(factory),
                now,
                no_data_ns,
                shutdown=shut,
            )
            published = self._published.get(factory)
            if (
                published is not None
                and published[:2] == (state, params)
                and now - published[2] < REPUBLISH_NS
            ):
                continue
            self._published[factory] = (state, params, now)
            self._queue(
                Point(
                    PublicState.NAME,
                    {FACTORY: factory},
                    now,
                    {PublicState.STATE: state, PublicState.PARAMETERS: ",".join(params)},
                )
            )

    # -- hours ---------------------------------------------------------------------------------
    def _close_hours(self, now: int) -> None:
        closable = hour_start(now - int(self.settings.close_delay_s * NS_PER_S)) - HOUR_NS
        forget = hour_start(now) - KEEP_HOURS * HOUR_NS
        for st in list(self._series.values()):
            for h in sorted(st.hours):
                if h > closable:
                    break
                if h in st.closed:
                    continue
                if (st.key, h) in self._dirty:
                    continue  # it arrived after its hour had ended: recomputed as retroactive
                acc = st.hours[h]
                if not acc.complete or (st.rolling_windows and not st.history_loaded):
                    break  # read back first: hours close in order, on a later tick
                self._finish_hour(st, acc, retroactive=False, now=now)
            for h in [h for h in st.hours if h < forget]:
                del st.hours[h]
            for h in [h for h in st.closed if h < forget]:
                del st.closed[h]
                st.last_values.pop(h, None)

    def _recompute_dirty(self, now: int) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = sorted(self._dirty, key=lambda item: item[1]), set()
        for key, h in dirty:
            st = self._series[key]
            acc = st.hours.get(h)
            if acc is None:
                continue
            if not acc.complete or (st.rolling_windows and not st.history_loaded):
                self._dirty.add((key, h))  # after its read-back, on a later tick
                continue
            self._finish_hour(st, acc, retroactive=True, now=now)

    def _finish_hour(self, st: _Series, acc: HourAccumulator, retroactive: bool, now: int) -> None:
        h = acc.start_ns
        day = local_day(h, self.tz)
        result = hour_result(
            st.key, acc, st.channel, day, self.standards, self.settings.hysteresis, retroactive
        )
        st.closed[h] = (result.corrected if result.corrected is not None else 0.0, result.valid)
        self.counters["hours_closed" if not retroactive else "hours_retroactive"] += 1
        self._queue(result.point())
        self._paid((HOUR, st.key, h))
        self._paid((LATE, st.key, h))
        st.days_touched.add(day)
        start_of_day, _ = day_bounds(day, self.tz)
        self._owe((DAY, st.key, start_of_day))
        if retroactive:
            key = st.key
            if self._days_closed.get(key) is not None and day <= self._days_closed[key]:
                st.days_touched.add(day)
        if st.hourly_limits:
            if h >= st.last_hour_judged:
                st.last_hour_judged, st.last_hour_exceeded = h, result.exceeded
            self._judge_hour(st, result, now)
        if st.rolling_windows:
            ends = [h + HOUR_NS] if not retroactive else [h + k * HOUR_NS for k in range(1, 25)]
            for end in ends:
                if end <= hour_start(now) or not retroactive:
                    self._rolling(st, end, now, retroactive)
        if st.device_kind == "energy" and st.channel.parameter in ("energy", "power"):
            self._energy(st, result, day)
        # Memory keeps the result, not the minutes: about 4 KB per series-hour less.
        st.last_values[h] = acc.last_value
        if st.hours.get(h) is acc:
            del st.hours[h]

    def _queue(self, point: Point | None) -> None:
        if point is not None:
            self._pending_points.setdefault(point.measurement, []).append(point)

    def _take_effects(self) -> list[Effect]:
        """The effects decided since the last call: alert changes in order, then the points."""
        effects, self._effects = self._effects, []
        for measurement, points in self._pending_points.items():
            effects.append(WritePoints(measurement, tuple(points)))
        self._pending_points = {}
        if self._to_settle:  # after the points they stand for
            effects.append(SettleWork(tuple(self._to_settle)))
            self._to_settle = []
        return effects

    # -- rolling windows and the AQI -----------------------------------------------------------
    def _rolling(self, st: _Series, end: int, now: int, retroactive: bool) -> None:
        day = local_day(end - HOUR_NS, self.tz)
        history = st.closed
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
            if end >= st.rolling_exceeded.get(window, (-1, False))[0]:
                st.rolling_exceeded[window] = (end, result.valid and result.exceeded)
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
        for point in aqi_mod.aqi_points(factory, device, h, day, concentrations, self.standards):
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
        return acc.last_value if acc is not None else st.last_values.get(h)

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

    def _write_day(self, st: _Series, day: date) -> None:
        start, end = day_bounds(day, self.tz)
        if self.store is not None:
            # Counted from the store's hourly points with the hours memory closed: hours of the day
            # may have closed in an earlier process (one query per series and day).
            self._days_to_read.add((st.key, day))
            return
        valid = sum(1 for h, (_, ok) in st.closed.items() if start <= h < end and ok)
        self._queue(daily_point(st.key, day, self.tz, valid, self.settings.completeness))
        self._paid((DAY, st.key, start))

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
        if not lim.confirmed:
            params["origin"] += ", value unconfirmed"
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
            self._record_exceedance(
                st, key, "1h", h, h + HOUR_NS, verdict, now, retroactive=result.retroactive
            )
            if active is not None:
                if active.provisional:
                    if active.period_start_ns is not None:
                        self._decide(DecideProvisional(key, active.period_start_ns, "confirmed", now))
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
            window = extra.get("window", "")
            hours = WINDOWS.get(window, 1)
            end = period_start + HOUR_NS
            self._record_exceedance(
                st, key, window, end - hours * HOUR_NS, end, verdict, now, retroactive=retroactive
            )
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
        # Judged only when memory vouches for every minute (read back on the next tick if not);
        # the minimum counts valid minutes, not points.
        if not acc.complete or acc.valid_minutes < self.settings.provisional_min_points or h in st.closed:
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
            active = self._active.get(key)
            if active is None and self.settings.open_after_hours == 1:
                params = self._limit_params(
                    st, verdict, {"period": self._period(h), "points": str(acc.points)}
                )
                self._raise(key, "warning", "limit_provisional", params, now, verdict, h, provisional=True)
                self._record_exceedance(st, key, "1h", h, h + HOUR_NS, verdict, now, provisional=True)
                self._clear((*st.key, RULE_EARLY), now, "superseded by the exceedance")
            elif active is not None:
                self._current(key, verdict.compared, now)
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
                self._record_exceedance(st, key, "instant", r.ts_ns, r.ts_ns, verdict, now)
            else:
                self._current(key, verdict.compared, now)
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

    # -- alert state: decided here, applied by the effect sink --------------------------------
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
        if verdict is not None:
            value, bound, unit = verdict.compared, verdict.bound, verdict.limit.unit
        else:
            unit = params.get("unit", "")
        self._active[key] = Condition(key, provisional, period_start)
        self._decide(
            RaiseAlert(
                key,
                severity,
                template,
                params,
                now,
                value,
                bound,
                unit,
                provisional=provisional,
                retroactive=retroactive,
                period_start_ns=period_start,
            )
        )

    def _update(
        self,
        cond: Condition,
        action: str,
        now: int,
        template: str,
        params: dict[str, str],
        verdict: Verdict,
        period_start: int,
        provisional: bool | None = None,
    ) -> None:
        if provisional is not None:
            cond.provisional = provisional
        cond.period_start_ns = period_start
        self._decide(
            UpdateAlert(
                cond.key,
                action,
                now,
                template,
                params,
                verdict.compared,
                verdict.bound,
                period_start,
                provisional,
            )
        )

    def _withdraw(self, cond: Condition, why: str, now: int) -> None:
        self._active.pop(cond.key, None)
        if cond.period_start_ns is not None:
            self._decide(DecideProvisional(cond.key, cond.period_start_ns, "withdrawn", now))
        self._decide(ResolveAlert(cond.key, now, why, withdrawn=True))

    def _record_exceedance(
        self,
        st: _Series,
        key: AlertKey,
        averaging: str,
        start: int,
        end: int,
        verdict: Verdict,
        now: int,
        *,
        retroactive: bool = False,
        provisional: bool = False,
    ) -> None:
        """The record of a legal period above a limit (immutable once written)."""
        if averaging == "1h":
            basis = (
                f"corrected to {_g(st.o2_reference)} % O2" if st.o2_reference is not None else "as measured"
            )
            method = methods()[Hourly.NAME].tag
        elif averaging == "instant":
            basis, method = "as measured", "reading"
        else:
            basis, method = "as measured", methods()[Rolling.NAME].tag
        self._decide(
            RecordExceedance(
                key,
                averaging,
                start,
                end,
                verdict.compared,
                verdict.bound,
                verdict.limit.unit,
                basis,
                method,
                verdict.limit.origin,
                now,
                retroactive=retroactive,
                provisional=provisional,
            )
        )

    def _clear(self, key: AlertKey, now: int, why: str) -> None:
        if key not in self._active:
            return
        del self._active[key]
        self._decide(ResolveAlert(key, now, why))

    def _decide(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _current(self, key: AlertKey, value: float, now: int) -> None:
        """The latest value of an ongoing condition for the officers' card: sent when it moved
        by a percent or a minute passed, not with every batch."""
        sent = self._current_sent.get(key)
        if sent is not None and abs(value - sent[0]) <= 0.01 * abs(sent[0]) and now - sent[1] < 60 * NS_PER_S:
            return
        self._current_sent[key] = (value, now)
        self._decide(CurrentValue(key, value, now))

    # -- escalation ----------------------------------------------------------------------------
    def _escalate(self, now: int) -> None:
        delay_ns = int(self.settings.escalate_after_s * NS_PER_S)
        try:
            candidates = self.alerts.list(state=OPEN, limit=10_000)
        except Exception as exc:
            log.error("cannot read open alerts to escalate: %s", exc)
            return
        for alert in candidates:
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
                self.applier.emit(AlertEvent("escalated", escalated, step))

    def open_count(self) -> int:
        # No lock: len() of a dict is atomic, and /metrics must answer while a tick runs.
        return len(self._active)


class StaleChecker(SupervisedLoop):
    """Calls :meth:`AlertEngine.tick` every ``interval_s`` on a background thread (stage
    ``rules-tick``, under a supervisor: a tick under way is its backlog, so a tick that hangs is
    reported stuck). A tick that fails is logged and tried again at the next interval."""

    def __init__(self, engine: AlertEngine, interval_s: float, supervisor: Supervisor | None = None) -> None:
        super().__init__(supervisor or Supervisor(), Stage("rules-tick"))
        self.engine = engine
        self.interval_s = interval_s

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self.stage.working():
                try:
                    self.engine.tick()
                except Exception:
                    log.exception("rules tick failed")


def _minutes_before(h: int, known_from: int) -> int:
    """The mask of hour ``h``'s minutes that begin before ``known_from`` (a minute boundary)."""
    if h + HOUR_NS <= known_from:
        return ALL_MINUTES
    if h >= known_from:
        return 0
    return (1 << ((known_from - h) // MINUTE_NS)) - 1
