"""Cost of the duties job: the wall time of one run over a town of CEMS stacks on the embedded
store, the store's reads included (the job reads each monitor's valid minutes per day).

Run: ``python -m bench.duties_cost [--devices N] [--days D]`` (prints the figures; works in a
temporary folder). A generated town of N factories with one 6-channel stack each, all marked
``cems: true``, 1-minute scans for D days ending at the run; one device in ten goes silent on the
last day (a malfunction to infer). The job looks back 3 days (its default)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from alerts.duties import DutiesJob, DutyStore, ShutdownCalendar
from alerts.duties.deadlines import day_start_ns, local_day
from alerts.duties.rules import load_duty_rules
from alerts.state import open_alert_store
from eit.model import Reading
from eit.registry import load_registry
from eit.timeutil import NS_PER_S, now_ns
from ingest.store.sqlite import SqliteStore
from testbed.town import TownSpec, town_site

MINUTE_NS = 60 * NS_PER_S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--days", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        site_path = town_site(folder / "site.yaml", TownSpec(factories=args.devices))
        data = yaml.safe_load(site_path.read_text())
        for f in data["factories"]:
            f["cems"] = True
        site_path.write_text(yaml.safe_dump(data, allow_unicode=True))
        registry = load_registry(site_path)
        tz = ZoneInfo(registry.timezone)
        store = SqliteStore(folder / "readings.db")
        now = now_ns()
        today = day_start_ns(local_day(now, tz), tz)
        start = today - args.days * 86_400 * NS_PER_S
        started = time.perf_counter()
        written = 0
        for i, f in enumerate(registry.factories.values()):
            for d in f.devices.values():
                end = today - 86_400 * NS_PER_S if i % 10 == 0 else today
                rows = [
                    Reading(f.id, d.id, ch, ts, 10.0 + (ts // MINUTE_NS) % 5)
                    for ts in range(start, end, MINUTE_NS)
                    for ch in d.channels
                ]
                store.write(rows)
                written += len(rows)
        write_s = time.perf_counter() - started
        alerts = open_alert_store(None, folder / "state.db")
        rules = load_duty_rules()
        duties = DutyStore(alerts.db, rules, tz)
        job = DutiesJob(
            registry, store, duties, alerts, ShutdownCalendar(registry), rules, integrity_monthly=False
        )
        started = time.perf_counter()
        result = job.run_once(now)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        job.run_once(now + 60 * NS_PER_S)
        again_s = time.perf_counter() - started
        channels = sum(len(d.channels) for f in registry.factories.values() for d in f.devices.values())
        town = f"{registry.device_count} CEMS stacks, {channels} channels"
        print(f"town: {town}, {written} readings over {args.days} days")
        print(f"(writing the readings: {write_s:.1f} s)")
        print(
            f"duties run: {first_s:.2f} s ({first_s / registry.device_count * 1000:.0f} ms per device),"
            f" {result.inferred} malfunctions inferred"
        )
        print(f"next run (the same days, read once per process): {again_s:.2f} s")
        store.close()
        alerts.close()


if __name__ == "__main__":
    main()
