"""The benchmark harness itself (bench/): what it publishes is valid, and a short run of every
pass accounts for every reading. The figures it measures are not asserted here: performance is
measured by `eit bench`, never by a timed test."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench.loadgen import READINGS_PER_SCAN, value_rows
from bench.run import Profile, run, table
from bench.site import PROBE_CHANNEL, PROBE_LIMIT, PROBE_VALUE, write_site
from eit import wire
from eit.registry import load_registry
from ingest.validate import Validator
from tests.services import EIT, REPO


def test_the_load_and_the_probes_are_valid_scans_of_the_bench_town(tmp_path: Path) -> None:
    registry = load_registry(write_site(tmp_path / "site.yaml", factories=3, probes=2))
    validator = Validator(registry)
    now = 1795770000 * 10**9
    for factory, rows in (("f0002", value_rows()), ("p0001", value_rows(11, {PROBE_CHANNEL: PROBE_VALUE}))):
        for row in rows[:20]:
            payload = b'{"v":1,"scans":[{"seq":5,"ts":1795770000.000001,"values":{%s}}]}' % row
            topic = wire.parse_topic(f"eit/{factory}/stack/data")
            checked = validator.check(topic, wire.decode(payload), now)
            assert checked.rejected == []
            assert len(checked.readings) == READINGS_PER_SCAN
            flags = {r.flag for r in checked.readings}
            assert flags == {"N"}, f"a load value outside its measuring range: {row!r}"
            co = next(r.value for r in checked.readings if r.channel == PROBE_CHANNEL)
            assert (co > PROBE_LIMIT) is factory.startswith("p")


def test_a_short_run_of_every_pass_stores_every_reading_once(report: Callable[[str], None]) -> None:
    tiny = Profile(
        "tiny",
        throughput_readings=12_000,
        latency_s=3,
        probe_every_s=0.2,
        overload_s=1,
        influx_down_s=2,
        broker_down_s=2,
        ingest_down_s=1,
        settle_s=2,
        recovery_s=4,
    )
    results = run(tiny, keep=False, passes={"sqlite", "overload", "outages"})
    for key in ("b0", "b1", "b2", "ingest_influx", "ingest_sqlite"):
        assert results[key]["readings_per_s"] > 0, key
    accountings = {
        "ingest_influx": results["ingest_influx"]["accounting"],
        "ingest_sqlite": results["ingest_sqlite"]["accounting"],
        "overload": results["overload"]["accounting"],
        **{f"outage {k}": v["accounting"] for k, v in results["outages"].items()},
    }
    assert set(results["outages"]) == {"influxdb_down", "broker_down", "ingest_killed"}
    for name, acc in accountings.items():
        report(f"{name}: published {acc['published']}, in the store {acc['in_store']}")
        assert acc["published"] > 0 and acc["lost"] == 0 and acc["doubled"] == 0, (name, acc)
    latency = results["latency"]
    assert latency["alerts"] == latency["probes"] > 0
    assert not math.isnan(latency["p99_ms"])
    text = table(results)
    assert "x B1" in text and "p99" in text and "InfluxDB down" in text
    json.dumps(results, default=str)  # --json writes it


def test_eit_bench_has_its_own_help() -> None:
    out = subprocess.run([*EIT, "bench", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--quick" in out.stdout and "--full" in out.stdout
    bad = subprocess.run([*EIT, "bench", "--fastest"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--fastest" in bad.stderr
