"""`eit serve` writes its own health (`platform`, `platform_dead_letters`) and the registry's
factories (`sites`) into InfluxDB, from the ingest's metrics and the agents' status messages: the
measurements the Platform health and Town overview dashboards read. Real Mosquitto and InfluxDB."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from eit.confread import load_yaml
from eit.registry import load_registry
from ingest.metrics import IngestMetrics
from ingest.selfstats import PlatformStats, parse_status
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from server.config import load_serve_config
from server.serve import Server
from testbed.services import InfluxDB, Mosquitto, wait_for, write_serve_config
from tests.conftest import EXAMPLE_SITE


def publish(port: int, messages: list[tuple[str, str, bool]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="selfstats-test-agent")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload, retain in messages:
            client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def last_platform(store: InfluxStore, instance: str) -> dict[str, Any]:
    series = store.query(
        f'SELECT * FROM "platform" WHERE "instance" = \'{instance}\' ORDER BY time DESC LIMIT 1'
    )
    if not series:
        return {}
    return dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))


@pytest.mark.integration
def test_serve_writes_platform_health_and_sites_into_influxdb(
    tmp_path: Path, broker: Mosquitto, influxdb: InfluxDB, influx_database: str
) -> None:
    path = write_serve_config(
        tmp_path,
        broker.port,
        store="influxdb",
        influx_url=influxdb.url,
        influx_database=influx_database,
        client_id="selfstats-ingest",
    )
    data = load_yaml(path)
    data["ingest"]["stats_interval_s"] = 0.3
    path.write_text(yaml.safe_dump(data))
    server = Server(load_serve_config(path, environ={}))
    server.start()
    store = InfluxStore(influxdb.url, influx_database)
    try:
        assert server.mqtt.wait_connected(10)
        now = time.time()
        publish(
            broker.port,
            [
                (
                    "eit/kaeng-khoi-biomass/boiler-1/status",
                    json.dumps({"state": "online", "outbox_pending": 7}),
                    True,
                ),
                ("eit/kaeng-khoi-biomass/meter-1/status", "offline", True),
                ("eit/no-such-factory/x/status", "online", True),  # not a device of the town
                (
                    "eit/kaeng-khoi-biomass/boiler-1/data",
                    json.dumps(
                        {"v": 1, "scans": [{"seq": 1, "ts": now, "values": {"so2": 41.0, "o2": 9.1}}]}
                    ),
                    False,
                ),
                ("eit/kaeng-khoi-biomass/boiler-1/data", "{not json", False),
            ],
        )
        expected = {
            "readings_stored": 2,
            "messages": 5,
            "dead_letters": 2,  # not_json, and the unknown device's status
            "devices_online": 1,
            "devices_offline": 1,
            "outbox_pending": 7,
            "alerts_open": 1,  # the offline meter opens a stale alert
        }

        def caught_up() -> bool:
            point = last_platform(store, "selfstats-ingest")
            return all(point.get(k) == v for k, v in expected.items())

        try:
            wait_for(caught_up, 20, "the platform point to show the published messages")
        except TimeoutError:
            pytest.fail(
                f"last platform point: {last_platform(store, 'selfstats-ingest')}, expected {expected}"
            )
        reasons = store.query('SELECT last("count") FROM "platform_dead_letters" GROUP BY "reason"')
        assert {s["tags"]["reason"]: s["values"][0][1] for s in reasons} == {
            "not_json": 1,
            "unknown_device": 1,
        }
        sites = store.query('SELECT last("lat"), last("name") FROM "sites" GROUP BY "factory"')
        registry = load_registry(EXAMPLE_SITE)
        assert {s["tags"]["factory"]: s["values"][0][1] for s in sites} == {
            f.id: f.lat for f in registry.factories.values()
        }
    finally:
        server.stop()
        store.close()
        publish(
            broker.port,
            [
                (f"eit/{t}/status", "", True)
                for t in ("kaeng-khoi-biomass/boiler-1", "kaeng-khoi-biomass/meter-1", "no-such-factory/x")
            ],
        )


def test_with_the_sqlite_store_no_platform_points_are_written(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "readings.db")
    stats = PlatformStats(load_registry(EXAMPLE_SITE), store, IngestMetrics(), "i1", None, 0.1)
    assert stats.writer is None
    assert stats.write_once() is False
    stats.start()
    stats.stop()
    assert stats.points_written == 0
    assert store.count() == 0
    store.close()


def test_status_payloads_the_agents_send_are_read_and_bad_ones_ignored() -> None:
    assert parse_status(b"online") == parse_status(b'{"state": "online"}')
    assert parse_status(b'{"state": "online", "outbox_pending": 12, "ts": "x"}').outbox_pending == 12  # type: ignore[union-attr]
    assert parse_status(b'{"state": "offline", "outbox_pending": -3}').outbox_pending == 0  # type: ignore[union-attr]
    assert parse_status(b"sleeping") is None
    assert parse_status(b'{"state": "asleep"}') is None
    assert parse_status(b"[1, 2]") is None
