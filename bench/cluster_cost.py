"""The RabbitMQ cluster beside one machine, at one paced rate: CPU per message of the broker(s)
and of the ingest worker(s), and whether the store kept up (docs/scale-out.md, "Sizing").

    python -m bench.cluster_cost [--factories 16] [--scans-per-s 12.5] [--duration 20]

Passes, each with the same agents (testbed.cluster.ClusterAgent, 4 MQTT connections, 12-channel
scans of the benchmark town, QoS 1), the same InfluxDB and rules on:

- ``mosquitto``: Mosquitto and one `eit serve` (the single-machine default);
- ``cluster, 1 worker`` and ``cluster, 2 workers``: three RabbitMQ nodes (deploy/cluster/
  local-cluster), P = 8 partitions, `eit serve` workers with ``ingest.transport: amqp`` sharing
  a PostgreSQL state database.

CPU is each process's user + system time (/proc) from the first publish until the store holds
every reading; per message = that / messages. The rate is paced and modest: it measures cost,
not the ceiling (never extrapolate throughput from a small machine). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.site import CHANNELS, load_factory, write_site
from ingest.store.influx import InfluxStore
from testbed.cluster import ClusterAgent, RabbitCluster
from testbed.services import EIT, EitProcess, InfluxDB, Mosquitto, PostgreSQL, free_port, wait_for

VALUES = {cid: typical for cid, _unit, _range, typical in CHANNELS}
PARTITIONS = 8
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Result:
    name: str
    messages: int
    readings: int
    stored: int
    seconds: float
    broker_cpu_s: float
    worker_cpu_s: float

    def row(self) -> str:
        return (
            f"| {self.name} | {self.readings:,} | {self.stored:,} | {self.stored / self.seconds:,.0f} |"
            f" {self.broker_cpu_s / self.messages * 1e6:,.0f} |"
            f" {self.worker_cpu_s / self.messages * 1e6:,.0f} |"
        )


def _serve_config(
    path: Path, site: Path, influx: InfluxDB, database: str, mqtt_port: int, extra: dict[str, object]
) -> Path:
    data: dict[str, object] = {
        "site": str(site),
        "data_dir": str(path.parent / path.stem),
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "client_id": f"eit-{path.stem}"},
        "store": {"kind": "influxdb", "url": influx.url, "database": database},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "notifiers": [{"kind": "log"}],
        **extra,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _measure(
    name: str,
    agents: list[ClusterAgent],
    broker_pids: list[int],
    worker_pids: list[int],
    store: InfluxStore,
    factories: list[str],
    scans_per_s: float,
    duration_s: float,
) -> Result:
    stop = threading.Event()
    brokers0 = sum(cpu_s(p) for p in broker_pids)
    workers0 = sum(cpu_s(p) for p in worker_pids)
    started = time.monotonic()
    threads = [
        threading.Thread(target=a.run_and_drain, args=(scans_per_s, duration_s, stop), daemon=True)
        for a in agents
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 120)
    messages = sum(sum(a.seqs.values()) for a in agents)
    readings = messages * len(VALUES)
    for agent in agents:
        if agent.error is not None:
            raise RuntimeError(f"{name}: agent {agent.name} failed: {agent.error!r}")

    def stored() -> int:
        return sum(store.count(factory=f) for f in factories)

    # A shortfall is reported, not raised: the row shows what was stored of what was acknowledged.
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: stored() >= readings, 120, f"{name}: every reading")
    seconds = time.monotonic() - started
    return Result(
        name,
        messages,
        readings,
        stored(),
        seconds,
        sum(cpu_s(p) for p in broker_pids) - brokers0,
        sum(cpu_s(p) for p in worker_pids) - workers0,
    )


def _delete_queue_set(cluster: RabbitCluster, prefix: str) -> None:
    import pika

    from ingest.partitions import queue_name

    connection = pika.BlockingConnection(pika.URLParameters(cluster.amqp_urls[0]))
    channel = connection.channel()
    for partition in range(PARTITIONS):
        channel.queue_delete(queue_name(prefix, partition))
    connection.close()


def _agents(factories: list[str], ports: list[int], login: tuple[str, str]) -> list[ClusterAgent]:
    prefix = uuid.uuid4().hex[:6]
    return [
        ClusterAgent(f"bench{i}-{prefix}", factories[i::4], ports, login, values=VALUES) for i in range(4)
    ]


def _single(
    work: Path, site: Path, influx: InfluxDB, factories: list[str], scans_per_s: float, duration_s: float
) -> Result:
    """Mosquitto and one `eit serve`, the single-machine default."""
    mosquitto = Mosquitto(work / "mosquitto").start()
    database = "m_" + uuid.uuid4().hex[:8]
    config = _serve_config(work / "single.yaml", site, influx, database, mosquitto.port, {})
    serve = EitProcess(["serve", "--config", str(config)], work / "single.log").start()
    try:
        # Its session exists before the agents publish (docs: start eit serve first): Mosquitto
        # acknowledges and drops a QoS 1 message that nobody subscribes to.
        wait_for(lambda: "connected to broker" in serve.output(), 60, "eit serve to subscribe")
        assert mosquitto.proc is not None and serve.proc is not None
        return _measure(
            "Mosquitto + 1 `eit serve`",
            _agents(factories, [mosquitto.port], ("bench", "bench")),
            [mosquitto.proc.pid],
            [serve.proc.pid],
            InfluxStore(influx.url, database),
            factories,
            scans_per_s,
            duration_s,
        )
    finally:
        serve.terminate()
        mosquitto.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster_cost", description=__doc__.split("\n")[0])
    p.add_argument("--factories", type=int, default=16)
    p.add_argument("--scans-per-s", type=float, default=12.5, help="per factory")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--cluster-only", action="store_true", help="skip the Mosquitto pass")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="eit-cluster-cost-"))
    site = write_site(work / "site.yaml", args.factories, 0)
    factories = [load_factory(i) for i in range(args.factories)]
    results: list[Result] = []
    influx = InfluxDB(work / "influxdb").start()
    postgres = PostgreSQL().start()
    processes: list[EitProcess] = []
    try:
        # Mosquitto and one `eit serve`.
        if not args.cluster_only:
            results.append(_single(work, site, influx, factories, args.scans_per_s, args.duration))
        cluster = RabbitCluster(work / "rabbit").start()
        try:
            cluster.add_agent_login("bench", "bench-password")
            brokers = [cluster.node_pid(n) for n in (1, 2, 3)]
            for count in (1, 2):
                database = "c_" + uuid.uuid4().hex[:8]
                amqp = {
                    "urls": cluster.amqp_urls,
                    "management_urls": cluster.management_urls,
                    "partitions": PARTITIONS,
                    "queue_prefix": f"bench{count}",
                }
                extra: dict[str, object] = {
                    "state": {"url": postgres.url},
                    "ingest": {"transport": "amqp", "amqp": amqp},
                }
                configs = [
                    _serve_config(
                        work / f"w{count}-{i}.yaml", site, influx, database, cluster.mqtt_port(1), extra
                    )
                    for i in range(count)
                ]
                subprocess.run(
                    [*EIT, "cluster", "init", "--config", str(configs[0])], check=True, timeout=120
                )
                workers = [
                    EitProcess(["serve", "--config", str(c)], work / f"{c.stem}.log").start() for c in configs
                ]
                processes.extend(workers)
                time.sleep(5)
                results.append(
                    _measure(
                        f"RabbitMQ 3 nodes + {count} worker{'s' if count > 1 else ''}",
                        _agents(factories, cluster.mqtt_ports, ("bench", "bench-password")),
                        brokers,
                        [w.proc.pid for w in workers if w.proc is not None],
                        InfluxStore(influx.url, database),
                        factories,
                        args.scans_per_s,
                        args.duration,
                    )
                )
                for w in workers:
                    w.terminate()
                _delete_queue_set(cluster, f"bench{count}")  # the next pass's bindings only
        finally:
            cluster.stop()
    finally:
        for proc in processes:
            if proc.alive():
                proc.kill()
        influx.stop()
        postgres.stop()
    offered = args.factories * args.scans_per_s * len(VALUES)
    print(
        f"\n{args.factories} factories x {args.scans_per_s:g} scans/s x {len(VALUES)} channels ="
        f" {offered:,.0f} readings/s offered for {args.duration:g} s; {os.cpu_count()} cores\n"
    )
    print(
        "| pass | readings acknowledged to the agents | stored | readings/s (first publish -> stored)"
        " | broker CPU us/message | worker CPU us/message |"
    )
    print("|---|---|---|---|---|---|")
    for result in results:
        print(result.row())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
