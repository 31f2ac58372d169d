"""What `eit demo` prints while it runs: one summary line per interval (not a line per reading),
each alert set apart so that it does not scroll away among the readings, and a summary when it
stops. ``every_reading`` prints each stored scan as well, as earlier releases did."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from eit.model import Reading
from eit.registry import Registry
from eit.timeutil import ns_to_datetime

_COLOURS = {
    "alert": "\033[1;37;41m",  # white on red: the line an alert starts with
    "opened": "\033[1;31m",
    "reopened": "\033[1;31m",
    "confirmed": "\033[1;31m",
    "escalated": "\033[1;35m",
    "resolved": "\033[1;32m",
    "closed": "\033[32m",
    "withdrawn": "\033[32m",
    "bold": "\033[1m",
    "dim": "\033[2m",
    "reset": "\033[0m",
}
# Events that need someone's attention: set apart in a block of their own. The others (updated,
# acknowledged, resolved, closed, withdrawn) take one line.
LOUD_EVENTS = frozenset({"opened", "reopened", "confirmed", "escalated"})
RULE = "=" * 78


@dataclass(frozen=True, slots=True)
class OpenAlert:
    id: int
    factory: str
    device: str
    parameter: str
    rule: str
    unit: str


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min {secs} s"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


class ConsoleSink:
    """A sink of the ingest (``on_readings``, ``on_status``) and the rules' ``on_alert``; it
    prints a summary line every ``interval_s`` while :meth:`start` runs it."""

    def __init__(
        self,
        registry: Registry,
        out: TextIO,
        colour: bool,
        *,
        interval_s: float = 10.0,
        every_reading: bool = False,
        hints: Callable[[int], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.out = out
        self.colour = colour
        self.interval_s = interval_s
        self.every_reading = every_reading
        self.hints = hints  # an alert id -> where to see it (the console, `eit alert show`)
        self.clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._since = self._started
        self._interval_readings = 0
        self._interval_devices: set[tuple[str, str]] = set()
        self._interval_flagged = 0
        self.readings = 0
        self.devices: set[tuple[str, str]] = set()
        self.events: Counter[str] = Counter()
        self.open: dict[int, OpenAlert] = {}
        self.opened: list[int] = []
        self._latest: dict[tuple[str, str, str], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _c(self, name: str) -> str:
        return _COLOURS.get(name, "") if self.colour else ""

    def _print(self, lines: Sequence[str]) -> None:
        for line in lines:
            print(line, file=self.out)
        self.out.flush()

    # -- the sink ------------------------------------------------------------------------------
    def on_readings(self, readings: Sequence[Reading], now_ns: int) -> None:
        with self._lock:
            for r in readings:
                self._latest[(r.factory, r.device, r.channel)] = r.value
                self._interval_devices.add((r.factory, r.device))
                self.devices.add((r.factory, r.device))
                if r.flag != "N":
                    self._interval_flagged += 1
            self._interval_readings += len(readings)
            self.readings += len(readings)
            if self.every_reading:
                self._print(self._reading_lines(readings))

    def _reading_lines(self, readings: Sequence[Reading]) -> list[str]:
        scans: dict[tuple[str, str, int], list[Reading]] = defaultdict(list)
        for r in readings:
            scans[(r.factory, r.device, r.ts_ns)].append(r)
        lines = []
        for (factory, device, ts_ns), group in sorted(scans.items(), key=lambda kv: kv[0][2]):
            when = ns_to_datetime(ts_ns).astimezone().strftime("%H:%M:%S")
            parts = []
            for r in group:
                ch = self.registry.channel(r.factory, r.device, r.channel)
                unit = f" {ch.unit}" if ch else ""
                flag = "" if r.flag == "N" else f"[{r.flag}]"
                parts.append(f"{r.channel}={r.value:.4g}{unit}{flag}")
            lines.append(f"{self._c('dim')}{when}{self._c('reset')} {factory}/{device}  " + "  ".join(parts))
        return lines

    def on_status(self, factory: str, device: str, state: str, now_ns: int) -> None:
        with self._lock:
            self._print([f"{factory}/{device} is {state}"])

    def on_alert(self, event: Any) -> None:
        a = event.alert
        kind = str(event.kind)
        with self._lock:
            self.events[kind] += 1
            if kind in ("opened", "reopened"):
                self.opened.append(a.id)
            if a.state in ("resolved", "closed") or kind in ("resolved", "closed", "withdrawn"):
                self.open.pop(a.id, None)
            else:
                self.open[a.id] = OpenAlert(a.id, a.factory, a.device, a.parameter, a.rule, a.unit)
            head = f"ALERT {kind.upper()} #{a.id} {a.factory}/{a.device} {a.parameter} [{a.rule}]"
            if kind not in LOUD_EVENTS:
                self._print([f"{self._c(kind)}{head}: {a.message}{self._c('reset')}"])
                return
            banner = f"{self._c('alert')} {head} {self._c('reset')}" if self.colour else head
            lines = ["", f"{self._c(kind)}{RULE}", banner]
            lines.append(f"{self._c(kind)}  {a.message}")
            if self.hints is not None:
                lines.append(f"  {self.hints(a.id)}")
            lines += [f"{RULE}{self._c('reset')}", ""]
            self._print(lines)

    # -- the summary lines ---------------------------------------------------------------------
    def summary_line(self) -> str:
        """The line for the interval since the last one (and starts the next interval)."""
        with self._lock:
            now = self.clock()
            took = max(now - self._since, 1e-9)
            count, devices, flagged = (
                self._interval_readings,
                len(self._interval_devices),
                self._interval_flagged,
            )
            self._since, self._interval_readings, self._interval_flagged = now, 0, 0
            self._interval_devices = set()
            when = time.strftime("%H:%M:%S")
            line = f"{self._c('dim')}{when}{self._c('reset')}  {count:,} readings from {devices} device(s)"
            line += f" in {took:.0f} s"
            if flagged:
                line += f" ({flagged} flagged)"
            line += f"; {self.readings:,} since start"
            if self.open:
                shown = []
                for a in sorted(self.open.values(), key=lambda a: a.id):
                    latest = self._latest.get((a.factory, a.device, a.parameter))
                    now_value = f" latest {latest:.4g} {a.unit}".rstrip() if latest is not None else ""
                    shown.append(f"#{a.id} {a.factory}/{a.device} {a.parameter}{now_value}")
                line += (
                    f"; {self._c('bold')}{len(self.open)} alert(s) open: {', '.join(shown)}{self._c('reset')}"
                )
            else:
                line += "; no alert open"
            return line

    def start(self) -> None:
        """Print a summary line every ``interval_s`` until :meth:`stop`."""

        with self._lock:
            self._started = self._since = self.clock()

        def run() -> None:
            while not self._stop.wait(self.interval_s):
                self._print([self.summary_line()])

        self._thread = threading.Thread(target=run, name="demo-console", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def final_summary(self, stored: int, where: str, data_dir: str) -> list[str]:
        """What the run did, printed when the demo stops."""
        with self._lock:
            ran = _duration(self.clock() - self._started)
            lines = [
                "",
                RULE,
                f"{self._c('bold')}EIT Monitor demo stopped after {ran}{self._c('reset')}",
                f"  readings  {self.readings:,} received from {len(self.devices)} device(s);"
                f" {stored:,} kept in {where}",
            ]
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.events.items()))
            lines.append(f"  alerts    {kinds or 'none'}")
            for a in sorted(self.open.values(), key=lambda a: a.id):
                lines.append(f"            #{a.id} {a.factory}/{a.device} {a.parameter} [{a.rule}] is open")
            lines.append(f"  see them  eit alerts --data-dir {data_dir}")
            if self.opened:
                lines.append(f"            eit alert show {self.opened[0]} --data-dir {data_dir}")
            lines.append(f"  the data stays in {data_dir}; the next run goes on from it")
            lines.append(RULE)
            return lines
