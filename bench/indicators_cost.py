"""Cost of the town indicators' computation: seconds for a month and its year of a generated town
on the embedded store, as the hourly job of `eit serve` and `eit indicators` compute them.

Run: ``python -m bench.indicators_cost [--factories N]`` (prints the figures; the store is a
temporary file). The store holds, for every channel of the town (testbed/town.py: a generated town
of N factories, one stack CEMS of 6 channels each), an hourly point for every hour of November 2026
and a daily point for every day: what the rules write. Indicators read those derived points only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.indicators import compute_indicators, scoreboard
from eit.indicators import period_bounds
from eit.registry import load_registry
from eit.store import Point
from ingest.store.sqlite import SqliteSettings, build
from testbed.town import TownSpec, town_site

HOUR_NS = 3600 * 1_000_000_000
MONTH = date(2026, 11, 1)


def measure(factories: int, workdir: Path) -> dict[str, float]:
    registry = load_registry(town_site(workdir / "site.yaml", TownSpec(factories=factories)))
    store = build(SqliteSettings(path=workdir / "readings.db"))
    tz = ZoneInfo(registry.timezone)
    start, end = period_bounds("month", MONTH, tz)
    points = 0
    channels = 0
    try:
        for f in registry.factories.values():
            for d in f.devices.values():
                for c in d.channels.values():
                    channels += 1
                    tags = {"factory": f.id, "device": d.id, "channel": c.id}
                    hourly = [
                        Point(
                            "hourly",
                            tags,
                            h,
                            {"value": 1.0, "valid": True, "exceeded": (h // HOUR_NS) % 97 == 0},
                        )
                        for h in range(start, end, HOUR_NS)
                    ]
                    daily = [
                        Point("daily", tags, h, {"complete": True, "valid_hours": 24})
                        for h in range(start, end, 24 * HOUR_NS)
                    ]
                    store.write_points("hourly", hourly)
                    store.write_points("daily", daily)
                    points += len(hourly) + len(daily)
        started = time.perf_counter()
        run, _ = compute_indicators(registry, store, MONTH, date(2026, 11, 30))
        compute_s = time.perf_counter() - started
        started = time.perf_counter()
        scoreboard(registry, store, date(2025, 12, 1), date(2026, 11, 30), public_only=True)
        board_s = time.perf_counter() - started
    finally:
        store.close()
    return {
        "factories": factories,
        "channels": channels,
        "derived_points": points,
        "contributions": run.contributions,
        "compute_month_and_year_s": round(compute_s, 2),
        "scoreboard_12_months_s": round(board_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factories", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for key, value in measure(args.factories, Path(tmp)).items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
