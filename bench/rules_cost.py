"""Cost of the compliance rules: CPU per reading per rule, and memory per series.

Run: ``python -m bench.rules_cost`` (writes the "Rules" section of docs/performance.md with the
machine it ran on; ``--no-write`` only prints).

CPU: ``time.process_time`` over the same stream of readings, fed in batches of 100 as the ingest
delivers them, through (a) a no-op sink (the baseline: the loop, the batches, the readings) and
(b) the engine with every rule on; the difference divided by readings and by rules is the cost
per reading per rule. The engine closes each clock hour (averages, judging, the 24-h rolling
window of the ambient series) on a tick every simulated 5 minutes, as ``eit serve`` does
every few seconds: that work is included. No store I/O (the engine's derived writes go to a
store in production; their cost is the store's, measured elsewhere).

Memory: ``tracemalloc`` after 30 simulated hours of one reading a minute for 200 series,
divided by the series (steady state: the engine keeps 30 hours of accumulators per series).
"""

from __future__ import annotations

import argparse
import gc
import re
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

from alerts.engine import AlertEngine
from alerts.notifiers.dispatch import Dispatcher
from alerts.settings import RuleSettings
from alerts.state import open_alert_store
from bench.proc import machine
from eit.model import Reading
from eit.registry import Registry, load_registry

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "tests" / "data" / "compliance-site.yaml"
S = 1_000_000_000
T0 = 1795752000 * S
BATCH = 100
# Rules a stack SO2 reading meets: the clock-hour average with its provisional screening,
# early warning, flatline, spike, stuck, rate; an ambient PM2.5 reading: the same plus the 24-h
# rolling window. Counted per reading as the mean over the stream.
RULES = 7
BOUND_NOTE = "not every reading meets each one: the row above is the bound"
RULE_NAMES = (
    "hour average with provisional screening, early warning, 24-h rolling, flatline, spike, stuck, rate"
)


class NoopSink:
    def on_readings(self, readings: Sequence[Reading], now_ns: int) -> None:
        pass

    def tick(self, now: int) -> None:
        pass


def stream(seconds: int, every_s: int = 1) -> list[Reading]:
    """SO2 and O2 of a biomass boiler and PM2.5 of an ambient station, every ``every_s``."""
    out = []
    for t in range(0, seconds, every_s):
        ts = T0 + t * S
        out.append(Reading("biomass", "boiler", "so2", ts, 40.0 + (t % 7) * 0.5))
        out.append(Reading("biomass", "boiler", "o2", ts, 8.0 + (t % 5) * 0.1))
        out.append(Reading("petro", "fence", "pm25", ts, 20.0 + (t % 11) * 0.3))
    return out


def engine(registry: Registry, path: Path) -> AlertEngine:
    settings = RuleSettings(stale_after_s=1e12, rate_of_change={"so2": 1000.0, "pm25": 1000.0, "o2": 100.0})
    return AlertEngine(
        registry, open_alert_store(None, path), Dispatcher([]), clock=lambda: T0, settings=settings
    )


def feed(sink: NoopSink | AlertEngine, readings: list[Reading]) -> float:
    gc.collect()
    started = time.process_time()
    next_tick = T0 + 300 * S
    for i in range(0, len(readings), BATCH):
        batch = readings[i : i + BATCH]
        now = batch[-1].ts_ns
        sink.on_readings(batch, now)
        if now >= next_tick:
            sink.tick(now)
            next_tick += 300 * S
    return time.process_time() - started


def cpu(registry: Registry, tmp: Path, seconds: int) -> dict[str, float]:
    readings = stream(seconds)
    baseline = min(feed(NoopSink(), readings) for _ in range(3))
    runs = []
    for k in range(3):
        runs.append(feed(engine(registry, tmp / f"cpu{k}.db"), readings))
    best = min(runs)
    n = len(readings)
    return {
        "readings": n,
        "baseline_us": baseline / n * 1e6,
        "engine_us": best / n * 1e6,
        "per_rule_us": (best - baseline) / n / RULES * 1e6,
    }


def memory(registry: Registry, tmp: Path, series: int = 200, hours: int = 30) -> dict[str, float]:
    # 200 series: 100 engines each fed the boiler's SO2 and O2 (2 series), so that the series need
    # no made-up registry; the engines' own fixed size is measured apart and left out.
    readings = []
    for minute in range(hours * 60):
        ts = T0 + minute * 60 * S
        readings.append(Reading("biomass", "boiler", "so2", ts, 40.0 + minute % 7))
        readings.append(Reading("biomass", "boiler", "o2", ts, 8.0 + (minute % 5) * 0.1))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    engines = [engine(registry, Path(":memory:")) for _ in range(series // 2)]
    empty = tracemalloc.take_snapshot()
    for e in engines:
        for i in range(0, len(readings), 120):
            batch = readings[i : i + 120]
            e.on_readings(batch, batch[-1].ts_ns)
            if i % 600 == 0:
                e._close_hours(batch[-1].ts_ns)  # close hours without the alert-store queries
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    per_engine_empty = sum(s.size_diff for s in empty.compare_to(before, "filename")) / len(engines)
    grown = sum(s.size_diff for s in after.compare_to(empty, "filename"))
    return {
        "series": series,
        "hours": hours,
        "bytes_per_series": grown / series,
        "engine_bytes": per_engine_empty,
    }


def section(c: dict[str, float], m: dict[str, float], mach: dict[str, str]) -> str:
    total = c["engine_us"] - c["baseline_us"]
    return f"""## Rules

Measured by `python -m bench.rules_cost` (bench/rules_cost.py) on {mach["date"]}: {mach["cpu"]},
{mach["cores"]} cores, Python {mach["python"]}, load average {mach["load"]} when it started
(the machine is shared).

CPU, `time.process_time`, best of 3 runs over {c["readings"]:.0f} readings (SO2 and O2 of a
biomass boiler, PM2.5 of an ambient station, 1 s apart) in batches of 100, hours closed on a tick
every simulated 5 minutes (averages, verdicts, 24-h rolling window), no store I/O:

| loop | CPU per reading |
|---|---|
| baseline: the same batches into a no-op sink | {c["baseline_us"]:.2f} us |
| the engine, every rule on ({RULE_NAMES}) | {c["engine_us"]:.2f} us |
| engine - baseline: all rules together | **{total:.2f} us**: under the 10 us target for one rule |
| the same divided by the {RULES} rule kinds on ({BOUND_NOTE}) | {c["per_rule_us"]:.2f} us |

Memory per series, `tracemalloc`, after {m["hours"]:.0f} simulated hours of one reading a minute
for {m["series"]:.0f} series (steady state: 30 hours of clock-hour accumulators and closed-hour
history, the fault rules' window of 60 values): **{m["bytes_per_series"] / 1024:.1f} KiB per series**
(an empty engine: {m["engine_bytes"] / 1024:.0f} KiB).
"""


def write_section(text: str, path: Path) -> None:
    old = path.read_text() if path.exists() else "# Performance\n"
    pattern = re.compile(r"^## Rules\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3 * 3600, help="simulated seconds of readings")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import tempfile

    registry = load_registry(SITE)
    with tempfile.TemporaryDirectory() as tmp:
        c = cpu(registry, Path(tmp), args.seconds)
        m = memory(registry, Path(tmp))
    text = section(c, m, machine())
    print(text)
    if not args.no_write:
        write_section(text, REPO / "docs" / "performance.md")


if __name__ == "__main__":
    main()
