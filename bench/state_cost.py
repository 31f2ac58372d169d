"""Cost of the state database: milliseconds per alert-store operation on SQLite and PostgreSQL,
and how long reads wait while another process writes.

Run: ``python -m bench.state_cost [--alerts N] [--postgres-url URL]`` (prints a table; nothing is
written). Without a URL it starts a PostgreSQL cluster of its own (testbed.services.PostgreSQL,
fsync off: the figures are the code's and the round trips', not the disk's).

- writes: each alert is opened, acknowledged, noted, resolved and closed (five write
  transactions, each with its audit entry); the time per write transaction;
- reads: ``get``, ``audit`` and the active list (``list(state="active")``) per alert;
- reads beside a writer (SQLite): another process holds the write lock for 200 ms at a time
  (BEGIN IMMEDIATE ... COMMIT, as a busy `eit serve` does); the longest a ``get`` waits.

It uses only ``alerts.state.open_alert_store``, so the same file also times an earlier release
(put that release first on PYTHONPATH and run this file by its path).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.state import open_alert_store

T0 = 1_795_752_000 * 1_000_000_000


def _timed(action: Callable[[], Any], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) * 1000 / repeat


def lifecycle(store: Any, alerts: int) -> tuple[float, float]:
    """(ms per write transaction, ms per read) over ``alerts`` alerts."""
    ids: list[int] = []
    started = time.perf_counter()
    for i in range(alerts):
        key = ("kaeng-khoi-biomass", "boiler-1", "so2", f"rule-{i}")
        alert = store.open_alert(key, "critical", "so2 above the limit", T0 + i, 75.0, 60.0, "ppm")
        store.acknowledge(alert.id, "olivia", T0 + i + 1, "calling the plant")
        store.add_note(alert.id, "olivia", "pump tripped", T0 + i + 2)
        if i % 2:
            store.resolve_id(alert.id, "olivia", T0 + i + 3, "pump restarted")
            store.close_alert(alert.id, "sam", T0 + i + 4, "reviewed")
        ids.append(alert.id)
    writes = alerts * 3 + (alerts // 2) * 2
    write_ms = (time.perf_counter() - started) * 1000 / writes
    started = time.perf_counter()
    for alert_id in ids:
        store.get(alert_id)
        store.audit(alert_id)
    store.list(state="active")
    read_ms = (time.perf_counter() - started) * 1000 / (2 * len(ids) + 1)
    return write_ms, read_ms


def _hold_write_lock(path: str, hold_s: float, rounds: int, ready: Any) -> None:
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    ready.set()
    for _ in range(rounds):
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE alerts SET updated_ns = updated_ns WHERE id = 1")
        time.sleep(hold_s)  # the writer's work
        db.execute("COMMIT")
        time.sleep(0.01)
    db.close()


def reads_beside_a_writer(path: Path) -> tuple[float, float]:
    """(median ms, longest ms) of a ``get`` while another process writes, 200 ms at a time."""
    store = open_alert_store(None, path)
    ready = multiprocessing.Event()
    writer = multiprocessing.Process(target=_hold_write_lock, args=(str(path), 0.2, 10, ready))
    writer.start()
    ready.wait(30)
    waits = []
    while writer.is_alive():
        started = time.perf_counter()
        store.get(1)
        waits.append((time.perf_counter() - started) * 1000)
        time.sleep(0.005)
    writer.join()
    store.close()
    return statistics.median(waits), max(waits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--postgres-url")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="eit-state-cost-") as tmp:
        path = Path(tmp) / "state.db"
        sqlite_store = open_alert_store(None, path)
        rows.append(("sqlite", *lifecycle(sqlite_store, args.alerts)))
        sqlite_store.close()
        median_ms, longest_ms = reads_beside_a_writer(path)
        postgres = None
        url = args.postgres_url
        if url is None:
            from testbed.services import PostgreSQL

            postgres = PostgreSQL().start()
            url = postgres.url
        try:
            pg_store = open_alert_store(url, path)
            rows.append(("postgresql", *lifecycle(pg_store, args.alerts)))
            pg_store.close()
        finally:
            if postgres is not None:
                postgres.stop()
    print(f"{'database':12} {'ms/write':>9} {'ms/read':>8}   ({args.alerts} alerts)")
    for kind, write_ms, read_ms in rows:
        print(f"{kind:12} {write_ms:9.2f} {read_ms:8.2f}")
    print(f"sqlite reads beside a writer holding the lock 200 ms: median {median_ms:.1f} ms,", end=" ")
    print(f"longest {longest_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
