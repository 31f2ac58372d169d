"""The RabbitMQ cluster for the tests: three nodes started by deploy/cluster/local-cluster (the
script the docs use) on a free block of ports, and agents that publish over MQTT to its nodes,
rotating through them when one goes away, logging each connection's publish order."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from testbed.services import REPO, free_port, refuse_in_unit_run, wait_for

LOCAL_CLUSTER = REPO / "deploy" / "cluster" / "local-cluster"
PORT_BLOCK = 41  # local-cluster's ports: base .. base+40 (node listeners, CLI, epmd)
ADMIN = ("eit", "eit-cluster-test")


def _block_free(base: int) -> bool:
    for port in range(base, base + PORT_BLOCK):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_block() -> int:
    """A base port with the 40 after it free, below Linux's ephemeral range (32768-)."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - PORT_BLOCK)
        if _block_free(base):
            return base
    raise RuntimeError("no free block of 41 ports between 20000 and 32000")


class RabbitCluster:
    """Three RabbitMQ nodes of the test run's own (names, cookie, epmd port, data directory)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env: dict[str, str] = {}

    def _run(self, *args: str, timeout_s: float = 420) -> str:
        # A node restarted after a SIGKILL was seen to take over 3 minutes before it answered
        # (RabbitMQ 3.10's MQTT plugin waits at boot for its client-id tracker): local-cluster
        # waits up to 360 s for a node, the call a minute more.
        done = subprocess.run(
            [str(LOCAL_CLUSTER), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={
                **os.environ,
                "EIT_CLUSTER_BASE_PORT": str(self.base),
                "EIT_CLUSTER_PASSWORD": ADMIN[1],
                "EIT_CLUSTER_START_TIMEOUT_S": "360",
            },
        )
        if done.returncode != 0:
            raise RuntimeError(f"local-cluster {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self) -> RabbitCluster:
        refuse_in_unit_run("a RabbitMQ cluster")
        self.base = free_port_block()
        out = self._run("start", str(self.workdir))
        self.env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return self

    def stop(self) -> None:
        self._run("stop", str(self.workdir), timeout_s=120)

    def ctl(self, node: int, *args: str) -> str:
        return self._run("ctl", str(self.workdir), str(node), *args, timeout_s=60)

    def amqp_port(self, node: int) -> int:
        return int(self.env[f"NODE{node}_AMQP"])

    def mqtt_port(self, node: int) -> int:
        return int(self.env[f"NODE{node}_MQTT"])

    def http_port(self, node: int) -> int:
        return int(self.env[f"NODE{node}_HTTP"])

    @property
    def amqp_urls(self) -> list[str]:
        return [f"amqp://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{self.amqp_port(n)}/eit" for n in (1, 2, 3)]

    @property
    def management_urls(self) -> list[str]:
        return [f"http://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{self.http_port(n)}" for n in (1, 2, 3)]

    @property
    def mqtt_ports(self) -> list[int]:
        return [self.mqtt_port(n) for n in (1, 2, 3)]

    def node_pid(self, node: int) -> int:
        return int((self.workdir / f"node{node}" / "rabbitmq.pid").read_text().strip())

    def kill_node(self, node: int) -> None:
        os.kill(self.node_pid(node), signal.SIGKILL)

    def start_node(self, node: int) -> None:
        self._run("node", str(self.workdir), str(node))

    def add_agent_login(self, user: str, password: str) -> None:
        """An MQTT login with rights on the vhost (the tests' agents)."""
        self.ctl(1, "add_user", user, password)
        self.ctl(1, "set_permissions", "-p", "eit", user, ".*", ".*", ".*")


@dataclass
class Published:
    """One message an agent published: on which of its connections, in which order."""

    connection: int
    topic: str
    seq: int


@dataclass
class ClusterAgent:
    """An agent publishing scans (QoS 1) for its factories, on one MQTT connection at a time.

    Like an edge agent it keeps every scan until the broker acknowledges it; when its node goes
    away it connects to the next one and publishes the unacknowledged scans again, in order.
    ``log`` records each connection's publish order."""

    name: str
    factories: list[str]
    ports: list[int]
    login: tuple[str, str]
    device: str = "stack"
    values: dict[str, float] = field(default_factory=dict)  # channel -> a value inside its range
    # A scan's time (s since the epoch) from its seq: a backlog of an earlier hour, as an agent's
    # outbox drains it after an outage (default: the time it is published).
    ts_of: Callable[[int], float] | None = None
    log: list[Published] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    error: BaseException | None = None

    def __post_init__(self) -> None:
        # Only the publishing thread touches these; paho's network thread hands acknowledgements
        # over through a queue (taking a lock in its callback would deadlock with publish()).
        self._pending: dict[tuple[str, int], bytes] = {}  # (topic, seq) -> payload, publish order
        self._mids: dict[int, tuple[str, int]] = {}
        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()  # (connection, mid)
        self._client: mqtt.Client | None = None
        self._connection = 0
        self._port_index = sum(self.name.encode()) % len(self.ports)  # agents spread over the nodes
        self._lost = threading.Event()

    # -- connection -------------------------------------------------------------------------------
    def _connect(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            port = self.ports[self._port_index % len(self.ports)]
            self._connection += 1
            connection = self._connection
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"{self.name}-c{connection}",
                clean_session=True,
                reconnect_on_failure=False,
            )
            client.username_pw_set(*self.login)
            client.max_inflight_messages_set(200)
            client.on_publish = lambda c, u, mid, rc, p, n=connection: self._acks.put((n, mid))
            client.on_disconnect = lambda c, u, f, rc, p, n=connection: self._disconnected(n)
            connected = threading.Event()
            client.on_connect = lambda c, u, f, rc, p, ev=connected: None if rc.is_failure else ev.set()
            try:
                client.connect("127.0.0.1", port, keepalive=5)
            except OSError:
                self._port_index += 1
                time.sleep(0.2)
                continue
            self._lost.clear()
            client.loop_start()
            if not connected.wait(10):
                client.loop_stop()
                self._port_index += 1
                continue
            self._client = client
            self._mids.clear()
            # Everything not yet acknowledged goes again, in its order, on this connection.
            for (topic, seq), payload in list(self._pending.items()):
                self._send(client, topic, seq, payload)
            return
        raise TimeoutError(f"agent {self.name}: no node of the cluster accepts its connection")

    def _disconnected(self, connection: int) -> None:
        if connection == self._connection:
            self._lost.set()

    def _take_acks(self) -> None:
        while True:
            try:
                connection, mid = self._acks.get_nowait()
            except queue.Empty:
                return
            if connection == self._connection:
                key = self._mids.pop(mid, None)
                if key is not None:
                    self._pending.pop(key, None)

    def _send(self, client: mqtt.Client, topic: str, seq: int, payload: bytes) -> None:
        info = client.publish(topic, payload, qos=1)
        self._mids[info.mid] = (topic, seq)
        self.log.append(Published(self._connection, topic, seq))

    def _reconnect_if_lost(self, deadline: float) -> None:
        self._take_acks()
        if self._lost.is_set():
            old, self._client = self._client, None
            if old is not None:
                old.loop_stop()
            self.reconnects += 1
            self._port_index += 1
            self._connect(deadline)

    # -- publishing ---------------------------------------------------------------------------------
    def run(self, scans_per_s: float, duration_s: float, stop: threading.Event) -> None:
        """Publish ``scans_per_s`` scans per second for each factory during ``duration_s``."""
        self._connect(time.monotonic() + 60)
        interval = 1.0 / scans_per_s
        started = time.monotonic()
        tick = 0
        while time.monotonic() - started < duration_s and not stop.is_set():
            self._reconnect_if_lost(time.monotonic() + 60)
            now_ns = time.time_ns()
            for factory in self.factories:
                seq = self.seqs.get(factory, 0) + 1
                self.seqs[factory] = seq
                values = {c: round(v * (1 + (seq % 7) / 100), 4) for c, v in self.values.items()}
                ts = self.ts_of(seq) if self.ts_of is not None else now_ns / 1e9
                scan = {"seq": seq, "ts": round(ts, 6), "values": values}
                payload = json.dumps({"v": 1, "scans": [scan]}).encode()
                topic = f"eit/{factory}/{self.device}/data"
                self._pending[(topic, seq)] = payload
                if self._client is not None:
                    self._send(self._client, topic, seq, payload)
            tick += 1
            delay = started + tick * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def drain(self, timeout_s: float) -> None:
        """Wait until the broker has acknowledged every scan (reconnecting when needed); call it
        from the thread that ran :meth:`run`, after it."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._reconnect_if_lost(deadline)
            if not self._pending:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent {self.name}: {len(self._pending)} scans never acknowledged")
            time.sleep(0.05)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    @property
    def unacknowledged(self) -> int:
        return len(self._pending)

    def run_and_drain(self, scans_per_s: float, duration_s: float, stop: threading.Event) -> None:
        try:
            self.run(scans_per_s, duration_s, stop)
            self.drain(90)
        except BaseException as exc:
            self.error = exc
            raise


def read_delivery_log(path: Path) -> list[tuple[int, str, int, int, str, int]]:
    """The workers' delivery log: (time_ns, worker, connection, partition, topic, seq) per line."""
    rows: list[tuple[int, str, int, int, str, int]] = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        t, worker, epoch, partition, topic, seq = line.split("\t")
        rows.append((int(t), worker, int(epoch), int(partition), topic, int(seq) if seq != "-" else -1))
    return rows


def wait_for_cluster_queues(cluster: RabbitCluster, names: list[str], timeout_s: float = 60) -> None:
    """Wait until each named queue has a leader that is online (after a node comes back)."""
    import requests

    def ready() -> bool:
        for name in names:
            r = requests.get(
                f"http://127.0.0.1:{cluster.http_port(1)}/api/queues/eit/{name}", auth=ADMIN, timeout=5
            )
            if r.status_code != 200 or not r.json().get("leader"):
                return False
        return True

    wait_for(ready, timeout_s, "the partitions' leaders")


HAPROXY_CFG = REPO / "deploy" / "cluster" / "haproxy.cfg"


def haproxy_binary() -> str:
    import shutil

    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        raise RuntimeError("haproxy is not installed (scripts/ensure-system-packages installs it)")
    return found


@dataclass
class HAProxy:
    """HAProxy run from the shipped deploy/cluster/haproxy.cfg on free local ports."""

    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def port(self, frontend: str) -> int:
        return int(self.env[f"EIT_HAPROXY_{frontend.upper()}_PORT"])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def start_haproxy(addresses: dict[str, str], log_path: Path) -> HAProxy:
    """``addresses`` sets its EIT_* variables (the backends' host:port)."""
    refuse_in_unit_run("HAProxy")
    env = {
        **os.environ,
        "EIT_HAPROXY_BIND": "127.0.0.1",
        "EIT_HAPROXY_MQTT_PORT": str(free_port()),
        "EIT_HAPROXY_INFLUX_PORT": str(free_port()),
        "EIT_HAPROXY_API_PORT": str(free_port()),
        **addresses,
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=log, stderr=log
        )
    return HAProxy(env, proc)
