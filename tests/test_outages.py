"""Outages with real processes: the broker stopped for 20 s, the ingest killed with SIGKILL.

Every scan the agent took must be in the store exactly once: the agent numbers its scans per
device (seq 1..N, kept in its outbox), so the test counts the readings per device and checks
that their seqs are exactly 1..N, with none missing and none doubled.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from eit.store import Store
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from testbed.services import (
    AGENT_DEVICES,
    AGENT_FACTORY,
    EitProcess,
    InfluxDB,
    Mosquitto,
    assert_each_scan_stored_once,
    outbox_state,
    wait_for,
    write_edge_config,
    write_serve_config,
)

# Processes are killed and the broker stopped on purpose, and gaps are timed: alone, after the parallel pass.
pytestmark = [pytest.mark.integration, pytest.mark.serial]

F = AGENT_FACTORY
DEVICES = AGENT_DEVICES


class Rig:
    """Mosquitto, `eit serve` and one edge agent, as separate processes."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, store_kind: str, influx: InfluxDB | None) -> None:
        self.tmp = tmp_path
        self.store_kind = store_kind
        self.influx = influx
        self.database = f"outage_{uuid.uuid4().hex[:8]}"
        self.serve_cfg = write_serve_config(
            tmp_path / "serve",
            broker.port,
            store=store_kind,
            influx_url=influx.url if influx else "",
            influx_database=self.database,
            client_id=f"ingest-{uuid.uuid4().hex[:6]}",
        )
        self.edge_cfg = write_edge_config(tmp_path / "edge", broker.port, scan_interval_s=0.1)
        self.outbox = tmp_path / "edge" / f"outbox-{F}.db"
        self.serve_runs = 0
        self.serve = self.start_serve()
        self.agent = EitProcess(["edge", "run", "--config", str(self.edge_cfg)], tmp_path / "edge.log")

    def start_serve(self) -> EitProcess:
        self.serve_runs += 1
        proc = EitProcess(
            ["serve", "--config", str(self.serve_cfg)], self.tmp / f"serve-{self.serve_runs}.log"
        ).start()
        wait_for(lambda: "connected to broker" in proc.output(), 30, "eit serve to connect")
        return proc

    def store(self) -> Store:
        if self.store_kind == "sqlite":
            return SqliteStore(self.tmp / "serve" / "data" / "readings.db")
        assert self.influx is not None
        return InfluxStore(self.influx.url, self.database)

    def stored(self) -> int:
        store = self.store()
        try:
            return store.count(factory=F)
        finally:
            store.close()

    def stop_agent_and_count(self) -> dict[str, int]:
        """Stop the agent once its outbox is empty; check the store holds each scan once."""
        wait_for(lambda: outbox_state(self.outbox)[1] == 0, 60, "the agent's backlog to drain")
        assert self.agent.terminate() == 0, self.agent.output()
        taken, waiting = outbox_state(self.outbox)
        assert waiting == 0
        store = self.store()
        try:
            assert_each_scan_stored_once(store, taken)
        finally:
            store.close()
        assert self.serve.terminate() == 0, self.serve.output()
        return taken


def _influx(request: pytest.FixtureRequest, store_kind: str) -> InfluxDB | None:
    return request.getfixturevalue("influxdb") if store_kind == "influxdb" else None


@pytest.mark.parametrize("store_kind", ["sqlite", "influxdb"])
def test_broker_down_20s_every_scan_arrives_once_after_restart(
    tmp_path: Path,
    broker: Mosquitto,
    store_kind: str,
    request: pytest.FixtureRequest,
    report: Callable[[str], None],
) -> None:
    rig = Rig(tmp_path, broker, store_kind, _influx(request, store_kind))
    rig.agent.start()
    wait_for(lambda: rig.stored() > 0, 20, "the first readings")
    time.sleep(2)  # scenario time: readings flow for 2 s before the outage
    broker.stop()
    outage_started = time.monotonic()
    time.sleep(20)  # scenario time: the broker is down for 20 s
    _, waiting_during_outage = outbox_state(rig.outbox)
    stored_during_outage = rig.stored()
    broker.start()
    outage_s = time.monotonic() - outage_started
    assert waiting_during_outage > 100, "the agent kept scanning into its outbox during the outage"
    wait_for(lambda: rig.stored() > stored_during_outage, 30, "readings flowing again after the restart")
    taken = rig.stop_agent_and_count()
    total = sum(taken.values())
    report(
        f"[{store_kind}] broker down {outage_s:.1f} s; {waiting_during_outage} scans waited in the outbox; "
        f"scans taken {taken} = {total}; stored exactly once each: {total}, lost 0, doubled 0"
    )


@pytest.mark.parametrize("store_kind", ["sqlite", "influxdb"])
def test_ingest_sigkilled_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path,
    broker: Mosquitto,
    store_kind: str,
    request: pytest.FixtureRequest,
    report: Callable[[str], None],
) -> None:
    rig = Rig(tmp_path, broker, store_kind, _influx(request, store_kind))
    rig.agent.start()
    wait_for(lambda: rig.stored() > 200, 30, "readings flowing")
    rig.serve.kill()
    stored_at_kill = rig.stored()
    time.sleep(5)  # scenario time: the agent keeps publishing; the broker queues for the ingest's session
    rig.serve = rig.start_serve()
    taken = rig.stop_agent_and_count()
    total = sum(taken.values())
    assert "session present: True" in rig.serve.output()
    report(
        f"[{store_kind}] ingest SIGKILLed with {stored_at_kill} readings stored; restarted; "
        f"scans taken {taken} = {total}; stored exactly once each: {total}, lost 0, doubled 0"
    )
