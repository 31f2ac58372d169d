"""`eit demo`: the whole platform on one machine with nothing else installed.

An embedded MQTT broker (amqtt; on another port when 1883 is taken), the embedded SQLite store,
the example town's simulated factories (edge agents) and `eit serve`'s ingest and rules, all in
one process. A summary line per interval, each alert as it happens, set apart, and a summary
when it stops (server/democonsole.py); the data stays in the data dir.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from eit.confread import read_yaml
from eit.registry import Registry, load_registry
from eit.timeutil import NS_PER_S
from ingest.store.sqlite import SqliteSettings
from server.config import parse_serve_config
from server.democonsole import RULE, ConsoleSink
from server.embedded_broker import EmbeddedBroker, choose_port, free_port, port_is_free

REPO_EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "town"


def run_demo(
    duration_s: float | None,
    data_dir: Path,
    site_dir: Path | None = None,
    http_port: int = 8080,
    out: TextIO = sys.stdout,
    history_hours: float = 24.0,
    summary_s: float = 10.0,
    every_reading: bool = False,
) -> int:
    from edge.agent import Agent
    from edge.config import parse_edge_config
    from eit.signals import stop_on_signals
    from server.serve import Server

    stop = stop_on_signals()
    site_dir = (site_dir or REPO_EXAMPLES).resolve()
    site_file = site_dir / "site.yaml"
    if not site_file.is_file():
        print(
            f"eit demo: no example town at {site_dir} (give --site DIR with site.yaml and edge/)",
            file=sys.stderr,
        )
        return 2
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    registry = load_registry(site_file)
    colour = out.isatty()
    host = "127.0.0.1"
    port = choose_port(host, 1883)
    broker = EmbeddedBroker(host, port)
    broker.start()
    note = "" if port == 1883 else " (1883 is taken)"
    mqtt = {"host": host, "port": port, "protocol": "3.1.1"}

    http_port = http_port if port_is_free(host, http_port) else free_port(host)
    data_arg = _shown_path(data_dir)

    def hints(alert_id: int) -> str:
        console_url = f"http://{host}:{http_port}/console"
        return f"see it: {console_url}   or   eit alert show {alert_id} --data-dir {data_arg}"

    console = ConsoleSink(
        registry, out, colour, interval_s=summary_s, every_reading=every_reading, hints=hints
    )
    serve_config = parse_serve_config(
        {
            "site": str(site_file),
            "data_dir": str(data_dir),
            "mqtt": {**mqtt, "client_id": "eit-demo-ingest"},
            "store": {"kind": "sqlite"},
            # One valid minute opens a provisional exceedance (ten by default): the demo's
            # exceedance shows within seconds, whatever the minute of the hour it starts at.
            "rules": {"stale_after_s": 30, "check_interval_s": 2, "provisional_min_points": 1},
            "http": {"host": host, "port": http_port},
            "ingest": {"flush_interval_s": 0.2},
            "notifiers": [{"kind": "log"}],
        },
        "eit demo",
        data_dir,
    )
    assert isinstance(serve_config.store, SqliteSettings)  # the demo's own store: {kind: sqlite}
    # The simulated agents sign their scans as production agents do (docs/signing.md): each
    # device's key in the data folder, its public key registered before the server starts.
    agents = []
    for edge_file in sorted((site_dir / "edge").glob("*.yaml")):
        doc = read_yaml(edge_file)
        data = doc.data
        data["mqtt"] = dict(mqtt)
        data["outbox"] = {"path": str(data_dir / f"outbox-{data['factory']}.db")}
        config = parse_edge_config(data, str(edge_file), edge_file.parent, lines=doc.lines)
        data["signing"] = {
            "keys": str(
                demo_signing_keys(
                    data_dir / "edge-keys" / config.factory,
                    config.factory,
                    [d.id for d in config.devices],
                    serve_config.device_keys_path,
                )
            )
        }
        agents.append(Agent(parse_edge_config(data, str(edge_file), edge_file.parent, lines=doc.lines)))
    readings_db = serve_config.store.path
    server = Server(serve_config, extra_sinks=[console], on_alert=console.on_alert, registry=registry)
    accounts = demo_accounts(server.accounts, registry, data_dir)
    history = ""
    if history_hours > 0 and _count(readings_db) == 0:
        history = backfill(server.store, registry, site_dir / "edge", history_hours)

    # Alert log lines would repeat what the console prints.
    logging.getLogger("eit.alerts").setLevel(logging.ERROR)
    server.start()
    print(
        f"{RULE}\n"
        f"EIT Monitor demo: {registry.town_name}\n"
        f"  {len(registry.factories)} factories, {registry.device_count} devices,"
        f" {len(agents)} edge agents (simulated)\n"
        f"  broker   embedded MQTT on {host}:{port}{note}\n"
        f"  store    embedded SQLite {readings_db}\n"
        f"  alerts   {serve_config.state_path}\n"
        + (f"  history  {history}\n" if history else "")
        + f"  web      http://{host}:{server.http_port}/  (town; officers /console; operators /operator)\n"
        f"  api      http://{host}:{server.http_port}/docs  /healthz  /metrics\n"
        f"  accounts {accounts}\n"
        f"  {'stops after ' + format(duration_s, 'g') + ' s' if duration_s else 'Ctrl-C stops it'};"
        f" the data stays in {data_dir}\n"
        f"  output   a summary line every {summary_s:g} s"
        f"{' and every reading' if every_reading else ' (--every-reading for each reading)'};"
        f" alerts as they happen\n"
        f"{RULE}\n",
        file=out,
        flush=True,
    )
    for agent in agents:
        agent.start()
    console.start()
    try:
        stop.wait(duration_s)
    finally:
        console.stop()
        # The server stops first: scans the agents take meanwhile stay in their outboxes on
        # disk and are sent on the next run.
        print("stopping: ingest, edge agents, broker ...", file=out, flush=True)
        server.stop()
        for agent in agents:
            agent.stop()
        broker.stop()
    stored = _count(readings_db)
    for line in console.final_summary(stored, str(readings_db), data_arg):
        print(line, file=out)
    out.flush()
    return 0


def _shown_path(path: Path) -> str:
    """``path`` as a command to type in this folder would name it: relative when it is below."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


DEMO_ACCOUNTS = (
    # name, role, factory (operators), the registry officer it logs in as: for trying the console
    # on this machine. Their passwords are made at random (server/passwords.py) when an account
    # is made and kept in DEMO_PASSWORDS of the data folder (owner-only) for the banner.
    ("officer", "officer", None, "duty-rayong"),
    ("supervisor", "supervisor", None, "supervisor-rayong"),
    ("admin", "admin", None, None),
    ("operator", "operator", "kaeng-khoi-biomass", None),
)
DEMO_PASSWORDS = "demo-passwords.txt"


def backfill(store: Any, registry: Registry, edge_dir: Path, hours: float) -> str:
    """The last ``hours`` of the simulated meters, so the charts have a history on the first run.
    The boilers run normally in it, but the demo's exceeding boiler has been climbing since the
    top of the current hour: an hour's average is the mean of its minute means, so a boiler that
    turned bad only when the demo started would need half an hour of live minutes to outweigh
    the hour's normal ones. What the rules find in the history is not kept as alerts."""
    from alerts.state import open_alert_store
    from eit.timeutil import now_ns
    from server.history import edge_meters, simulate_history

    end = now_ns()
    start = end - int(hours * 3600) * NS_PER_S
    scratch = open_alert_store(None, Path(":memory:"))
    try:
        # The exceeding meter climbs from the top of the current hour.
        top_of_hour = end - end % (3600 * NS_PER_S)
        meters = [replace(m, exceed_from_ns=top_of_hour) for m in edge_meters(edge_dir)]
        done = simulate_history(registry, store, scratch, meters, start, end)
    finally:
        scratch.close()
    return f"{done.readings} readings of the last {hours:g} h of the simulated meters (first run)"


def demo_signing_keys(folder: Path, factory: str, devices: list[str], keys_file: Path) -> Path:
    """Make each device's signing key in ``folder`` (kept from an earlier run) and register its
    public key in the server's ``keys_file`` unless it is there; returns ``folder``."""
    from edge.keys import make_key
    from eit.devicekeys import add_key, load_device_keys
    from eit.timeutil import now_ns

    for device in devices:
        made = make_key(folder, device)
        registered = {
            k.id for k in load_device_keys(keys_file).keys if (k.factory, k.device) == (factory, device)
        }
        if made.key_id not in registered:
            add_key(keys_file, factory, device, made.public_key, now_ns(), rotate=bool(registered))
    return folder


def demo_accounts(accounts: Any, registry: Registry, data_dir: Path) -> str:
    """Create the demo's accounts when missing, each with a random strong password kept in
    ``data_dir``/DEMO_PASSWORDS; returns them as the banner shows them. An account of an earlier
    release's demo-data folder (its password was fixed and weak) gets a new one."""
    from eit.timeutil import now_ns
    from server.passwords import generate_password

    kept = _read_demo_passwords(data_dir / DEMO_PASSWORDS)
    shown = []
    for name, role, factory, officer in DEMO_ACCOUNTS:
        if factory is not None and factory not in registry.factories:
            continue
        if officer not in registry.officers or accounts.account_of_officer(officer) is not None:
            officer = None  # another site registry, or another account logs in as that officer
        user = accounts.get_user(name)
        password = kept.get(name)
        if user is None:
            password = generate_password()
            accounts.add_user(name, role, password, now_ns(), factory, officer)
        else:
            if password is None:
                password = generate_password()
                accounts.set_password(name, password)
            if officer is not None and user.officer is None and user.role == role:
                accounts.set_officer(name, officer)  # a demo-data folder of an earlier release
        kept[name] = password
        shown.append(f"{name}/{password}" + (f" ({factory})" if factory else ""))
    _write_demo_passwords(data_dir / DEMO_PASSWORDS, kept)
    return "  ".join(shown)


def _read_demo_passwords(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split(" ", 1) for line in path.read_text(encoding="utf-8").splitlines() if " " in line)
    return {name: password for name, password in pairs}


def _write_demo_passwords(path: Path, passwords: dict[str, str]) -> None:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.writelines(f"{name} {password}\n" for name, password in sorted(passwords.items()))
    os.chmod(path, 0o600)  # a file made before under a loose umask


def _count(path: Path | None) -> int:
    import sqlite3

    if path is None or not path.exists():
        return 0
    with sqlite3.connect(str(path)) as db:
        return int(db.execute("SELECT count(*) FROM readings").fetchone()[0])
