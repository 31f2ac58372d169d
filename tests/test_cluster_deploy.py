"""deploy/cluster: the shipped HAProxy configuration passes `haproxy -c`, and a read of the
readings' store goes through it, to InfluxDB B when A fails its health check; the compose file
conforms to the Compose Specification and mounts only files of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from eit.model import Reading
from ingest.store.influx import InfluxStore
from testbed.services import REPO, InfluxDB, free_port, wait_for

CLUSTER = REPO / "deploy" / "cluster"
HAPROXY_CFG = CLUSTER / "haproxy.cfg"
COMPOSE = CLUSTER / "compose.yaml"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"


def _haproxy() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        pytest.fail("haproxy is not installed (scripts/ensure-system-packages installs it)")
    return found


def test_shipped_haproxy_config_is_valid() -> None:
    done = subprocess.run(
        [_haproxy(), "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr


@pytest.fixture
def haproxy_env(tmp_path: Path, influxdb: InfluxDB) -> Iterator[dict[str, str]]:
    """HAProxy from the shipped file, InfluxDB A down (nothing listens) and B the test's InfluxDB."""
    dead = free_port()
    influx = influxdb.url.split("//", 1)[1]
    env = {
        **os.environ,
        "EIT_HAPROXY_BIND": "127.0.0.1",
        "EIT_HAPROXY_MQTT_PORT": str(free_port()),
        "EIT_HAPROXY_INFLUX_PORT": str(free_port()),
        "EIT_HAPROXY_API_PORT": str(free_port()),
        "EIT_RMQ1_MQTT": f"127.0.0.1:{dead}",
        "EIT_RMQ2_MQTT": f"127.0.0.1:{dead}",
        "EIT_RMQ3_MQTT": f"127.0.0.1:{dead}",
        "EIT_INFLUX_A": f"127.0.0.1:{dead}",
        "EIT_INFLUX_B": influx,
        "EIT_API_1": f"127.0.0.1:{dead}",
        "EIT_API_2": f"127.0.0.1:{dead}",
    }
    log = open(tmp_path / "haproxy.log", "wb")  # noqa: SIM115 - as long as the process
    proc = subprocess.Popen([_haproxy(), "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=log, stderr=log)
    try:
        yield env
    finally:
        proc.kill()
        proc.wait(10)
        log.close()


def test_a_read_through_haproxy_reaches_influxdb_b_when_a_is_down(
    haproxy_env: dict[str, str], influxdb: InfluxDB, influx_database: str
) -> None:
    direct = InfluxStore(influxdb.url, influx_database)
    now = time.time_ns() // 1_000_000_000 * 1_000_000_000
    readings = [
        Reading("f1", "stack", "so2", now - i * 1_000_000_000, 20.0 + i, "N", i + 1) for i in range(5)
    ]
    direct.write(readings)
    proxied = InfluxStore(f"http://127.0.0.1:{haproxy_env['EIT_HAPROXY_INFLUX_PORT']}", influx_database)

    def read() -> list[float]:
        try:
            return [r.value for r in proxied.readings("f1", "stack", "so2", 0, now + 1)]
        except Exception:
            return []  # A not yet marked down: HAProxy still tries it

    wait_for(lambda: len(read()) == 5, 30, "the readings through HAProxy")
    assert sorted(read()) == sorted(r.value for r in readings)


def test_cluster_compose_file_conforms_and_mounts_repository_files() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator(schema).validate(compose)
    services = compose["services"]
    assert {"rmq1", "rmq2", "rmq3", "postgres", "influxdb-a", "influxdb-b", "haproxy", "grafana"} <= set(
        services
    )
    assert any(name.startswith("worker") for name in services)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                assert (COMPOSE.parent / source).resolve().exists(), (
                    f"{name} mounts {source}, not in the repository"
                )
