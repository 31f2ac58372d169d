"""CPU cost per reading of each stage of the ingest's hot path, in the process itself.

Run: ``python -m bench.pipeline_cost`` (prints a table; nothing is written).

Payloads: wire format v1 as the edge agent publishes it (``eit.wire.encode``: one message per
scan, ``{"v":1,"scans":[{"seq":N,"ts":"2026-11-27T09:00:00.123456Z","values":{...}}]}``), one
12-channel stack device (biomass boiler preset: hourly limits, O2 correction) per factory of a
generated site registry, one scan a second per device; values drift around a level below the
limits, so the rules work but raise nothing. Messages are cut into batches of about
``batch_max_readings`` (5000) readings, as the ingest's writer thread cuts them.

Each stage runs over every batch; CPU is ``time.process_time``, the best of ``--runs`` runs,
divided by the readings. The baseline is ``json.loads`` of the same payloads in the same run
(the stages' ratios to it are the figures to compare across machines and runs):

- ``json.loads``: the baseline;
- ``wire.decode``: JSON and the wire format's checks, to scans;
- ``Validator.check``: decoded scans against the registry, to readings;
- ``line_protocol``: readings to the InfluxDB write body (lines joined, encoded to bytes);
- ``SqliteStore.write``: the embedded store's write to a temporary file (fsync included);
- ``AlertEngine.on_readings``: every rule on, no ticks (closing hours is in bench/rules_cost.py);
- the whole batch: ``Ingest.decode_batch`` (topics, metrics, decode, validate),
  ``Ingest.store_batch`` into the InfluxDB store with its HTTP POST stubbed out (line protocol,
  the body in bytes, the metrics) and ``Ingest.deliver`` to the engine: everything the ingest
  process does per batch except the POST itself and paho's network thread.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.engine import AlertEngine
from alerts.notifiers.dispatch import Dispatcher
from alerts.settings import RuleSettings
from alerts.state import open_alert_store
from eit import wire
from eit.model import Reading
from eit.registry import Registry, load_registry
from eit.timeutil import parse_iso_ns
from ingest.deadletters import open_dead_letters
from ingest.metrics import IngestMetrics
from ingest.service import Incoming, Ingest
from ingest.settings import IngestSettings
from ingest.store.influx import InfluxStore, line_protocol
from ingest.store.sqlite import SqliteStore
from ingest.validate import Validator

T0 = parse_iso_ns("2026-11-27T09:00:00.123456Z")
S = 1_000_000_000
DEVICE = "stack-1"
# Twelve channels of a CEMS stack: id, unit, range, the level the values drift around.
CHANNELS: tuple[tuple[str, str, tuple[float, float], float], ...] = (
    ("so2", "ppm", (0, 500), 25.0),
    ("nox", "ppm", (0, 1000), 80.0),
    ("pm", "mg/m3", (0, 1000), 60.0),
    ("o2", "%", (0, 25), 9.5),
    ("co", "ppm", (0, 1000), 40.0),
    ("co2", "%", (0, 25), 8.0),
    ("hcl", "mg/m3", (0, 200), 5.0),
    ("h2s", "ppm", (0, 100), 2.0),
    ("hg", "mg/m3", (0, 1), 0.01),
    ("opacity", "%", (0, 100), 10.0),
    ("flow", "m3/h", (0, 200000), 52000.0),
    ("temperature", "C", (0, 400), 180.0),
)


def site_yaml(factories: int) -> str:
    lines = ["town: {id: bench-town, name: Bench town, timezone: Asia/Bangkok}", "factories:"]
    for i in range(factories):
        lines += [
            f"  - id: f{i:04d}",
            f"    name: Factory {i}",
            "    location: {lat: 12.7, lon: 101.1}",
            "    devices:",
            f"      - id: {DEVICE}",
            "        kind: stack",
            "        standard: th.stack.boiler.biomass",
            "        channels:",
        ]
        for cid, unit, (lo, hi), _ in CHANNELS:
            lines.append(f'          - {{id: {cid}, unit: "{unit}", range: [{lo}, {hi}]}}')
    return "\n".join(lines) + "\n"


def messages(factories: int, seconds: int, seed: int = 1) -> list[Incoming]:
    """One message per scan, device after device within each second (as they arrive)."""
    rnd = random.Random(seed)
    out = []
    mid = 0
    for t in range(seconds):
        ts = T0 + t * S
        for i in range(factories):
            values = {
                cid: round(level * (1 + 0.05 * rnd.uniform(-1, 1)), 3 if level < 1 else 2)
                for cid, _, _, level in CHANNELS
            }
            payload = wire.encode([wire.Scan(ts, values, seq=t)])
            mid += 1
            out.append(Incoming(mid, 1, wire.data_topic(f"f{i:04d}", DEVICE), payload))
    return out


def batches(msgs: list[Incoming], max_readings: int) -> list[list[Incoming]]:
    out: list[list[Incoming]] = []
    current: list[Incoming] = []
    n = 0
    for m in msgs:
        current.append(m)
        n += len(CHANNELS)
        if n >= max_readings:
            out.append(current)
            current, n = [], 0
    if current:
        out.append(current)
    return out


class _Sent:
    status_code = 204
    text = ""


class PostlessInflux(InfluxStore):
    """The InfluxDB store with the HTTP POST left out: it keeps the bodies' sizes only."""

    def __init__(self) -> None:
        super().__init__("http://localhost:1", "bench", create_database=False)
        self.bytes_sent = 0

    def _post(self, path: str, params: dict[str, str], data: bytes | None = None) -> Any:
        self.bytes_sent += len(data or b"")
        return _Sent()


def engine(registry: Registry, path: Path) -> AlertEngine:
    settings = RuleSettings(stale_after_s=1e12)
    return AlertEngine(
        registry, open_alert_store(None, path), Dispatcher([]), clock=lambda: T0, settings=settings
    )


def timed(run: Callable[[], None]) -> float:
    gc.collect()
    started = time.process_time()
    run()
    return time.process_time() - started


@dataclass
class Row:
    stage: str
    seconds: float


def measure(registry: Registry, tmp: Path, msgs: list[Incoming], runs: int, batch_max: int) -> list[Row]:
    groups = batches(msgs, batch_max)
    payloads = [[m.payload for m in g] for g in groups]
    topics = {m.topic: wire.parse_topic(m.topic) for m in msgs}
    received = T0 + 3600 * S
    decoded = [[(topics[m.topic], wire.decode(m.payload)) for m in g] for g in groups]
    validator = Validator(registry)
    readings: list[list[Reading]] = []
    for g in decoded:
        rs: list[Reading] = []
        for topic, d in g:
            rs.extend(validator.check(topic, d, received).readings)
        readings.append(rs)
    total = sum(len(r) for r in readings)
    if total != len(msgs) * len(CHANNELS):
        raise SystemExit(f"the stream lost readings: {total} of {len(msgs) * len(CHANNELS)}")

    def json_loads() -> None:
        loads = json.loads
        for g in payloads:
            for p in g:
                loads(p)

    def decode() -> None:
        dec = wire.decode
        for g in payloads:
            for p in g:
                dec(p)

    def validate() -> None:
        check = validator.check
        for g in decoded:
            for topic, d in g:
                check(topic, d, received)

    def lines() -> None:
        for rs in readings:
            "\n".join(line_protocol(rs)).encode()

    counter = iter(range(1_000_000))

    def sqlite_run() -> Callable[[], None]:
        store = SqliteStore(tmp / f"store{next(counter)}.db")

        def run() -> None:
            for rs in readings:
                store.write(rs)

        return run

    def engine_run() -> Callable[[], None]:
        e = engine(registry, tmp / f"alerts{next(counter)}.db")

        def run() -> None:
            for rs in readings:
                e.on_readings(rs, rs[-1].ts_ns + S)

        return run

    def whole_run() -> Callable[[], None]:
        n = next(counter)
        e = engine(registry, tmp / f"alerts{n}.db")
        ingest = Ingest(
            registry,
            PostlessInflux(),
            open_dead_letters(None, tmp / f"dead{n}.db"),
            IngestMetrics(),
            [e],
            IngestSettings(batch_max_readings=batch_max),
        )

        def run() -> None:
            for g in groups:
                now = received_at[id(g)]
                result = ingest.decode_batch(g, now)
                ingest.store_batch(result)
                ingest.deliver(result, now)
                if len(result.readings) != len(g) * len(CHANNELS) or result.dead:
                    raise SystemExit(f"the pipeline rejected readings: {result.dead[:1]}")

        return run

    # The clock of the whole-batch run: a batch is received a second after its last scan.
    received_at = {id(g): rs[-1].ts_ns + S for g, rs in zip(groups, readings, strict=True)}

    fixed: list[tuple[str, Callable[[], None]]] = [
        ("json.loads (baseline)", json_loads),
        ("wire.decode", decode),
        ("Validator.check", validate),
        ("line_protocol, joined to bytes", lines),
    ]
    fresh: list[tuple[str, Callable[[], Callable[[], None]]]] = [
        ("SqliteStore.write (temp file)", sqlite_run),
        ("AlertEngine.on_readings", engine_run),
        ("whole batch: decode_batch + store_batch (Influx, no POST) + deliver", whole_run),
    ]
    best: dict[str, float] = {}
    # Interleaved: every stage once per round, so that a burst of load elsewhere touches all alike.
    for _ in range(runs):
        for name, fn in fixed:
            best[name] = min(best.get(name, float("inf")), timed(fn))
        for name, make in fresh:
            run = make()  # set-up (a new engine or store) outside the timing
            best[name] = min(best.get(name, float("inf")), timed(run))
    return [Row(name, best[name]) for name, _ in (*fixed, *fresh)]


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def table(rows: list[Row], readings: int) -> str:
    base = rows[0].seconds
    out = ["| stage | CPU per reading | x json.loads |", "|---|---:|---:|"]
    for row in rows:
        us = row.seconds / readings * 1e6
        out.append(f"| {row.stage} | {us:.2f} us | {row.seconds / base:.2f} |")
    whole = rows[-1].seconds / readings
    out.append("")
    out.append(
        f"Whole batch: {1 / whole:,.0f} readings per CPU second (one core, without the POST and paho)."
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--factories", type=int, default=100, help="factories, one 12-channel device each")
    parser.add_argument("--seconds", type=int, default=30, help="seconds of scans (one a second a device)")
    parser.add_argument("--runs", type=int, default=5, help="runs per stage (the best counts)")
    parser.add_argument("--batch", type=int, default=IngestSettings().batch_max_readings)
    args = parser.parse_args()
    mach = machine()
    print(
        f"machine: {mach['cpu']}, {mach['cores']} cores, Python {mach['python']}, "
        f"load average {mach['load']}, {mach['date']}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "site.yaml"
        path.write_text(site_yaml(args.factories))
        registry = load_registry(path)
        msgs = messages(args.factories, args.seconds)
        n = len(msgs) * len(CHANNELS)
        print(
            f"{len(msgs)} messages, {n} readings ({args.factories} devices x {len(CHANNELS)} channels x "
            f"{args.seconds} s), batches of ~{args.batch} readings, best of {args.runs} runs "
            f"(time.process_time)"
        )
        rows = measure(registry, Path(tmp), msgs, args.runs, args.batch)
    print()
    print(table(rows, n))


if __name__ == "__main__":
    main()
