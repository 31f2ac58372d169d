"""An agent with its own list of brokers (``mqtt.hosts``): it moves to the next broker when its
broker stops, loses no scan on the way, starts past a broker that is down, and checks each
broker's TLS certificate against the name it connects to. Two real Mosquittos stand for the
nodes of a cluster; a subscriber on each counts every seq it is delivered."""

from __future__ import annotations

import json
import random
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from edge.agent import Agent
from edge.config import parse_edge_config
from edge.metrics import health, render
from eit.confread import Section
from eit.mqttclient import BrokerRotation, connect_async, make_client, random_first
from eit.mqttconf import Broker, read_mqtt
from testbed.services import Mosquitto, free_port, outbox_state, wait_for
from tests.tlscerts import make_certs

# Brokers are stopped under the agent on purpose: alone, after the parallel pass.
pytestmark = [pytest.mark.integration, pytest.mark.serial]

F, D = "kaeng-khoi-biomass", "boiler-1"


def agent_config_data(tmp_path: Path, mqtt: dict[str, Any]) -> dict[str, Any]:
    return {
        "factory": F,
        "mqtt": mqtt,
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "scan_interval_s": 0.05,
        "devices": [
            {
                "id": D,
                "driver": "sim",
                "sim": {"seed": 1, "channels": {"so2": {"mean": 40}, "o2": {"mean": 9}}},
            }
        ],
    }


class SeqTap:
    """A subscriber with a persistent session on one broker: counts every seq of the device's
    data messages it is delivered, and keeps its status messages. Its session outlives a stop of
    the broker (Mosquitto's persistence), so what the broker acknowledged reaches it once the
    broker is back."""

    def __init__(self, broker: Mosquitto) -> None:
        self.seqs: Counter[int] = Counter()
        self.statuses: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        settings = read_mqtt(
            Section({"host": "127.0.0.1", "port": broker.port}, "tap", "mqtt"),
            Path("."),
            f"tap-{uuid.uuid4().hex[:6]}",
        )
        self.client = make_client(settings, persistent=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.set()
        self.client.on_message = self._on_message
        connect_async(self.client, settings, persistent=True)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 10, f"the tap on port {broker.port} to subscribe")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe([(f"eit/{F}/{D}/data", 1), (f"eit/{F}/{D}/status", 1)])

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.lock:
            if message.topic.endswith("/status"):
                if message.payload.startswith(b"{"):
                    self.statuses.append(json.loads(message.payload))
                return
            self.seqs.update(s["seq"] for s in json.loads(message.payload)["scans"])

    def seen(self) -> set[int]:
        with self.lock:
            return set(self.seqs)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    pair = (Mosquitto(tmp_path / "mosquitto-a").start(), Mosquitto(tmp_path / "mosquitto-b").start())
    yield pair
    for b in pair:
        b.kill()


def address(broker: Mosquitto) -> str:
    return f"127.0.0.1:{broker.port}"


def stop_scanning_and_drain(agent: Agent) -> None:
    """Stop scanning and wait for the broker to acknowledge every scan in the outbox."""
    for scanner in agent.scanners.values():
        scanner.stop()
    assert agent.wait_drained(30), f"{agent.outbox.count()} scan(s) still in the outbox"


def last_seq_and_outbox_empty(outbox: Path) -> int:
    """The last seq the stopped agent took; its outbox must be empty."""
    taken, waiting = outbox_state(outbox)
    assert waiting == 0, f"{waiting} scan(s) still in the outbox"
    return taken[D]


def test_rotation_goes_round_the_list_from_its_first_entry() -> None:
    brokers = [Broker("rmq1", 1883), Broker("rmq2", 1883), Broker("rmq3", 1884)]
    rotation = BrokerRotation(brokers, first=2)
    assert rotation.current == brokers[2]
    assert [str(rotation.next_broker()) for _ in range(5)] == [
        "rmq3:1884",
        "rmq1:1883",
        "rmq2:1883",
        "rmq3:1884",
        "rmq1:1883",
    ]
    assert rotation.attempts == 5 and rotation.current == brokers[0]


def test_devices_start_at_random_brokers_so_a_fleet_spreads_over_the_nodes() -> None:
    brokers = [Broker(f"rmq{i}", 1883) for i in range(3)]
    random.seed(7)
    firsts = Counter(random_first(brokers) for _ in range(600))
    assert set(firsts) == {0, 1, 2}
    assert all(150 <= n <= 250 for n in firsts.values()), firsts


# MQTT 5, and 3.1.1 as RabbitMQ 3.10's MQTT plugin speaks it (docs/scale-out.md).
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_agent_moves_to_the_other_broker_when_its_broker_stops_and_loses_no_scan(
    tmp_path: Path, brokers: tuple[Mosquitto, Mosquitto], report: Callable[[str], None], protocol: str
) -> None:
    taps = {b.port: SeqTap(b) for b in brokers}
    mqtt = {"hosts": [address(b) for b in brokers], "protocol": protocol}
    agent = Agent(parse_edge_config(agent_config_data(tmp_path, mqtt), "edge.yaml", tmp_path))
    publisher = agent.publishers[D]
    agent.start()
    try:
        wait_for(lambda: publisher.stats.connected, 15, "the agent to connect")
        first = next(b for b in brokers if address(b) == publisher.stats.broker)
        other = next(b for b in brokers if b is not first)
        wait_for(lambda: len(taps[first.port].seen()) >= 30, 15, "scans flowing to the first broker")
        # Mid-stream: the broker stops answering with messages in flight (unacknowledged), then
        # stops for good (SIGTERM, handled once it runs again: it saves its persistent sessions).
        assert first.proc is not None
        first.proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: publisher.inflight_messages >= 3, 10, "messages in flight to the paused broker")
        inflight_at_stop = publisher.inflight_messages
        stopped_at_seq = max(taps[first.port].seen())
        first.proc.send_signal(signal.SIGTERM)
        first.proc.send_signal(signal.SIGCONT)
        first.stop()
        wait_for(
            lambda: publisher.stats.broker == address(other), 20, "the agent to connect to the other broker"
        )
        health_detail = health(agent)[1]["devices"][D]
        assert health_detail["broker_connected"] and health_detail["broker"] == address(other)
        assert f'eit_edge_broker_info{{device="{D}",broker="{address(other)}"}} 1' in render(agent)
        wait_for(
            lambda: len([s for s in taps[other.port].seen() if s > stopped_at_seq]) >= 30,
            15,
            "scans flowing to the other broker",
        )
        wait_for(
            lambda: any(s.get("broker") == address(other) for s in taps[other.port].statuses),
            10,
            "the status message on the other broker to name it",
        )
        stop_scanning_and_drain(agent)
    finally:
        agent.stop(drain_s=0)
    taken = last_seq_and_outbox_empty(tmp_path / "outbox.db")
    assert publisher.stats.connects == 2 and publisher.stats.refused_messages == 0
    # The stopped broker comes back: its subscriber gets what it acknowledged before it stopped
    # but had not delivered yet (kept in its persistent session).
    before_restart = taps[first.port].seen() | taps[other.port].seen()
    first.start()
    every = set(range(1, taken + 1))
    wait_for(
        lambda: every <= taps[first.port].seen() | taps[other.port].seen(),
        30,
        "every seq at one broker or the other",
    )
    union = taps[first.port].seen() | taps[other.port].seen()
    assert union == every, f"missing {sorted(every - union)[:20]}, unexpected {sorted(union - every)[:20]}"
    on_both = taps[first.port].seen() & taps[other.port].seen()
    for tap in taps.values():
        tap.close()
    report(
        f"MQTT {protocol}: broker {address(first)} stopped after seq {stopped_at_seq} with "
        f"{inflight_at_stop} message(s) in flight; the agent moved to {address(other)}; "
        f"{taken} scans taken, every seq delivered (at the first broker "
        f"{len(taps[first.port].seen())}, at the other {len(taps[other.port].seen())}, sent to both "
        f"{len(on_both)}, delivered only after the first broker came back "
        f"{len(every - before_restart)}); lost 0; outbox empty"
    )


def test_agent_whose_first_broker_is_down_from_the_start_connects_to_the_next(
    tmp_path: Path, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edge.publisher.random_first", lambda brokers: 0)  # the dead one first
    dead = f"127.0.0.1:{free_port()}"
    tap = SeqTap(broker)
    config = parse_edge_config(
        agent_config_data(tmp_path, {"hosts": [dead, address(broker)]}), "edge.yaml", tmp_path
    )
    agent = Agent(config)
    publisher = agent.publishers[D]
    assert publisher.rotation.current == Broker("127.0.0.1", int(dead.split(":")[1]))
    agent.start()
    try:
        wait_for(
            lambda: publisher.stats.broker == address(broker), 15, "the agent to connect to the live broker"
        )
        assert publisher.stats.connect_failures >= 1 and publisher.rotation.attempts >= 2
        wait_for(lambda: len(tap.seen()) >= 20, 15, "scans at the live broker")
        stop_scanning_and_drain(agent)
    finally:
        agent.stop(drain_s=0)
    taken = last_seq_and_outbox_empty(tmp_path / "outbox.db")
    wait_for(lambda: tap.seen() == set(range(1, taken + 1)), 10, "every seq at the live broker")
    tap.close()


def tls_brokers(tmp_path: Path, names: Sequence[str]) -> tuple[list[Mosquitto], Path]:
    certs = make_certs(tmp_path / "certs", server_names=tuple(names))
    conf = f"certfile {certs.server_cert}\nkeyfile {certs.server_key}\n"
    return [Mosquitto(tmp_path / f"tls-{i}", extra_conf=conf).start() for i in range(2)], certs.ca


def test_with_tls_each_broker_is_checked_against_the_name_connected_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The brokers' certificate names localhost only: the first entry (by IP address) fails the
    # check, the second (by name) passes, so the name checked is the one of each attempt.
    monkeypatch.setattr("edge.publisher.random_first", lambda brokers: 0)
    (by_ip, by_name), ca = tls_brokers(tmp_path, ["localhost"])
    try:
        hosts = [f"127.0.0.1:{by_ip.port}", f"localhost:{by_name.port}"]
        mqtt = {"hosts": hosts, "tls": {"ca_file": str(ca)}}
        agent = Agent(parse_edge_config(agent_config_data(tmp_path, mqtt), "edge.yaml", tmp_path))
        publisher = agent.publishers[D]
        agent.start()
        try:
            wait_for(lambda: publisher.stats.connected, 20, "the agent to connect over TLS")
            assert publisher.stats.broker == f"localhost:{by_name.port}"
            assert publisher.stats.connect_failures >= 1
            wait_for(lambda: publisher.stats.acked_scans >= 10, 15, "scans acknowledged over TLS")
        finally:
            agent.stop(drain_s=0)
    finally:
        for b in (by_ip, by_name):
            b.kill()
