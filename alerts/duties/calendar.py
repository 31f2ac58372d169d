"""The accepted shutdown windows, held in memory for the rules: a device inside one raises no
no-data (stale) case, and a factory whose monitors are all inside one shows ``shutdown`` in its
public state. Only windows an officer accepted count; the duties job refreshes the calendar from
the state database, so the rules never wait on it."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from alerts.duties.model import ACCEPTED, SHUTDOWN, Notice
from eit.registry import Registry

# The devices a shutdown concerns: the monitors (ambient stations and energy meters run on).
MONITOR_KINDS = ("stack", "effluent")


class ShutdownCalendar:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def replace(self, notices: Iterable[Notice]) -> None:
        windows: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for n in notices:
            if n.kind == SHUTDOWN and n.state == ACCEPTED and n.ended_ns is not None:
                windows.setdefault((n.factory, n.device), []).append((n.started_ns, n.ended_ns))
        with self._lock:
            self._windows = windows

    def covers(self, factory: str, device: str, ts_ns: int) -> bool:
        with self._lock:
            spans = self._windows.get((factory, device), ())
            return any(start <= ts_ns < end for start, end in spans)

    def factory_shut(self, factory: str, ts_ns: int) -> bool:
        """Every monitor of the factory is inside an accepted window (it has at least one)."""
        f = self.registry.factories.get(factory)
        if f is None:
            return False
        monitors = [d.id for d in f.devices.values() if d.kind in MONITOR_KINDS]
        return bool(monitors) and all(self.covers(factory, d, ts_ns) for d in monitors)

    def shut_ns(self, factory: str, device: str, start_ns: int, end_ns: int) -> int:
        """How much of [start, end) accepted windows of the device cover (overlaps merged)."""
        with self._lock:
            spans = sorted(
                (max(s, start_ns), min(e, end_ns))
                for s, e in self._windows.get((factory, device), ())
                if s < end_ns and e > start_ns
            )
        total, reach = 0, start_ns
        for s, e in spans:
            s = max(s, reach)
            if e > s:
                total += e - s
                reach = e
        return total
