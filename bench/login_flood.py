"""What a login flood costs the ingest: `eit serve` (embedded store, real Mosquitto) takes a burst
of scans as fast as the broker acknowledges them, once quietly and once while a flood of failed
logins (testbed/login_flood.py: straight from one address and from a botnet behind the trusted
proxy) hits its HTTP API; and the memory, the owner's wait and the scans' worst wait meanwhile.

    python -m bench.login_flood [--scans 3000] [--direct 150] [--botnet 50] [--hashes 1]

Each scan is one message of the boiler's two channels (QoS 1); throughput is scans / (first
published -> the last one in the store).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.proc import machine
from eit.timeutil import now_ns, ns_to_iso
from testbed.login_flood import (
    DATA_TOPIC,
    D,
    F,
    FloodResult,
    ScanProbe,
    flood,
    flood_rig,
    owner_logs_in,
    post_login,
    proc_status_kb,
)
from testbed.services import Mosquitto


def stored(readings_db: Path, first_seq: int) -> int:
    with sqlite3.connect(f"file:{readings_db}?mode=ro", uri=True, timeout=5) as db:
        row = db.execute(
            "SELECT count(*) FROM readings WHERE factory=? AND device=? AND channel='so2' AND seq >= ?",
            (F, D, first_seq),
        ).fetchone()
    return int(row[0])


def burst(broker_port: int, readings_db: Path, scans: int) -> float:
    """Scans per second: ``scans`` published at once, until the last one is stored."""
    first = int(time.time() * 1000)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    started = time.monotonic()
    base = now_ns()
    infos = []
    for i in range(scans):
        scan = {"seq": first + i, "ts": ns_to_iso(base + i * 1_000_000), "values": {"so2": 40.0, "o2": 9.0}}
        infos.append(client.publish(DATA_TOPIC, json.dumps({"v": 1, "scans": [scan]}), qos=1))
    for info in infos:
        info.wait_for_publish(120)
    deadline = time.monotonic() + 300
    pause = threading.Event()
    while stored(readings_db, first) < scans:
        if time.monotonic() > deadline:
            raise RuntimeError("the burst was not stored within 300 s")
        pause.wait(0.05)
    elapsed = time.monotonic() - started
    client.loop_stop()
    client.disconnect()
    return scans / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scans", type=int, default=3000)
    parser.add_argument("--direct", type=int, default=150, help="failed logins straight from one address")
    parser.add_argument("--botnet", type=int, default=50, help="failed logins from a botnet behind the proxy")
    parser.add_argument("--hashes", type=int, default=1, help="http.login.concurrent_hashes")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="eit-login-flood-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker").start()
        try:
            with flood_rig(work, broker.port, concurrent_hashes=args.hashes) as rig:
                assert (
                    post_login(rig.http_port, "olivia", rig.owner_password, source="127.0.0.3").status == 200
                )
                burst(rig.broker_port, rig.readings_db, 200)  # warm-up
                quiet = burst(rig.broker_port, rig.readings_db, args.scans)
                baseline_kb = proc_status_kb(rig.pid, "VmRSS")

                result = FloodResult()
                owner: list[float] = []

                def attack() -> None:
                    nonlocal result
                    result = flood(rig.http_port, args.direct, args.botnet)

                def owner_meanwhile() -> None:
                    owner.append(owner_logs_in(rig.http_port, rig.owner_password, 300)[0])

                attacker = threading.Thread(target=attack)
                someone = threading.Timer(1.0, owner_meanwhile)
                attacker.start()
                someone.start()
                flooded = burst(rig.broker_port, rig.readings_db, args.scans)
                with ScanProbe(rig.broker_port, rig.readings_db) as probe:
                    attacker.join()
                someone.join()
                peak_kb = proc_status_kb(rig.pid, "VmHWM")
        finally:
            broker.stop()

    figures = {
        "machine": machine(),
        "concurrent_hashes": args.hashes,
        "scans": args.scans,
        "quiet_scans_per_s": round(quiet, 1),
        "flooded_scans_per_s": round(flooded, 1),
        "change_percent": round((flooded - quiet) / quiet * 100, 1),
        "flood_s": round(result.seconds, 1),
        "attacker": result.attacker,
        "botnet": result.botnet,
        "rss_baseline_mb": round(baseline_kb / 1024),
        "rss_peak_growth_mb": round((peak_kb - baseline_kb) / 1024),
        "owner_logged_in_after_s": round(owner[0], 1) if owner else None,
        "worst_scan_wait_s_after_the_burst": round(probe.worst_wait_s(), 2),
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
