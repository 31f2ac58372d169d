"""End to end with real parts: edge agent -> Mosquitto -> `eit serve` -> store -> webhook alert.

Each test runs its own Mosquitto on a free port; InfluxDB is shared (a database per test).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from eit.store import Store
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from testbed.services import (
    EIT,
    REPO,
    EitProcess,
    InfluxDB,
    Mosquitto,
    free_port,
    outbox_state,
    wait_for,
    write_edge_config,
    write_serve_config,
)
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

F = "kaeng-khoi-biomass"


def open_store(kind: str, workdir: Path, influx: InfluxDB | None, database: str) -> Store:
    if kind == "sqlite":
        return SqliteStore(workdir / "data" / "readings.db")
    assert influx is not None
    return InfluxStore(influx.url, database)


def delivered_count(http_port: int, notifier: str) -> float:
    """eit_notifications_delivered_total of ``notifier`` on the server's /metrics."""
    text = requests.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "eit_notifications_delivered_total" and sample.labels == {"notifier": notifier}:
                return float(sample.value)
    raise AssertionError(f"no eit_notifications_delivered_total of {notifier} in /metrics")


@pytest.mark.parametrize("store_kind", ["sqlite", "influxdb"])
def test_exceedance_flows_from_simulated_meter_to_store_and_webhook(
    tmp_path: Path,
    broker: Mosquitto,
    store_kind: str,
    request: pytest.FixtureRequest,
    report: Callable[[str], None],
) -> None:
    influx: InfluxDB | None = request.getfixturevalue("influxdb") if store_kind == "influxdb" else None
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    with WebhookReceiver() as hook:
        http_port = free_port()
        serve_cfg = write_serve_config(
            tmp_path / "serve",
            broker.port,
            store=store_kind,
            influx_url=influx.url if influx else "",
            influx_database=database,
            webhook_url=hook.url,
            client_id=f"ingest-{uuid.uuid4().hex[:6]}",
            http_port=http_port,
        )
        edge_cfg = write_edge_config(tmp_path / "edge", broker.port, ramp_s=0)
        serve = EitProcess(["serve", "--config", str(serve_cfg)], tmp_path / "serve.log").start()
        # The broker keeps messages only for sessions that exist: the ingest's persistent session
        # must be there before the first scan is published.
        wait_for(lambda: "connected to broker" in serve.output(), 20, "eit serve to connect")
        agent = EitProcess(["edge", "run", "--config", str(edge_cfg)], tmp_path / "edge.log").start()
        try:
            body = hook.wait_for(
                lambda b: b["event"] == "opened" and b["alert"]["parameter"] == "so2",
                30,
                "the SO2 exceedance alert at the webhook",
            )
            assert body["alert"]["factory"] == F and body["alert"]["device"] == "boiler-1"
            assert body["alert"]["value"] > body["alert"]["limit"] == 60.0
            headers, _ = hook.raw[hook.received.index(body)]
            assert headers["Idempotency-Key"] == body["idempotency_key"]
            health = requests.get(f"http://127.0.0.1:{http_port}/healthz", timeout=10).json()
            assert health["status"] == "ok" and health["stages"]["ingest-write"] == "ok"
            assert health["stages"]["notify-webhook"] == "ok"
            ready = requests.get(f"http://127.0.0.1:{http_port}/readyz", timeout=10).json()
            assert ready["status"] == "ok" and ready["store"]["kind"] == store_kind
            assert ready["notifiers"]["webhook"]["alive"] is True
            metrics = requests.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5).text
            assert "eit_readings_stored_total" in metrics and "eit_alerts_open" in metrics
            wait_for(lambda: delivered_count(http_port, "webhook") >= 1, 10, "the delivery counted")
        finally:
            assert agent.terminate() == 0, agent.output()
        outbox = tmp_path / "edge" / f"outbox-{F}.db"
        seqs, waiting = outbox_state(outbox)
        assert waiting == 0, "the agent stopped with unacknowledged scans"
        store = open_store(store_kind, tmp_path / "serve", influx, database)
        try:
            wait_for(
                lambda: store.count(factory=F, device="boiler-1") == 6 * seqs["boiler-1"],
                10,
                "every acknowledged scan in the store",
            )
            assert store.count(factory=F, device="meter-1") == 2 * seqs["meter-1"]
        finally:
            store.close()
            assert serve.terminate() == 0, serve.output()
    report(
        f"[{store_kind}] scans taken: {seqs}; readings stored: {6 * seqs['boiler-1'] + 2 * seqs['meter-1']}"
    )


def test_stock_mosquitto_pub_payload_is_stored_and_malformed_one_dead_lettered(
    tmp_path: Path, broker: Mosquitto
) -> None:
    serve_cfg = write_serve_config(
        tmp_path / "serve", broker.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}"
    )
    serve = EitProcess(["serve", "--config", str(serve_cfg)], tmp_path / "serve.log").start()
    try:
        store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
        topic = f"eit/{F}/boiler-1/data"
        good = (
            '{"v": 1, "scans": [{"seq": 1842, "ts": "2026-11-27T04:00:00Z", '
            '"values": {"so2": 123.4, "o2": 8.2, "flow": 51234.0}, "flags": {"so2": "C"}}]}'
        )
        bad = '{"v": 1, "scans": [{"seq": 1843, "ts": "2026-11-27T04:00:01Z", "values": {"so2": "high"}}]}'

        def pub(payload: str) -> None:
            subprocess.run(
                [
                    "mosquitto_pub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(broker.port),
                    "-q",
                    "1",
                    "-t",
                    topic,
                    "-m",
                    payload,
                ],
                check=True,
                timeout=10,
            )

        wait_for(lambda: "connected to broker" in serve.output(), 20, "eit serve to connect")
        pub(good)
        pub(bad)
        wait_for(lambda: store.count(factory=F) == 3, 10, "the published scan in the store")
        latest = {r.channel: (r.value, r.flag, r.seq) for r in store.latest(F, "boiler-1")}
        assert latest == {"so2": (123.4, "C", 1842), "o2": (8.2, "N", 1842), "flow": (51234.0, "N", 1842)}
        store.close()

        def dead_letters() -> list[dict[str, object]]:
            out = subprocess.run(
                [*EIT, "dead-letters", "--config", str(serve_cfg), "--json"],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
                timeout=30,
            )
            result: list[dict[str, object]] = json.loads(out.stdout)
            return result

        wait_for(lambda: len(dead_letters()) == 1, 10, "the dead letter")
        [letter] = dead_letters()
        assert letter["topic"] == topic
        assert letter["reason"] == "bad_value"
        assert letter["location"] == "scans[0].values.so2"
        assert letter["detail"] == "'so2': expected a number, got text ('high')"
    finally:
        assert serve.terminate() == 0, serve.output()
