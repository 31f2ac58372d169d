"""`eit bench`: throughput, latency, overload and outages of the ingest, against baselines
measured in the same run on the same machine.

One run starts a real Mosquitto and a real InfluxDB in a temporary directory, writes the
benchmark town (bench/site.py: 600 factories with a 12-channel stack analyzer each, and latency
probe factories), and measures in turn:

- B0: ``mosquitto_sub`` (QoS 1, to /dev/null) fed by the publisher (bench/loadgen.py): the broker;
- B1: a bare paho-mqtt subscriber that counts (bench/baselines.py): the client library;
- B2: the same line protocol bulk-written to InfluxDB in 5,000-line batches: the store;
- ingest, InfluxDB store: ``eit serve`` with every rule on; a fixed count of readings offered as
  fast as the broker takes them; readings/s from the first scan published to the last stored;
- latency: half that rate, paced, with probe scans whose alerts go out over the MQTT notifier;
  p50/p99 from the probe's time stamp to the alert's arrival on ``eit/alerts/#``;
- ingest, embedded store: the same as the InfluxDB pass with the SQLite store;
- overload: half load, then the publisher's full speed (as many times the sustainable rate as it
  reaches), then half load again with probes: crash, disconnects, memory, where every reading
  went, and how long until latency is back to normal;
- outages at half load: InfluxDB stopped, the broker stopped, the ingest SIGKILLed and restarted;
  every reading counted in the store afterwards, and the rate the backlog drains at.

Every pass ends by counting the readings in the store: lost = published - stored (distinct
series and time), doubled = stored - published. Run ``python -m bench.run --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import requests
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench import baselines
from bench.loadgen import READINGS_PER_SCAN
from bench.proc import cpu_s, machine, machine_busy_s, rss_mb
from bench.site import write_site
from testbed.services import REPO, EitProcess, InfluxDB, Mosquitto, free_port, wait_for

LOAD_FACTORIES = 600  # Thailand's CEMS factories, about
OVERLOAD_PROBE_EVERY_S = 1.0


@dataclass(frozen=True)
class Profile:
    name: str
    throughput_readings: int  # per throughput pass
    latency_s: float  # half-load pass with probes
    probe_every_s: float
    overload_s: float
    influx_down_s: float
    broker_down_s: float
    ingest_down_s: float
    settle_s: float  # half load before and after an outage
    recovery_s: float  # half load with probes after the overload burst

    @property
    def probes(self) -> int:
        # Probe factories: one per probe of the latency pass and of the overload's recovery.
        return int(self.latency_s / self.probe_every_s + self.recovery_s / OVERLOAD_PROBE_EVERY_S) + 10


PROFILES = {
    "quick": Profile("quick", 180_000, 15, 0.1, 2, 10, 8, 4, 5, 90),
    "full": Profile("full", 1_200_000, 60, 0.1, 60, 300, 120, 10, 20, 900),
}


# -- the processes ---------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    stored: float
    dead: float
    connected: float
    cpu_s: float
    rss_mb: float


def _metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, value = line.rpartition(" ")
        key = re.sub(r"\{.*\}", "", name)
        try:
            out[key] = out.get(key, 0.0) + float(value)
        except ValueError:
            continue
    return out


class Serve:
    """``eit serve`` on the benchmark town, with its /metrics sampled every 0.1 s."""

    def __init__(self, bench: Bench, name: str, store: dict[str, Any]) -> None:
        self.bench = bench
        self.name = name
        self.dir = bench.workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.config = self.dir / "serve.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "site": str(bench.site),
                    "data_dir": str(self.dir / "data"),
                    "mqtt": {
                        "host": "127.0.0.1",
                        "port": bench.mosquitto.port,
                        "client_id": f"eit-bench-{name}",
                    },
                    "store": store,
                    # Probe factories send one scan each: no stale alerts in a run.
                    "rules": {"stale_after_s": 7200, "check_interval_s": 5},
                    "http": {"host": "127.0.0.1", "port": self.http_port},
                    "notifiers": [{"kind": "mqtt"}],
                }
            )
        )
        self.proc = EitProcess(["serve", "--config", str(self.config)], self.dir / "serve.log")
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def metrics(self) -> dict[str, float]:
        return _metrics(requests.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text)

    def _connected(self) -> bool:
        try:
            return self.metrics().get("eit_broker_connected", 0.0) == 1.0
        except requests.RequestException:
            return False

    def start(self) -> Serve:
        self.proc.start()
        wait_for(self._connected, 120, f"eit serve ({self.name}) connected to the broker", 0.2)
        if self._sampler is None:
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            if not self.proc.alive():
                continue
            try:
                pid = self.pid
                m = self.metrics()
                self.samples.append(
                    Sample(
                        time.time(),
                        m.get("eit_readings_stored_total", 0.0),
                        m.get("eit_dead_letters_total", 0.0),
                        m.get("eit_broker_connected", 0.0),
                        cpu_s(pid),
                        rss_mb(pid),
                    )
                )
            except (requests.RequestException, OSError, RuntimeError):
                continue

    def stored(self) -> float:
        return self.samples[-1].stored if self.samples else 0.0

    def wait_stored(self, target: float, timeout_s: float) -> float:
        """Wait until the stored-readings counter reaches ``target``; the time it did."""
        deadline = time.monotonic() + timeout_s
        last = -1.0
        progress_at = time.monotonic()
        while time.monotonic() < deadline:
            current = self.stored()
            if current >= target:
                return self.samples[-1].t
            if current != last:
                last, progress_at = current, time.monotonic()
            elif time.monotonic() - progress_at > 60:
                break  # no progress for a minute: something is wrong, stop waiting
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: {self.stored():.0f} of {target:.0f} readings stored")

    def kill(self) -> None:
        self.proc.kill()

    def restart(self) -> None:
        self.restarts += 1
        self.proc = EitProcess(["serve", "--config", str(self.config)], self.dir / "serve.log")
        self.proc.start()
        wait_for(self._connected, 120, f"eit serve ({self.name}) back", 0.2)

    def stop(self) -> None:
        self._stop.set()
        if self.proc.alive():
            self.proc.terminate(60)

    def window(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 <= s.t <= t1]

    def log_has(self, text: str) -> int:
        return self.proc.output().count(text)


class AlertListener:
    """Subscribes to ``eit/alerts/#`` and notes when each probe factory's alert arrives."""

    def __init__(self, port: int) -> None:
        self.arrived: dict[str, float] = {}
        self.opened: dict[str, float] = {}  # the alert's own opening time, from the engine
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="eit-bench-alerts")
        self.client.on_connect = lambda c, *a: c.subscribe("eit/alerts/#", qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(30):
            raise RuntimeError("alert listener: not subscribed")

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        t = time.time()
        try:
            event = json.loads(message.payload)
        except ValueError:
            return
        alert = event.get("alert", {})
        if event.get("event") == "opened" and alert.get("rule") == "limit_instant":
            factory = str(alert.get("factory"))
            self.arrived.setdefault(factory, t)
            self.opened.setdefault(factory, int(alert.get("opened_ns", 0)) / 1e9)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class LoadGen:
    """bench/loadgen.py in its own process."""

    def __init__(self, bench: Bench, name: str, *args: str) -> None:
        self.name = name
        cmd = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--port",
            str(bench.mosquitto.port),
            "--factories",
            str(LOAD_FACTORIES),
            "--client-id",
            f"eit-bench-lg-{name}",
            *args,
        ]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.summary: dict[str, Any] = {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def wait(self, timeout_s: float = 900) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout_s)
        if self.proc.returncode != 0:
            raise RuntimeError(f"loadgen {self.name} failed: {err.decode(errors='replace')[-2000:]}")
        self.summary = json.loads(out.decode().strip().splitlines()[-1])
        return self.summary


# -- the passes ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Bench:
    profile: Profile
    workdir: Path
    mosquitto: Mosquitto
    influx: InfluxDB
    site: Path
    results: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print

    # -- store counts ------------------------------------------------------------------------
    def influx_count(self, database: str) -> int:
        resp = requests.get(
            f"{self.influx.url}/query",
            params={"db": database, "q": 'SELECT count("value") FROM "readings"'},
            timeout=300,
        )
        resp.raise_for_status()
        series = resp.json()["results"][0].get("series") or []
        return int(series[0]["values"][0][1]) if series else 0

    def wait_in_store(self, database: str, published: int, quiet_s: float = 60.0) -> float:
        """Poll the store's count until it holds ``published`` readings, or stops growing for
        ``quiet_s`` (what is missing then is counted as lost); the time it got there."""
        last, moved = -1, time.monotonic()
        while True:
            count = self.influx_count(database)
            if count >= published:
                return time.time()
            if count != last:
                last, moved = count, time.monotonic()
            elif time.monotonic() - moved > quiet_s:
                return time.time()
            time.sleep(1.0)

    @staticmethod
    def sqlite_count(path: Path) -> int:
        with sqlite3.connect(str(path), timeout=60) as db:
            return int(db.execute("SELECT count(*) FROM readings").fetchone()[0])

    def influx_store(self, name: str) -> dict[str, Any]:
        return {"kind": "influxdb", "url": self.influx.url, "database": f"bench_{name}"}

    @staticmethod
    def accounting(published: int, in_store: int, written: float) -> dict[str, Any]:
        return {
            "published": published,
            "in_store": in_store,
            "lost": max(0, published - in_store),
            "doubled": max(0, in_store - published),
            "written_again": max(0, int(written) - published)
            if not math.isnan(written)
            else None,  # redelivered, absorbed by idempotency
        }

    # -- baselines -----------------------------------------------------------------------------
    def b0(self) -> dict[str, Any]:
        n = self.profile.throughput_readings
        sub = subprocess.Popen(
            [
                shutil.which("mosquitto_sub") or "mosquitto_sub",
                "-p",
                str(self.mosquitto.port),
                "-t",
                "eit/+/+/data",
                "-q",
                "1",
                "-C",
                str(n // READINGS_PER_SCAN),
                "-i",
                "eit-bench-b0",
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # mosquitto_sub subscribes
        lg = LoadGen(self, "b0", "--count", str(n))
        while sub.poll() is None:
            time.sleep(0.002)
        end = time.time()
        summary = lg.wait()
        rate = summary["readings"] / (end - summary["first_t"])
        return {"readings": summary["readings"], "readings_per_s": rate, "offered": summary}

    def b1(self) -> dict[str, Any]:
        n = self.profile.throughput_readings
        sub = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.baselines",
                "b1",
                "--port",
                str(self.mosquitto.port),
                "--count",
                str(n // READINGS_PER_SCAN),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        assert sub.stdout is not None
        if sub.stdout.readline().strip() != b"ready":
            raise RuntimeError("B1 subscriber did not start")
        lg = LoadGen(self, "b1", "--count", str(n))
        out = json.loads(sub.stdout.readline())
        sub.wait(60)
        summary = lg.wait()
        rate = summary["readings"] / (out["last_t"] - summary["first_t"])
        return {
            "readings": summary["readings"],
            "readings_per_s": rate,
            "messages": out["messages"],
            "cpu_us_per_reading": out["cpu_s"] / summary["readings"] * 1e6,
        }

    def b2(self) -> dict[str, Any]:
        return baselines.bulk_write(
            self.influx.url, "bench_b2", self.profile.throughput_readings, time.time_ns() - 3600 * 10**9
        )

    # -- ingest throughput and latency -----------------------------------------------------------
    def _cpu_now(self) -> dict[str, float]:
        busy, total = machine_busy_s()
        out = {"machine_busy": busy, "machine_total": total}
        for name, proc in (("broker", self.mosquitto.proc), ("influxd", self.influx.proc)):
            if proc is not None and proc.poll() is None:
                out[name] = cpu_s(proc.pid)
        return out

    def throughput(self, serve: Serve, count: int) -> dict[str, Any]:
        before = serve.stored()
        cpu0 = self._cpu_now()
        lg = LoadGen(self, f"{serve.name}-tput", "--count", str(count))
        summary = lg.wait()
        done = serve.wait_stored(before + summary["readings"], 600)
        cpu1 = self._cpu_now()
        seconds = done - summary["first_t"]
        window = serve.window(summary["first_t"], done)
        cpu = window[-1].cpu_s - window[0].cpu_s if len(window) > 1 else math.nan
        span = window[-1].t - window[0].t if len(window) > 1 else math.nan
        return {
            "readings": summary["readings"],
            "seconds": seconds,
            "readings_per_s": summary["readings"] / seconds,
            "offered_readings_per_s": summary["offered_readings_per_s"],
            "cpu_percent": 100 * cpu / span,
            "cpu_us_per_reading": cpu / summary["readings"] * 1e6,
            "rss_mb_max": max(s.rss_mb for s in window) if window else math.nan,
            # Where the machine's two cores went during the pass, in % of one core.
            "cpu_share": {
                "machine": 100 * (cpu1["machine_busy"] - cpu0["machine_busy"]) / seconds,
                "machine_capacity": 100 * (cpu1["machine_total"] - cpu0["machine_total"]) / seconds,
                "ingest": 100 * cpu / span,
                "publisher": 100 * summary["cpu_s"] / (summary["last_ack_t"] - summary["first_t"]),
                **{k: 100 * (cpu1[k] - cpu0[k]) / seconds for k in ("broker", "influxd") if k in cpu0},
            },
        }

    def latency(self, serve: Serve, rate: float, seconds: float) -> dict[str, Any]:
        listener = AlertListener(self.mosquitto.port)
        try:
            before = serve.stored()
            t0 = time.time()
            lg = LoadGen(
                self,
                f"{serve.name}-lat",
                "--rate",
                f"{rate:.0f}",
                "--duration",
                f"{seconds}",
                "--probe-every",
                str(self.profile.probe_every_s),
                "--probes",
                str(self.profile.probes),
            )
            summary = lg.wait()
            total = summary["readings"] + summary["probe_readings"]
            serve.wait_stored(before + total, 600)
            wait_for(lambda: len(listener.arrived) >= len(summary["probes"]), 30, "the probes' alerts", 0.1)
        finally:
            listener.close()
        lat = [listener.arrived[f] - sent for f, sent in summary["probes"].items() if f in listener.arrived]
        # Split: scan -> alert opened in the engine (ingest, store, rules); opened -> arrived
        # (alert state, notifier, broker).
        to_open = [listener.opened[f] - sent for f, sent in summary["probes"].items() if f in listener.opened]
        to_arrive = [listener.arrived[f] - listener.opened[f] for f in listener.opened]
        window = serve.window(t0, summary["last_t"])
        cpu = window[-1].cpu_s - window[0].cpu_s if len(window) > 1 else math.nan
        span = window[-1].t - window[0].t if len(window) > 1 else math.nan
        return {
            "offered_readings_per_s": summary["offered_readings_per_s"],
            "probes": len(summary["probes"]),
            "alerts": len(lat),
            "p50_ms": percentile(lat, 0.5) * 1000,
            "p99_ms": percentile(lat, 0.99) * 1000,
            "max_ms": max(lat) * 1000 if lat else math.nan,
            "to_open_p50_ms": percentile(to_open, 0.5) * 1000,
            "to_open_p99_ms": percentile(to_open, 0.99) * 1000,
            "open_to_arrive_p50_ms": percentile(to_arrive, 0.5) * 1000,
            "open_to_arrive_p99_ms": percentile(to_arrive, 0.99) * 1000,
            "cpu_percent": 100 * cpu / span,
            "rss_mb_max": max(s.rss_mb for s in window) if window else math.nan,
            "published": total,
        }

    def ingest_influx(self) -> None:
        serve = Serve(self, "influx", self.influx_store("influx")).start()
        try:
            tput = self.throughput(serve, self.profile.throughput_readings)
            self.log(f"ingest, InfluxDB store: {tput['readings_per_s']:,.0f} readings/s")
            half = tput["readings_per_s"] / 2
            lat = self.latency(serve, half, self.profile.latency_s)
            self.log(
                f"latency at {half:,.0f} readings/s: p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms"
            )
            published = tput["readings"] + lat["published"]
            self.wait_in_store("bench_influx", published)
        finally:
            serve.stop()
        tput["dead_letters"] = serve.samples[-1].dead if serve.samples else math.nan
        tput["accounting"] = self.accounting(
            published, self.influx_count("bench_influx"), serve.samples[-1].stored
        )
        self.results["ingest_influx"] = tput
        self.results["latency"] = lat

    def ingest_sqlite(self) -> None:
        serve = Serve(self, "sqlite", {"kind": "sqlite"}).start()
        try:
            tput = self.throughput(serve, self.profile.throughput_readings)
        finally:
            serve.stop()
        self.log(f"ingest, embedded store: {tput['readings_per_s']:,.0f} readings/s")
        tput["dead_letters"] = serve.samples[-1].dead if serve.samples else math.nan
        tput["accounting"] = self.accounting(
            tput["readings"], self.sqlite_count(serve.dir / "data" / "readings.db"), serve.samples[-1].stored
        )
        self.results["ingest_sqlite"] = tput

    # -- overload ------------------------------------------------------------------------------
    def overload(self) -> None:
        p = self.profile
        sustainable = self.results["ingest_influx"]["readings_per_s"]
        normal_p99 = self.results["latency"]["p99_ms"]
        serve = Serve(self, "overload", self.influx_store("overload")).start()
        listener = AlertListener(self.mosquitto.port)
        try:
            steady_t0 = time.time()
            steady = LoadGen(
                self, "ov-steady", "--rate", f"{sustainable / 2:.0f}", "--duration", str(p.settle_s * 2)
            )
            s1 = steady.wait()
            steady_rss = max(s.rss_mb for s in serve.window(steady_t0, s1["last_t"]))
            # Ten times the sustainable rate.
            over = LoadGen(
                self, "ov-burst", "--rate", f"{10 * sustainable:.0f}", "--duration", str(p.overload_s)
            )
            s2 = over.wait()
            over_end = s2["last_t"]
            # Half load again, with probes, until the backlog is in (and 10 s more), at most
            # recovery_s.
            after_t0 = time.time()
            after = LoadGen(
                self,
                "ov-after",
                "--rate",
                f"{sustainable / 2:.0f}",
                "--duration",
                str(p.recovery_s),
                "--probe-every",
                str(OVERLOAD_PROBE_EVERY_S),
                "--probes",
                str(p.probes),
            )
            before = s1["readings"] + s2["readings"]
            caught_t: float | None = None
            while after.proc.poll() is None:
                time.sleep(0.5)
                now = time.time()
                if caught_t is None and serve.stored() >= before + (now - after_t0) * sustainable / 2 * 0.98:
                    caught_t = now
                if caught_t is not None and now - caught_t >= 10:
                    after.stop()
            s3 = after.wait()
            published = before + s3["readings"] + s3["probe_readings"]
            serve.wait_stored(published, 1200)
            # The write counter also counts what was written again after a reconnect: the store's
            # own count says when everything is in.
            done = self.wait_in_store("bench_overload", published)
            wait_for(lambda: len(listener.arrived) >= len(s3["probes"]), 60, "the probes' alerts", 0.2)
        finally:
            listener.close()
            serve.stop()
        lat = sorted(
            (sent, listener.arrived[f] - sent) for f, sent in s3["probes"].items() if f in listener.arrived
        )
        normal = max(2 * normal_p99 / 1000, 0.25)
        late = [sent for sent, delay in lat if delay > normal]
        # Back to normal after the last late probe; never (NaN) when the last probe was late.
        if lat and late and late[-1] == lat[-1][0]:
            back_at = math.nan
        else:
            back_at = (late[-1] if late else over_end) - over_end
        over_window = serve.window(s2["first_t"], done)
        self.results["overload"] = {
            "sustainable_readings_per_s": sustainable,
            "offered_readings_per_s": s2["offered_readings_per_s"],
            "offered_x": s2["offered_readings_per_s"] / sustainable,
            "seconds": s2["last_t"] - s2["first_t"],
            "steady_rss_mb": steady_rss,
            "rss_mb_max": max(s.rss_mb for s in over_window),
            "ingest_alive": serve.restarts == 0 and not serve.log_has("Traceback"),
            "broker_disconnects": serve.log_has("disconnected from broker"),
            "backlog_in_s": done - over_end,
            "latency_normal_after_s": back_at,
            "normal_latency_bound_ms": normal * 1000,
            "recovery_s": s3["last_t"] - s3["first_t"],
            "dead_letters": serve.samples[-1].dead,
            "accounting": self.accounting(
                published, self.influx_count("bench_overload"), serve.samples[-1].stored
            ),
        }
        o = self.results["overload"]
        self.log(
            f"overload x{o['offered_x']:.1f}: RSS {o['rss_mb_max']:.0f} MB (steady {steady_rss:.0f}),"
            f" latency normal {back_at:.0f} s after, lost {o['accounting']['lost']}"
        )

    # -- outages ---------------------------------------------------------------------------------
    def outage(
        self, name: str, down_s: float, cut: Callable[[], object], mend: Callable[[], object], database: str
    ) -> dict[str, Any]:
        """Half load; ``cut`` after ``settle_s``, ``mend`` ``down_s`` later; the store's own count,
        polled every second, tells when the backlog is in and how fast it drained."""
        p = self.profile
        rate = self.results["ingest_influx"]["readings_per_s"] / 2
        # After the outage, half load goes on long enough for a backlog drained at twice the
        # offered rate to be in: 1.5 x the outage.
        total_s = p.settle_s + down_s + max(p.settle_s, down_s * 1.5)
        counts: list[tuple[float, int]] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(1.0):
                try:
                    counts.append((time.time(), self.influx_count(database)))
                except (requests.RequestException, KeyError, ValueError):
                    continue

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        lg = LoadGen(self, name, "--rate", f"{rate:.0f}", "--duration", f"{total_s:.1f}")
        time.sleep(p.settle_s)
        cut_t = time.time()
        cut()
        time.sleep(down_s)
        mend()
        mend_t = time.time()
        summary = lg.wait()
        published = summary["readings"]
        offered = summary["offered_readings_per_s"]
        with contextlib.suppress(TimeoutError):  # what is missing is counted as lost below
            wait_for(
                lambda: bool(counts) and counts[-1][1] >= published,
                1200,
                f"{name}: every reading stored",
                0.5,
            )
        stop.set()
        poller.join(10)
        # Caught up: the first count after the outage that holds (nearly) all published by then.
        # The drain runs from the last count before the store's count moved again (the ingest
        # back at work: reconnect and retry back-off are over) to the catch-up.
        after = [(t, c) for t, c in counts if t >= mend_t]
        caught = next(
            ((t, c) for t, c in after if c >= min(published, (t - summary["first_t"]) * offered) * 0.98),
            after[-1] if after else (math.nan, 0),
        )
        start = next(
            (after[i - 1] for i in range(1, len(after)) if after[i][1] > after[0][1]),
            after[0] if after else (math.nan, 0),
        )
        drain_rate = (caught[1] - start[1]) / (caught[0] - start[0]) if caught[0] > start[0] else math.nan
        return {
            "down_s": mend_t - cut_t,
            "offered_readings_per_s": offered,
            "resumed_after_s": start[0] - mend_t,
            "catch_up_s": caught[0] - mend_t,
            "drain_readings_per_s": drain_rate,
            "drain_x": drain_rate / offered,
            "publisher_disconnects": summary["disconnects"],
            "readings": published,
        }

    def _outage_pass(
        self,
        key: str,
        down_s: float,
        what: str,
        cut: Callable[[Serve], object],
        mend: Callable[[Serve], object],
    ) -> None:
        name = f"out-{key}"
        database = f"bench_out_{key}"
        serve = Serve(self, name, self.influx_store(f"out_{key}")).start()
        try:
            r = self.outage(name, down_s, lambda: cut(serve), lambda: mend(serve), database)
        finally:
            serve.stop()
        r["dead_letters"] = serve.samples[-1].dead if serve.samples else math.nan
        r["accounting"] = self.accounting(r["readings"], self.influx_count(database), math.nan)
        self.results.setdefault("outages", {})[key] = r
        self.log(
            f"{what} {r['down_s']:.0f} s: lost {r['accounting']['lost']},"
            f" doubled {r['accounting']['doubled']}, drain x{r['drain_x']:.1f}"
        )

    def outages(self) -> None:
        p = self.profile
        self._outage_pass(
            "influxdb_down",
            p.influx_down_s,
            "InfluxDB down",
            lambda s: self.influx.stop(),
            lambda s: self.influx.start(),
        )
        self._outage_pass(
            "broker_down",
            p.broker_down_s,
            "broker down",
            lambda s: self.mosquitto.stop(),
            lambda s: self.mosquitto.start(),
        )
        self._outage_pass(
            "ingest_killed", p.ingest_down_s, "ingest SIGKILL", lambda s: s.kill(), lambda s: s.restart()
        )


# -- the report --------------------------------------------------------------------------------
def _n(x: float, digits: int = 0) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def table(results: dict[str, Any]) -> str:
    b0 = results["b0"]["readings_per_s"]
    b1 = results["b1"]["readings_per_s"]
    b2 = results["b2"]["readings_per_s"]
    rows: list[tuple[str, str, str, str]] = []

    def ratios(x: float) -> str:
        return f"{x / b0:.2f} x B0, {x / b1:.2f} x B1, {x / b2:.2f} x B2"

    rows.append(("B0 broker: mosquitto_sub to /dev/null", f"{_n(b0)} readings/s", "1 x B0", ""))
    rows.append(
        (
            "B1 bare paho-mqtt subscriber",
            f"{_n(b1)} readings/s, {results['b1']['cpu_us_per_reading']:.1f} us CPU/reading",
            f"{b1 / b0:.2f} x B0",
            "",
        )
    )
    rows.append(
        ("B2 InfluxDB bulk write, 5,000-line batches", f"{_n(b2)} readings/s", f"{b2 / b0:.2f} x B0", "")
    )
    for key, label in (("ingest_influx", "InfluxDB store"), ("ingest_sqlite", "embedded store")):
        t = results.get(key)
        if not t:
            continue
        acc = t["accounting"]
        target = ">= 50,000 readings/s; >= 0.5 x B1" if key == "ingest_influx" else ""
        rows.append(
            (
                f"ingest, {label}, rules on: sustained",
                f"{_n(t['readings_per_s'])} readings/s",
                ratios(t["readings_per_s"]),
                target,
            )
        )
        rows.append(
            (
                f"ingest, {label}: CPU",
                f"{_n(t['cpu_percent'])} % of a core, {t['cpu_us_per_reading']:.1f} us/reading",
                "",
                "",
            )
        )
        rows.append((f"ingest, {label}: RSS max", f"{_n(t['rss_mb_max'])} MB", "", ""))
        share = t["cpu_share"]
        rows.append(
            (
                f"ingest, {label}: the machine's CPU during the pass",
                f"{share['machine']:.0f} % of {share['machine_capacity']:.0f} % busy",
                ", ".join(f"{k} {v:.0f} %" for k, v in share.items() if not k.startswith("machine")),
                "",
            )
        )
        rows.append(
            (
                f"ingest, {label}: lost / doubled / dead letters",
                f"{acc['lost']} / {acc['doubled']} / {_n(t['dead_letters'])}",
                f"of {acc['published']:,} published",
                "0 / 0",
            )
        )
    lat = results.get("latency")
    if lat:
        rows.append(
            (
                f"scan -> alert at {_n(lat['offered_readings_per_s'])} readings/s (half load),"
                f" {lat['alerts']} of {lat['probes']} probes",
                f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms",
                f"scan to engine p50 {lat['to_open_p50_ms']:.0f}, p99 {lat['to_open_p99_ms']:.0f} ms;"
                f" engine to arrival p50 {lat['open_to_arrive_p50_ms']:.0f},"
                f" p99 {lat['open_to_arrive_p99_ms']:.0f} ms",
                "p99 <= 100 ms",
            )
        )
    rc = results.get("rules")
    if rc:
        rows.append(
            (
                "rule CPU (bench/rules_cost.py, all 7 rule kinds together)",
                f"{rc['total_us']:.2f} us/reading",
                "",
                "<= 10 us per rule",
            )
        )
    o = results.get("overload")
    if o:
        acc = o["accounting"]
        rows.append(
            (
                f"overload: {_n(o['offered_readings_per_s'])} readings/s offered for {o['seconds']:.0f} s",
                f"x{o['offered_x']:.1f} the sustainable rate",
                "",
                "10 x",
            )
        )
        rows.append(
            (
                "overload: ingest alive / broker disconnects",
                f"{'yes' if o['ingest_alive'] else 'NO'} / {o['broker_disconnects']}",
                "",
                "yes / 0",
            )
        )
        rows.append(
            (
                "overload: RSS max vs steady state",
                f"{_n(o['rss_mb_max'])} MB vs {_n(o['steady_rss_mb'])} MB",
                f"x{o['rss_mb_max'] / o['steady_rss_mb']:.2f}",
                "<= 2 x",
            )
        )
        rows.append(
            (
                "overload: lost / doubled / dropped (dead letters)",
                f"{acc['lost']} / {acc['doubled']} / {_n(o['dead_letters'])}",
                f"of {acc['published']:,} published",
                "0 / 0",
            )
        )
        rows.append(("overload: backlog stored, after the burst ended", f"{o['backlog_in_s']:.0f} s", "", ""))
        rows.append(
            (
                f"overload: latency back under {o['normal_latency_bound_ms']:.0f} ms",
                f"{o['latency_normal_after_s']:.0f} s after the burst"
                if not math.isnan(o["latency_normal_after_s"])
                else f"not within the {o['recovery_s']:.0f} s measured",
                "",
                "<= 30 s",
            )
        )
    for key, label in (
        ("influxdb_down", "InfluxDB down"),
        ("broker_down", "broker down"),
        ("ingest_killed", "ingest SIGKILL"),
    ):
        r = (results.get("outages") or {}).get(key)
        if not r:
            continue
        acc = r["accounting"]
        rows.append(
            (
                f"{label} {r['down_s']:.0f} s at {_n(r['offered_readings_per_s'])} readings/s:"
                " lost / doubled",
                f"{acc['lost']} / {acc['doubled']}",
                f"of {acc['published']:,} published",
                "0 / 0",
            )
        )
        rows.append(
            (
                f"{label}: backlog drain",
                f"{_n(r['drain_readings_per_s'])} readings/s from {r['resumed_after_s']:.0f} s"
                f" after, caught up in {r['catch_up_s']:.0f} s",
                f"x{r['drain_x']:.1f} the offered rate",
                ">= 2 x",
            )
        )
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("figure", "measured", "ratio", "target")
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, width, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in width) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, width, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


def rules_cost() -> dict[str, float]:
    from bench import rules_cost as rc
    from eit.registry import load_registry

    registry = load_registry(rc.SITE)
    with tempfile.TemporaryDirectory() as tmp:
        c = rc.cpu(registry, Path(tmp), 3 * 3600)
    return {"total_us": c["engine_us"] - c["baseline_us"], "per_rule_us": c["per_rule_us"]}


def run(profile: Profile, keep: bool, passes: set[str]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="eit-bench-"))
    mach = machine()
    print(
        f"eit bench ({profile.name}): {mach['cpu']}, {mach['cores']} cores, {mach['memory']},"
        f" Python {mach['python']}, {mach['date']}, load {mach['load']}",
        flush=True,
    )
    mosquitto = Mosquitto(workdir / "mosquitto").start()
    influx = InfluxDB(workdir / "influxdb").start()
    site = write_site(workdir / "site.yaml", LOAD_FACTORIES, profile.probes)
    bench = Bench(profile, workdir, mosquitto, influx, site, log=lambda s: print(f"  {s}", flush=True))
    started = time.monotonic()
    try:
        bench.results["b0"] = bench.b0()
        bench.log(f"B0 mosquitto_sub: {bench.results['b0']['readings_per_s']:,.0f} readings/s")
        bench.results["b1"] = bench.b1()
        bench.log(f"B1 paho subscriber: {bench.results['b1']['readings_per_s']:,.0f} readings/s")
        bench.results["b2"] = bench.b2()
        bench.log(f"B2 InfluxDB bulk write: {bench.results['b2']['readings_per_s']:,.0f} readings/s")
        bench.ingest_influx()
        if "sqlite" in passes:
            bench.ingest_sqlite()
        if "rules" in passes:
            bench.results["rules"] = rules_cost()
        if "overload" in passes:
            bench.overload()
        if "outages" in passes:
            bench.outages()
    finally:
        influx.stop()
        mosquitto.stop()
        bench.results["machine"] = mach
        bench.results["profile"] = profile.name
        bench.results["seconds"] = time.monotonic() - started
        if keep:
            print(f"working directory kept: {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return bench.results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="eit bench", description="Benchmark the ingest against baselines measured in the same run."
    )
    p.add_argument(
        "--quick",
        action="store_const",
        dest="profile",
        const="quick",
        help="the short run (under 5 minutes; the default)",
    )
    p.add_argument(
        "--full",
        action="store_const",
        dest="profile",
        const="full",
        help="the full run (about an hour: 60 s at 10 x and its backlog, InfluxDB down 5 minutes,"
        " the broker down 2 minutes)",
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["sqlite", "rules", "overload", "outages"],
        help="leave out a pass",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the working directory (logs, configs)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="instead: the RabbitMQ cluster with 1 and 2 workers beside Mosquitto + one `eit serve`"
        " (bench/cluster_cost.py)",
    )
    args = p.parse_args(argv)
    if args.cluster:
        from bench.cluster_cost import main as cluster_main

        return cluster_main([])
    profile = PROFILES[args.profile or "quick"]
    passes = {"sqlite", "rules", "overload", "outages"} - set(args.skip)
    results = run(profile, args.keep, passes)
    print()
    print(table(results))
    print(f"\n({results['seconds']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
