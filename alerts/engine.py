"""The first-cut rule engine: an instantaneous limit rule and a stale-device rule.

- ``limit``: a valid reading (flag N or S) beyond a limit in force for its channel opens an
  alert; a valid reading back within every limit resolves it. Readings flagged C, M, D, F, T or B
  neither open nor resolve anything: calibration gas must never look like an exceedance.
- ``stale``: no data from a device for ``stale_after_s`` (the registry may set it per device), or
  the broker delivering the device's ``offline`` status, opens an alert; data resolves it.

One open alert per (factory, device, parameter, rule) is kept by the alert store (a unique index);
the engine remembers open keys so a steady exceedance is notified once, not once per reading.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import date
from zoneinfo import ZoneInfo

from alerts.model import AlertEvent, AlertKey
from alerts.notifiers.dispatch import Dispatcher
from alerts.state import AlertStore
from eit import wire
from eit.model import Reading
from eit.registry import Channel, Registry
from eit.standards import AVERAGING_PERIODS, Limit
from eit.timeutil import NS_PER_S, now_ns, ns_to_datetime
from eit.units import conversion_factor

log = logging.getLogger("eit.alerts.engine")

RULE_LIMIT = "limit"
RULE_STALE = "stale"
DEVICE_PARAMETER = "*"  # the parameter of device-wide alerts (stale)


class AlertEngine:
    def __init__(
        self,
        registry: Registry,
        alerts: AlertStore,
        dispatcher: Dispatcher,
        stale_after_s: float = 120.0,
        clock: Callable[[], int] = now_ns,
        on_event: Callable[[AlertEvent], None] | None = None,
    ) -> None:
        self.registry = registry
        self.alerts = alerts
        self.dispatcher = dispatcher
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.on_event = on_event
        self.tz = ZoneInfo(registry.timezone)
        self._lock = threading.Lock()
        self._open: set[AlertKey] = alerts.open_keys()
        started = clock()
        self._last_seen: dict[tuple[str, str], int] = {
            (f.id, d.id): started for f in registry.factories.values() for d in f.devices.values()
        }
        self._factors: dict[tuple[str, str, str, str], float] = {}

    # -- ReadingSink ---------------------------------------------------------------------------
    def on_readings(self, readings: Sequence[Reading], now: int) -> None:
        with self._lock:
            devices_seen: set[tuple[str, str]] = set()
            for r in readings:
                devices_seen.add((r.factory, r.device))
                if not r.valid:
                    continue
                channel = self.registry.channel(r.factory, r.device, r.channel)
                if channel is None:
                    continue
                self._check_limits(r, channel, now)
            for factory, device in devices_seen:
                self._last_seen[(factory, device)] = now
                self._resolve((factory, device, DEVICE_PARAMETER, RULE_STALE), now)

    def on_status(self, factory: str, device: str, state: str, now: int) -> None:
        if state != wire.STATUS_OFFLINE:
            return
        with self._lock:
            self._open_alert(
                (factory, device, DEVICE_PARAMETER, RULE_STALE),
                "warning",
                f"{factory}/{device} reports offline (the edge agent or the meter stopped answering)",
                now,
            )

    # -- periodic ------------------------------------------------------------------------------
    def tick(self, now: int | None = None) -> None:
        """Check every registered device for staleness."""
        now = self.clock() if now is None else now
        with self._lock:
            for (factory, device), last in self._last_seen.items():
                dev = self.registry.device(factory, device)
                limit_s = (dev.stale_after_s if dev and dev.stale_after_s else None) or self.stale_after_s
                silent_s = (now - last) / NS_PER_S
                if silent_s > limit_s:
                    self._open_alert(
                        (factory, device, DEVICE_PARAMETER, RULE_STALE),
                        "warning",
                        f"no data from {factory}/{device} for {silent_s:.0f} s (limit {limit_s:.0f} s)",
                        now,
                    )

    # -- rules ---------------------------------------------------------------------------------
    def _day(self, ts_ns: int) -> date:
        return ns_to_datetime(ts_ns).astimezone(self.tz).date()

    def _screening_limits(self, channel: Channel, day: date) -> list[Limit]:
        """The limits an instantaneous value is screened against: for each parameter, those
        with the shortest averaging period in force, if it is 24 hours or less (an annual
        standard says nothing about one reading)."""
        limits = [lim for lim in channel.limits_on(day) if AVERAGING_PERIODS[lim.averaging] <= 86400]
        if not limits:
            return []
        shortest = min(AVERAGING_PERIODS[lim.averaging] for lim in limits)
        return [lim for lim in limits if AVERAGING_PERIODS[lim.averaging] == shortest]

    def _check_limits(self, r: Reading, channel: Channel, now: int) -> None:
        key = (r.factory, r.device, r.channel, RULE_LIMIT)
        for limit in self._screening_limits(channel, self._day(r.ts_ns)):
            value = r.value * self._factor(channel, limit)
            if limit.max is not None and value > limit.max:
                self._exceeded(key, r, channel, limit, value, limit.max, "above", now)
                return
            if limit.min is not None and value < limit.min:
                self._exceeded(key, r, channel, limit, value, limit.min, "below", now)
                return
        self._resolve(key, now)

    def _factor(self, channel: Channel, limit: Limit) -> float:
        k = (channel.parameter, channel.unit, limit.unit, limit.origin)
        factor = self._factors.get(k)
        if factor is None:
            factor = conversion_factor(channel.parameter, channel.unit, limit.unit, self.registry.standards)
            self._factors[k] = factor
        return factor

    def _exceeded(
        self,
        key: AlertKey,
        r: Reading,
        channel: Channel,
        limit: Limit,
        value: float,
        bound: float,
        side: str,
        now: int,
    ) -> None:
        if key in self._open:
            return
        message = (
            f"{r.channel} {value:.4g} {limit.unit} {side} the {limit.kind} limit {bound:g} {limit.unit}"
            f" ({limit.origin}, {limit.averaging} average; instantaneous screening value)"
        )
        self._open_alert(key, "critical", message, now, value, bound, limit.unit)

    def _open_alert(
        self,
        key: AlertKey,
        severity: str,
        message: str,
        now: int,
        value: float | None = None,
        limit: float | None = None,
        unit: str = "",
    ) -> None:
        if key in self._open:
            return
        alert = self.alerts.open_alert(key, severity, message, now, value, limit, unit)
        self._open.add(key)
        if alert is None:
            return  # already open in the store (opened before a restart)
        self._emit(AlertEvent("opened", alert))

    def _resolve(self, key: AlertKey, now: int) -> None:
        if key not in self._open:
            return
        self._open.discard(key)
        alert = self.alerts.resolve(key, now)
        if alert is not None:
            self._emit(AlertEvent("resolved", alert))

    def _emit(self, event: AlertEvent) -> None:
        self.dispatcher.submit(event)
        if self.on_event is not None:
            self.on_event(event)

    def open_count(self) -> int:
        with self._lock:
            return len(self._open)


class StaleChecker:
    """Calls :meth:`AlertEngine.tick` every ``interval_s`` on a background thread."""

    def __init__(self, engine: AlertEngine, interval_s: float) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stale-check", daemon=True)

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
                log.exception("stale check failed")
