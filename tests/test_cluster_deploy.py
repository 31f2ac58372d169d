"""deploy/cluster: the shipped HAProxy configuration passes `haproxy -c`, and a read of the
readings' store goes through it, to InfluxDB B when A fails its health check; the compose file
conforms to the Compose Specification and mounts only files of the repository."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from eit.model import Reading
from ingest.store.influx import InfluxStore
from testbed.cluster import HAPROXY_CFG, HAProxy, haproxy_binary, start_haproxy
from testbed.services import REPO, InfluxDB, free_port, wait_for

CLUSTER = REPO / "deploy" / "cluster"
COMPOSE = CLUSTER / "compose.yaml"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"


def test_shipped_haproxy_config_is_valid() -> None:
    done = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr


@pytest.fixture
def haproxy(tmp_path: Path, influxdb: InfluxDB) -> Iterator[HAProxy]:
    """HAProxy from the shipped file, InfluxDB A down (nothing listens) and B the test's InfluxDB."""
    dead = f"127.0.0.1:{free_port()}"
    backends = ("RMQ1_MQTT", "RMQ2_MQTT", "RMQ3_MQTT", "INFLUX_A", "API_1", "API_2")
    addresses = {f"EIT_{name}": dead for name in backends}
    addresses["EIT_INFLUX_B"] = influxdb.url.split("//", 1)[1]
    started = start_haproxy(addresses, tmp_path / "haproxy.log")
    yield started
    started.stop()


def test_a_read_through_haproxy_reaches_influxdb_b_when_a_is_down(
    haproxy: HAProxy, influxdb: InfluxDB, influx_database: str
) -> None:
    direct = InfluxStore(influxdb.url, influx_database)
    now = time.time_ns() // 1_000_000_000 * 1_000_000_000
    readings = [
        Reading("f1", "stack", "so2", now - i * 1_000_000_000, 20.0 + i, "N", i + 1) for i in range(5)
    ]
    direct.write(readings)
    proxied = InfluxStore(f"http://127.0.0.1:{haproxy.port('influx')}", influx_database)

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


def test_the_shipped_worker_configurations_load_and_the_replicas_runs_no_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """deploy/cluster/serve.yaml (set A) and serve-replica.yaml (set B) are valid `eit serve`
    configurations (with the example town where the containers mount theirs): two queue sets on
    one exchange with one partition count, B a replica."""
    from server.config import load_serve_config

    monkeypatch.setenv("EIT_AMQP_PASSWORD", "secret-for-the-test")
    monkeypatch.setenv("EIT_STATE_URL", "postgresql://eit:pw@postgres:5432/eit")
    loaded = {}
    for name in ("serve.yaml", "serve-replica.yaml"):
        data = yaml.safe_load((CLUSTER / name).read_text())
        assert data["site"] == "/etc/eit/site.yaml", "compose mounts the registry there"
        data |= {"site": str(REPO / "examples" / "town" / "site.yaml"), "data_dir": str(tmp_path / name)}
        (tmp_path / name).write_text(yaml.safe_dump(data))
        loaded[name] = load_serve_config(tmp_path / name).ingest.amqp
    primary, replica = loaded["serve.yaml"], loaded["serve-replica.yaml"]
    assert primary is not None and replica is not None
    assert not primary.replica and replica.replica
    assert primary.queue_prefix != replica.queue_prefix
    assert (primary.exchange, primary.partitions) == (replica.exchange, replica.partitions)
