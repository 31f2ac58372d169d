"""The `eit` command line. Subcommands import what they need when they run, so the agent's
commands work where only ``eit-monitor[edge]`` is installed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from eit import __version__
from eit.errors import ConfigError
from eit.logsetup import setup_logging


def _serve(args: argparse.Namespace) -> int:
    from eit.config import load_serve_config
    from eit.serve import run_serve

    return run_serve(load_serve_config(args.config))


def _edge_run(args: argparse.Namespace) -> int:
    from edge.config import load_edge_config
    from edge.run import run_agent

    return run_agent(load_edge_config(args.config))


def _edge_check(args: argparse.Namespace) -> int:
    from edge.check import check
    from edge.config import load_edge_config

    return check(load_edge_config(args.config))


def _demo(args: argparse.Namespace) -> int:
    from eit.demo import run_demo

    return run_demo(
        args.duration, Path(args.data_dir), Path(args.site) if args.site else None, args.http_port
    )


def _registry_check(args: argparse.Namespace) -> int:
    from eit.registry import load_registry

    reg = load_registry(args.file)
    channels = sum(len(d.channels) for f in reg.factories.values() for d in f.devices.values())
    print(
        f"{args.file}: ok: town {reg.town_id}, {len(reg.factories)} factories, "
        f"{reg.device_count} devices, {channels} channels, {len(reg.officers)} officers"
    )
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from eit.config import load_serve_config
    from eit.timeutil import ns_to_iso
    from ingest.deadletters import DeadLetterStore

    config = load_serve_config(args.config)
    store = DeadLetterStore(config.state_path)
    letters = store.recent(args.limit, args.reason)
    if args.json:
        rows = [asdict(d) | {"received_at": ns_to_iso(d.received_ns)} for d in letters]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for d in letters:
            where = f" at {d.location}" if d.location else ""
            print(f"#{d.id} {ns_to_iso(d.received_ns)} {d.topic} {d.reason}{where}: {d.detail}")
            print(f"    {d.payload[:200]}")
        print(f"{len(letters)} dead letter(s) shown; by reason: {store.counts()}")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    from alerts.state import AlertStore
    from eit.config import load_serve_config

    config = load_serve_config(args.config)
    alerts = AlertStore(config.state_path).list(state=args.state, factory=args.factory, limit=args.limit)
    if args.json:
        print(json.dumps([a.to_json() for a in alerts], ensure_ascii=False, indent=2))
    else:
        for a in alerts:
            print(
                f"#{a.id} {a.state:8} {a.severity:8} {a.factory}/{a.device} {a.parameter}"
                f" [{a.rule}] {a.message}"
            )
    return 0


def _devices_add(args: argparse.Namespace) -> int:
    from eit.brokerauth import BrokerAuthError, add_factory, add_ingest

    passwd_file = Path(args.passwd_file) if args.passwd_file else None
    acl_file = Path(args.acl_file) if args.acl_file else None
    ingest_user = args.ingest_user
    if args.config:
        from eit.config import load_serve_config
        from eit.registry import load_registry

        config = load_serve_config(args.config)
        if config.broker is not None:
            passwd_file = passwd_file or config.broker.passwd_file
            acl_file = acl_file or config.broker.acl_file
        ingest_user = ingest_user or config.mqtt.username
        if not args.ingest and load_registry(config.site).factories.get(args.name) is None:
            print(
                f"eit: factory '{args.name}' is not in the site registry {config.site}: add it there first",
                file=sys.stderr,
            )
            return 2
    if passwd_file is None or acl_file is None:
        print(
            "eit: say where the broker's files are: --config serve.yaml (with broker.passwd_file and "
            "broker.acl_file) or --passwd-file and --acl-file",
            file=sys.stderr,
        )
        return 2
    try:
        if args.ingest:
            result = add_ingest(args.name, passwd_file, acl_file)
        else:
            result = add_factory(args.name, passwd_file, acl_file, ingest_user or "eit-ingest")
    except BrokerAuthError as exc:
        print(f"eit: {exc}", file=sys.stderr)
        return 2
    who = "the ingest" if args.ingest else f"factory {result.user}"
    if result.rotated:
        print(f"{who}: password rotated; the old password stops working when Mosquitto reloads its files")
    else:
        print(f"{who}: login created")
    print(f"  username: {result.user}")
    if args.password_out:
        out = Path(args.password_out)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(result.password + "\n")
        print(f"  password: written to {out} (mode 600): hand it over as the agent's mqtt.password_file")
    else:
        print(f"  password: {result.password}")
        print("            (shown once: give it to the factory for its agent's mqtt.password_file)")
    print(f"  allowed:  {'; '.join(result.topics)}")
    print(f"wrote {passwd_file} and {acl_file}")
    print("Reload Mosquitto to apply: systemctl reload mosquitto, or send it SIGHUP")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eit", description="EIT Monitor: pollution monitoring for eco-industrial towns"
    )
    parser.add_argument("--version", action="version", version=f"eit-monitor {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    parser.add_argument(
        "--log-format", choices=("text", "json"), default=None, help="log lines as text or JSON"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run ingest and rules (with /healthz and /metrics)")
    p.add_argument("--config", required=True, help="server configuration file (YAML)")
    p.set_defaults(func=_serve)

    edge = sub.add_parser("edge", help="the edge agent at a factory")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True, metavar="COMMAND")
    p = edge_sub.add_parser("run", help="read the meters and publish scans")
    p.add_argument("--config", required=True, help="agent configuration file (YAML)")
    p.set_defaults(func=_edge_run)
    p = edge_sub.add_parser(
        "check", help="check the config, read every meter once, log in to the broker, and say what works"
    )
    p.add_argument("--config", required=True, help="agent configuration file (YAML)")
    p.set_defaults(func=_edge_check)

    p = sub.add_parser("demo", help="run the example town on one machine, nothing else needed")
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS (default: until Ctrl-C)")
    p.add_argument(
        "--data-dir", default="demo-data", help="where the store and alert state go (default: ./demo-data)"
    )
    p.add_argument(
        "--site", default=None, help="folder with site.yaml and edge/*.yaml (default: examples/town)"
    )
    p.add_argument("--http-port", type=int, default=8080, help="HTTP port (another one when taken)")
    p.set_defaults(func=_demo)

    reg = sub.add_parser("registry", help="site registry tools")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")
    p = reg_sub.add_parser("check", help="check a site registry file")
    p.add_argument("file")
    p.set_defaults(func=_registry_check)

    p = sub.add_parser("dead-letters", help="list rejected messages with their reasons")
    p.add_argument("--config", required=True)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--reason", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_dead_letters)

    devices = sub.add_parser("devices", help="broker logins of the factories (server side)")
    devices_sub = devices.add_subparsers(dest="devices_command", required=True, metavar="COMMAND")
    p = devices_sub.add_parser(
        "add",
        help="create (or rotate) a factory's broker login: it may publish only under eit/FACTORY/#",
    )
    p.add_argument("name", metavar="FACTORY", help="the factory's id in the site registry")
    p.add_argument(
        "--config", default=None, help="server configuration (broker.passwd_file, broker.acl_file)"
    )
    p.add_argument("--passwd-file", default=None, help="Mosquitto password file to write")
    p.add_argument("--acl-file", default=None, help="Mosquitto ACL file to write")
    p.add_argument(
        "--ingest-user", default=None, help="the ingest's login, given read on eit/# (default: mqtt.username)"
    )
    p.add_argument("--ingest", action="store_true", help="create the ingest's login (NAME) instead")
    p.add_argument(
        "--password-out", default=None, help="write the password to this file instead of printing it"
    )
    p.set_defaults(func=_devices_add)

    p = sub.add_parser("alerts", help="list alerts")
    p.add_argument("--config", required=True)
    p.add_argument("--state", choices=("open", "resolved"), default=None)
    p.add_argument("--factory", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_alerts)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The demo prints what happens itself; its log shows only warnings unless asked.
    # So does `eit edge check`: its report is the output.
    quiet = args.command == "demo" or getattr(args, "edge_command", None) == "check"
    default_level = "WARNING" if quiet else None
    setup_logging(args.log_level or default_level, args.log_format)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"eit: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
