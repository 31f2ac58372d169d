"""The agent's store-and-forward with real processes: the agent SIGKILLed while it publishes a
backlog, and a broker outage, counted scan by scan.

The agent numbers its scans per device (seq 1..N, kept in its outbox). The store must hold each
seq exactly once; a subscriber of its own records every message the broker delivers, so the test
also sees the messages' order and size, and the duplicates the broker delivered (after a kill the
agent sends again what it had not seen acknowledged; the store keeps each scan once).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from eit.confread import Section, load_yaml
from eit.mqttclient import connect_async, make_client
from eit.mqttconf import read_mqtt
from ingest.store.sqlite import SqliteStore
from testbed.services import (
    AGENT_DEVICES,
    AGENT_FACTORY,
    FAR_FUTURE_NS,
    EitProcess,
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


@dataclass
class Delivered:
    at: float
    device: str
    seqs: list[int]


@dataclass
class Tap:
    """A subscriber with a persistent session: records every data message, in arrival order."""

    messages: list[Delivered] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, port: int) -> Any:
        settings = read_mqtt(
            Section({"host": "127.0.0.1", "port": port}, "tap", "mqtt"),
            Path("."),
            f"tap-{uuid.uuid4().hex[:6]}",
        )
        client = make_client(settings, persistent=True)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"eit/{F}/+/data", qos=1)
        client.on_message = self._on_message
        connect_async(client, settings, persistent=True)
        client.loop_start()
        return client

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        device = message.topic.split("/")[2]
        seqs = [s["seq"] for s in json.loads(message.payload)["scans"]]
        with self.lock:
            self.messages.append(Delivered(time.monotonic(), device, seqs))

    def of(self, device: str) -> list[Delivered]:
        with self.lock:
            return [m for m in self.messages if m.device == device]


class Rig:
    def __init__(self, tmp_path: Path, broker: Mosquitto, **edge: Any) -> None:
        self.tmp = tmp_path
        self.serve_cfg = write_serve_config(
            tmp_path / "serve", broker.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}"
        )
        self.edge_cfg = write_edge_config(tmp_path / "edge", broker.port, scan_interval_s=0.1)
        data = load_yaml(self.edge_cfg)
        data.update(edge)
        self.edge_cfg.write_text(yaml.safe_dump(data))
        self.outbox = tmp_path / "edge" / f"outbox-{F}.db"
        self.tap = Tap()
        self.tap_client = self.tap.start(broker.port)
        self.serve = EitProcess(["serve", "--config", str(self.serve_cfg)], tmp_path / "serve.log").start()
        wait_for(lambda: "connected to broker" in self.serve.output(), 30, "eit serve to connect")
        self.agent_runs = 0
        self.agent = self.start_agent()

    def start_agent(self) -> EitProcess:
        self.agent_runs += 1
        return EitProcess(
            ["edge", "run", "--config", str(self.edge_cfg)], self.tmp / f"edge-{self.agent_runs}.log"
        ).start()

    def waiting(self) -> int:
        return outbox_state(self.outbox)[1]

    def finish(self) -> dict[str, int]:
        """Stop the agent once its outbox is empty; check the store holds every scan once."""
        wait_for(lambda: self.waiting() == 0, 60, "the agent's backlog to drain")
        assert self.agent.terminate() == 0, self.agent.output()
        taken, waiting = outbox_state(self.outbox)
        assert waiting == 0
        store = SqliteStore(self.tmp / "serve" / "data" / "readings.db")
        try:
            assert_each_scan_stored_once(store, taken)
        finally:
            store.close()
        assert self.serve.terminate() == 0, self.serve.output()
        wait_for(
            lambda: all(max((max(m.seqs) for m in self.tap.of(d)), default=0) == taken[d] for d in DEVICES),
            20,
            "the tap to see every scan",
        )
        self.tap_client.disconnect()
        self.tap_client.loop_stop()
        return taken

    def duplicates(self, device: str) -> int:
        seen: list[int] = [s for m in self.tap.of(device) for s in m.seqs]
        return len(seen) - len(set(seen))


def test_agent_sigkilled_mid_publish_loses_and_doubles_no_scan(
    tmp_path: Path, broker: Mosquitto, report: Callable[[str], None]
) -> None:
    # Fast scans, one scan per message and one message in flight, so that draining a backlog
    # takes seconds and the agent can be killed in the middle of it.
    rig = Rig(tmp_path, broker, max_scans_per_message=1, max_inflight=1, scan_interval_s=0.02)
    kills: list[int] = []
    for _ in range(3):
        broker.stop()  # a backlog builds up in the outbox ...
        time.sleep(4)  # scenario time: a 4-s outage
        delivered = len(rig.tap.messages)
        broker.start()
        # ... and the agent is killed as soon as it has started to publish it.
        wait_for(lambda: len(rig.tap.messages) > delivered, 30, "the backlog to start draining", 0.005)  # noqa: B023
        rig.agent.kill()
        kills.append(rig.waiting())  # what the agent had not seen acknowledged when it died
        assert kills[-1] > 0, "the outbox was already empty: not mid-publish"
        rig.agent = rig.start_agent()
        wait_for(lambda: rig.waiting() < 5, 60, "the restarted agent to send its backlog")
    taken = rig.finish()
    total = sum(taken.values())
    dup = {d: rig.duplicates(d) for d in DEVICES}
    assert "dead letter" not in rig.serve.output()
    report(
        f"agent SIGKILLed 3 times while draining a backlog, {kills} scans still unacknowledged; "
        f"scans taken {taken} = {total}; in the store exactly once each: {total} (lost 0, doubled 0); "
        f"delivered twice by the broker and stored once: {dup}"
    )


def test_backlog_after_outage_drains_in_order_in_multi_scan_messages_while_new_scans_keep_flowing(
    tmp_path: Path, broker: Mosquitto, report: Callable[[str], None]
) -> None:
    rig = Rig(tmp_path, broker, max_scans_per_message=50)
    wait_for(lambda: len(rig.tap.messages) > 20, 20, "scans flowing")
    broker.stop()
    down_at = time.monotonic()
    time.sleep(15)  # scenario time: a 15-s outage
    backlog = rig.waiting()
    broker.start()
    up_at = time.monotonic()
    assert backlog > 200, "the agent kept scanning into its outbox during the outage"
    wait_for(lambda: rig.waiting() < 5, 60, "the backlog to drain")
    drained = {d: len(rig.tap.of(d)) for d in DEVICES}
    # And live scans to flow on: a dozen more messages of each device.
    wait_for(
        lambda: all(len(rig.tap.of(d)) >= drained[d] + 12 for d in DEVICES), 30, "live scans after the drain"
    )
    taken = rig.finish()
    total = sum(taken.values())
    drained_in: dict[str, float] = {}
    biggest: dict[str, int] = {}
    for device in DEVICES:
        messages = rig.tap.of(device)
        assert messages
        # In order: scans first reach the subscriber exactly as 1, 2, 3, ... (a message sent again
        # after a reconnect repeats scans already delivered; it never brings one out of turn).
        newest = 0
        for m in messages:
            for seq in m.seqs:
                if seq > newest:
                    assert seq == newest + 1, f"{device}: seq {seq} arrived before {newest + 1}"
                    newest = seq
        assert newest == taken[device]
        after = [m for m in messages if m.at >= up_at]
        biggest[device] = max(len(m.seqs) for m in after)
        assert biggest[device] == 50, "the backlog went out in multi-scan messages of max_scans_per_message"
        # New scans kept flowing: once the backlog was out, messages carry one or a few fresh scans.
        last_backlog = max(i for i, m in enumerate(after) if len(m.seqs) > 3)
        tail = after[last_backlog + 1 :]
        sizes = [(round(m.at - up_at, 2), len(m.seqs)) for m in after]
        assert len(tail) >= 10 and all(len(m.seqs) <= 3 for m in tail), sizes
        drained_in[device] = tail[0].at - after[0].at
    reconnected_in = min(m.at for m in rig.tap.messages if m.at >= up_at) - up_at
    # Scanning went on through the outage and the drain: the store's timestamps of each device
    # are about one interval (0.1 s) apart. A busy machine (disk flushes, other processes) can
    # delay a scan thread; the loop then skips the ticks it missed, so a gap stays well under 1 s.
    store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
    widest: dict[str, float] = {}
    try:
        for device, (channel, _) in DEVICES.items():
            stamps = [r.ts_ns for r in store.readings(F, device, channel, 0, FAR_FUTURE_NS)]
            widest[device] = max((b - a) / 1e9 for a, b in itertools.pairwise(stamps))
            assert widest[device] < 1.0, f"{device}: scanning paused for {widest[device]:.2f} s"
    finally:
        store.close()
    report(
        f"broker down {up_at - down_at:.1f} s; {backlog} scans waited in the outbox; after the restart the "
        f"agent reconnected {reconnected_in:.1f} s later and sent its backlog in messages of up to "
        f"{biggest} scans, in order, caught up in "
        f"{ {d: round(s, 2) for d, s in drained_in.items()} } s while scanning went on every 0.1 s "
        f"(widest gap between scans {widest} s); "
        f"scans taken {taken} = {total}; stored exactly once each: {total}, lost 0, doubled 0"
    )
