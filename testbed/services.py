"""Real services for the tests: Mosquitto and InfluxDB started on free ports in a temporary
directory, and `eit` processes run as a user would run them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from eit.store import Store

REPO = Path(__file__).resolve().parent.parent
EIT = [sys.executable, "-m", "server.cli"]
# Set by `make unit` (pytest --unit): a test run without services, where starting one is an error.
NO_SERVICES_ENV = "EIT_TESTS_WITHOUT_SERVICES"


class ServiceRefused(RuntimeError):
    """A service was started in a test run without services (`make unit`)."""


def refuse_in_unit_run(what: str) -> None:
    if os.environ.get(NO_SERVICES_ENV):
        raise ServiceRefused(
            f"{what} started in a run without services (make unit): mark the test `integration`"
            " (tests/conftest.py marks the tests that use a service fixture)"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")


def _wait_started(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    timeout_s: float,
    what: str,
    log: Callable[[], str],
) -> None:
    """Wait until ``ready``; fail at once, with the service's log, if its process has ended. Another
    test process may have taken the free port first (pytest-xdist workers start services side by
    side): the port then answers, but not this process."""
    wait_for(lambda: proc.poll() is not None or ready(), timeout_s, what)
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with code {proc.returncode}:\n{log()[-2000:]}")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _binary(name: str, *extra_dirs: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        p = Path(d) / name
        if p.exists():
            return str(p)
    raise RuntimeError(f"{name} is not installed: run `make test`, which installs it")


class Mosquitto:
    """A real Mosquitto broker with persistence, which a test may stop and start again."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.binary = _binary("mosquitto", "/usr/sbin")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "data").mkdir(exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # Started as root, Mosquitto would switch to the user 'mosquitto', who cannot write the
            # test's (root-only) folder: no log, no persistence. Stay who started it (ignored
            # when not started as root).
            "user root\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir / 'data'}/\n"
            # Keep the whole backlog of an offline persistent session (the ingest's) and let the
            # MQTT 5 receive maximum of the client govern the in-flight window.
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
            "log_type error\nlog_type warning\nlog_type notice\n" + extra_conf
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        refuse_in_unit_run("Mosquitto")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_started(self.proc, lambda: port_open(self.port), 10, f"mosquitto on port {self.port}", self.log)
        return self

    def stop(self) -> None:
        """A clean stop (SIGTERM): Mosquitto saves its persistence file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            # Saving a large persistent queue (the benchmark's overload leaves millions of
            # messages) takes Mosquitto well over 10 s.
            self.proc.wait(300)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


class InfluxDB:
    """A real InfluxDB 1.x (Debian's influxdb package), serving the v1 HTTP API.

    ``auth_enabled`` turns on its authentication (the first user created must be an admin);
    ``max_values_per_tag`` sets its limit of values per tag key (0: no limit); ``storage``
    puts its meta, data and write-ahead log in another folder (a small disk)."""

    def __init__(
        self,
        workdir: Path,
        *,
        auth_enabled: bool = False,
        max_values_per_tag: int | None = None,
        storage: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.rpc_port = free_port()
        self.binary = _binary("influxd", "/usr/bin")
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "influxdb.conf"
        self.auth_enabled = auth_enabled
        self.max_values_per_tag = max_values_per_tag
        self.storage = storage or workdir
        self._write_conf()
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_conf(self) -> None:
        root = self.storage
        limit = self.max_values_per_tag
        self.conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{root}/meta"\n'
            f'[data]\n  dir = "{root}/data"\n  wal-dir = "{root}/wal"\n'
            "  query-log-enabled = false\n"
            + (f"  max-values-per-tag = {limit}\n" if limit is not None else "")
            + "[http]\n"
            f'  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n"
            + ("  auth-enabled = true\n" if self.auth_enabled else "")
            + "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )

    def reconfigure(self, *, max_values_per_tag: int | None = None) -> None:
        """Change a setting for the next :meth:`start` (InfluxDB reads its file when it starts)."""
        self.max_values_per_tag = max_values_per_tag
        self._write_conf()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ping(self) -> bool:
        try:
            return requests.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except requests.RequestException:
            return False

    def start(self) -> InfluxDB:
        refuse_in_unit_run("InfluxDB")
        log = open(self.workdir / "influxd.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([self.binary, "-config", str(self.conf)], stdout=log, stderr=log)
        _wait_started(
            self.proc,
            self._ping,
            30,
            f"influxd on port {self.port}",
            lambda: (self.workdir / "influxd.log").read_text(errors="replace"),
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(20)
        self.proc = None


_STARTED: list[subprocess.Popen[bytes]] = []


def started_count() -> int:
    return len(_STARTED)


def kill_leftovers(since: int = 0) -> None:
    """Kill every process started after the ``since``-th one and not stopped (a failed test must
    not leave any behind; processes of wider-scoped fixtures, started before, are left alone)."""
    while len(_STARTED) > since:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class EitProcess:
    """An `eit` command run in its own process, with its output in a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EitProcess:
        refuse_in_unit_run(f"`eit {' '.join(self.args[:1])}`")
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [*EIT, *self.args], stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO
        )
        _STARTED.append(self.proc)
        return self

    def terminate(self, timeout_s: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def write_serve_config(
    workdir: Path,
    broker_port: int,
    *,
    store: str = "sqlite",
    influx_url: str = "",
    influx_database: str = "",
    webhook_url: str | None = None,
    client_id: str = "eit-ingest-test",
    http_port: int | None = None,
    stale_after_s: float = 120,
    state_url: str | None = None,
) -> Path:
    """A serve.yaml for the example town, as an operator would write it (the state database in
    PostgreSQL when ``state_url`` is given)."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, object] = {
        "site": str(REPO / "examples" / "town" / "site.yaml"),
        "data_dir": str(workdir / "data"),
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": client_id},
        "store": {"kind": "sqlite"}
        if store == "sqlite"
        else {"kind": "influxdb", "url": influx_url, "database": influx_database},
        # One valid minute opens a provisional exceedance: the tests see it within seconds.
        "rules": {"stale_after_s": stale_after_s, "check_interval_s": 1, "provisional_min_points": 1},
        "http": {"host": "127.0.0.1", "port": http_port or free_port()},
        "ingest": {"flush_interval_s": 0.05},
        "notifiers": [{"kind": "log"}]
        + ([{"kind": "webhook", "url": webhook_url, "retries": 3}] if webhook_url else []),
    }
    if state_url:
        config["state"] = {"url": state_url}
    path = workdir / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_edge_config(
    workdir: Path,
    broker_port: int,
    *,
    factory: str = "kaeng-khoi-biomass",
    scan_interval_s: float = 1.0,
    profile: str | None = None,
    ramp_s: float | None = None,
) -> Path:
    """The example town's agent config for ``factory``, pointed at the test broker."""
    import yaml

    from eit.confread import load_yaml

    workdir.mkdir(parents=True, exist_ok=True)
    data = load_yaml(REPO / "examples" / "town" / "edge" / f"{factory}.yaml")
    data["mqtt"] = {"host": "127.0.0.1", "port": broker_port}
    data["outbox"] = {"path": str(workdir / f"outbox-{factory}.db")}
    data["scan_interval_s"] = scan_interval_s
    for device in data["devices"]:
        if profile is not None and device["sim"]["profile"] != "normal":
            device["sim"]["profile"] = profile
        if ramp_s is not None:
            device["sim"]["ramp_s"] = ramp_s
    path = workdir / f"edge-{factory}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# The example town's boiler agent, as the outage tests count it: per device, the channel its
# seqs are read from and its number of channels.
AGENT_FACTORY = "kaeng-khoi-biomass"
AGENT_DEVICES = {"boiler-1": ("o2", 6), "meter-1": ("power", 2)}
FAR_FUTURE_NS = 4_000_000_000 * 1_000_000_000


def assert_each_scan_stored_once(store: Store, taken: dict[str, int]) -> None:
    """Wait until the store holds every scan the agent took, then check each is there once:
    seqs exactly 1..taken per device, and every channel of each scan."""

    def all_stored() -> bool:
        return all(
            store.count(factory=AGENT_FACTORY, device=d) == n * taken[d]
            for d, (_, n) in AGENT_DEVICES.items()
        )

    wait_for(all_stored, 30, "every scan in the store")
    for device, (channel, n_channels) in AGENT_DEVICES.items():
        seqs = [r.seq for r in store.readings(AGENT_FACTORY, device, channel, 0, FAR_FUTURE_NS)]
        assert seqs == list(range(1, taken[device] + 1)), f"{device}: seqs not exactly 1..{taken[device]}"
        assert store.count(factory=AGENT_FACTORY, device=device) == n_channels * taken[device]


def outbox_state(path: Path) -> tuple[dict[str, int], int]:
    """(last seq per device, scans still waiting) read from an agent's outbox file."""
    import sqlite3

    with sqlite3.connect(str(path), timeout=10) as db:
        seqs = {d: int(s) for d, s in db.execute("SELECT device, last_seq FROM devices")}
        waiting = int(db.execute("SELECT count(*) FROM scans").fetchone()[0])
    return seqs, waiting


def _postgres_bin(name: str) -> str:
    """A PostgreSQL server binary: on PATH, or in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parent.parent.name)
    )
    if versions:
        return str(versions[-1])
    raise RuntimeError(f"PostgreSQL's {name} is not installed: run `make test`, which installs it")


class PostgreSQL:
    """A real PostgreSQL cluster of the test run's own: initdb in a temporary folder, the server on
    a free port on 127.0.0.1 (trust authentication, fsync off).

    PostgreSQL refuses to run as root: when the tests run as root the cluster belongs to the
    ``postgres`` user that Debian's package creates (``nobody`` when there is none), and the
    commands run as that user (subprocess's ``user=``/``group=``)."""

    def __init__(self) -> None:
        import pwd
        import tempfile

        self.port = free_port()
        # Not under pytest's tmp dir: that is private to root (mode 700).
        self.workdir = Path(tempfile.mkdtemp(prefix="eit-pg-"))
        self.data = self.workdir / "data"
        self.user: int | None = None
        self.group: int | None = None
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                account = pwd.getpwnam("nobody")
            self.user, self.group = account.pw_uid, account.pw_gid
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgreSQL:
        refuse_in_unit_run("PostgreSQL")
        subprocess.run(
            [
                _postgres_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            timeout=120,
            user=self.user,
            group=self.group,
            extra_groups=[] if self.user is not None else None,
        )
        self._launch()
        return self

    def _launch(self) -> None:
        log = open(self.workdir / "postgres.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                _postgres_bin("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.workdir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            user=self.user,
            group=self.group,
            extra_groups=[] if self.user is not None else None,
        )
        _wait_started(
            self.proc,
            self._ready,
            30,
            f"PostgreSQL on port {self.port}",
            lambda: (self.workdir / "postgres.log").read_text(errors="replace"),
        )

    def halt(self) -> None:
        """Stop the server as an operator's restart does (fast shutdown: every client's connection
        is cut), keeping its data for :meth:`resume`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
        self.proc = None

    def resume(self) -> None:
        """Start the halted server again, on the same port with the same data."""
        self._launch()

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.workdir, ignore_errors=True)
