"""The `eit` command line. Subcommands import what they need when they run, so the agent's
commands work where only ``eit-monitor[edge]`` is installed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from eit import __version__
from eit.errors import ConfigError, EitError
from eit.logsetup import setup_logging

if TYPE_CHECKING:
    from dashboards.datasource import InfluxSource
    from eit.registry import Registry
    from eit.store import Store


def _serve(args: argparse.Namespace) -> int:
    from server.config import load_serve_config
    from server.serve import run_serve

    return run_serve(load_serve_config(args.config))


def _edge_run(args: argparse.Namespace) -> int:
    from edge.config import load_edge_config
    from edge.run import run_agent

    return run_agent(load_edge_config(args.config))


def _edge_check(args: argparse.Namespace) -> int:
    from edge.check import check, load_for_check

    config, broker_problems = load_for_check(args.config)
    return check(config, broker_problems=broker_problems)


def _edge_keygen(args: argparse.Namespace) -> int:
    from edge.config import load_edge_config
    from edge.keys import make_key

    config = load_edge_config(args.config)
    if config.signing_keys is None:
        print(
            f"{args.config}: signing: no keys folder configured; add `signing: {{keys: keys}}` to sign scans",
            file=sys.stderr,
        )
        return 2
    devices = args.device or [d.id for d in config.devices]
    known = {d.id for d in config.devices}
    for device in devices:
        if device not in known:
            print(f"{args.config}: devices: no device '{device}' in this agent", file=sys.stderr)
            return 2
    for device in devices:
        made = make_key(config.signing_keys, device, rotate=args.rotate)
        what = "made" if made.made else "kept"
        print(f"{config.factory}/{device}: {what} {made.path} (key {made.key_id})")
        verb = "rotate" if args.rotate else "add"
        print(
            f"  register on the server: eit devices key {verb} {config.factory} --device {device} "
            f"--public-key={made.public_key} --config SERVER.yaml"
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from server.demo import run_demo

    return run_demo(
        args.duration,
        Path(args.data_dir),
        Path(args.site) if args.site else None,
        args.http_port,
        history_hours=args.history_hours,
        summary_s=args.summary_s,
        every_reading=args.every_reading,
    )


def _registry_check(args: argparse.Namespace) -> int:
    from eit.registry import load_registry

    try:
        reg = load_registry(args.file)
    except ConfigError as exc:
        # Every problem at once, each with its line and the ids of the items it is in.
        for problem in sorted(exc.problems, key=lambda p: p.line or 0):
            print(f"eit: configuration error: {problem}", file=sys.stderr)
        noun = "problem" if len(exc.problems) == 1 else "problems"
        print(f"{args.file}: {len(exc.problems)} {noun} found", file=sys.stderr)
        return 2
    channels = sum(len(d.channels) for f in reg.factories.values() for d in f.devices.values())
    print(
        f"{args.file}: ok: town {reg.town_id}, {len(reg.factories)} factories, "
        f"{reg.device_count} devices, {channels} channels, {len(reg.officers)} officers, "
        f"{sum(len(f.contacts) for f in reg.factories.values())} factory contacts"
    )
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from eit.timeutil import ns_to_iso
    from ingest.deadletters import json_printable, open_dead_letters, printable
    from server.config import load_serve_config

    config = load_serve_config(args.config)
    store = open_dead_letters(config.state_url, config.state_path)
    try:
        letters = store.recent(args.limit, args.reason)
        counts = store.counts()
    finally:
        store.close()
    # What a sender put in a topic, a payload or a detail reaches the terminal escaped: an ANSI
    # escape sequence or a bidirectional override is shown, never obeyed.
    if args.json:
        rows = [
            asdict(d)
            | {"received_at": ns_to_iso(d.received_ns), "last_received_at": ns_to_iso(d.last_received_ns)}
            for d in letters
        ]
        print(json_printable(json.dumps(rows, ensure_ascii=False, indent=2)))
    else:
        for d in letters:
            where = f" at {printable(d.location)}" if d.location else ""
            seen = f" (x{d.count}, last {ns_to_iso(d.last_received_ns)})" if d.count > 1 else ""
            print(
                f"#{d.id} {ns_to_iso(d.received_ns)}{seen} {printable(d.topic)} {printable(d.reason)}{where}:"
                f" {printable(d.detail)}"
            )
            print(f"    {printable(d.payload[:200])}")
        print(f"{len(letters)} dead letter(s) shown; by reason: {printable(str(counts))}")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    from server.alertview import AlertPrinter, open_alert_source

    source = open_alert_source(args.config, args.data_dir)
    try:
        alerts = source.store.list(state=args.state, factory=args.factory, limit=args.limit)
    finally:
        source.store.close()
    if args.json:
        print(json.dumps([a.to_json() for a in alerts], ensure_ascii=False, indent=2))
    else:
        for line in AlertPrinter(source.timezone).lines(alerts):
            print(line)
    return 0


DEFAULT_SITE = "examples/town/site.yaml"


def _influx_source(args: argparse.Namespace, password: str | None) -> InfluxSource:
    from dashboards.datasource import InfluxSource

    return InfluxSource(args.influx_url, args.database, args.influx_user, password)


def _dashboards_build(args: argparse.Namespace) -> int:
    from dashboards.build import build_dashboards
    from dashboards.provisioning import provisioning_files, write_files
    from eit.registry import load_registry

    source = _influx_source(args, args.influx_password)
    files = provisioning_files(build_dashboards(load_registry(args.site)), source)
    written = write_files(Path(args.out), files)
    print(f"{len(written)} file(s) written under {args.out}")
    return 0


def _dashboards_push(args: argparse.Namespace) -> int:
    import os

    from dashboards.build import build_dashboards
    from dashboards.push import Pusher, connect
    from eit.registry import load_registry

    token = args.token or os.environ.get("GRAFANA_TOKEN")
    if token is None and args.user is None:
        print(
            "eit: dashboards push: give --token (or GRAFANA_TOKEN), or --user with GRAFANA_PASSWORD",
            file=sys.stderr,
        )
        return 2
    password = os.environ.get(args.influx_password_env) if args.influx_password_env else None
    source = _influx_source(args, password)
    import requests
    from grafana_client.client import GrafanaException

    api = connect(args.url, token=token, user=args.user, password=os.environ.get("GRAFANA_PASSWORD"))
    try:
        report = Pusher(api).push(build_dashboards(load_registry(args.site)), source)
    except GrafanaException as exc:
        print(
            f"eit: dashboards push: Grafana at {args.url} answered {exc.status_code}: {exc.message}",
            file=sys.stderr,
        )
        return 1
    except requests.RequestException as exc:
        print(f"eit: dashboards push: Grafana at {args.url} cannot be reached: {exc}", file=sys.stderr)
        return 1
    # The links are for the public: under the public address of Grafana, not the one this
    # command reached it at (inside the compose network, http://grafana:3000/grafana).
    public = (args.public_url or args.url).rstrip("/")
    for line in report.lines():
        print(line.replace(" /public-dashboards/", f" {public}/public-dashboards/"))
    print(f"{report.changes} change(s) made in Grafana at {args.url}")
    return 1 if report.skipped else 0


def _store_for(args: argparse.Namespace) -> tuple[Store, float]:
    """The store of ``--config serve.yaml``, else the embedded store in ``--data-dir``; and the
    completeness threshold."""
    from ingest.store import open_store
    from ingest.store.sqlite import SqliteSettings
    from server.config import load_serve_config

    if args.config:
        config = load_serve_config(args.config)
        return open_store(config.store), config.rules.completeness
    return open_store(SqliteSettings(path=Path(args.data_dir) / "readings.db")), 0.8


def _recompute_indicators(
    registry: Registry, store: Store, first_ns: int | None, last_ns: int | None
) -> None:
    """The town indicators of the months and years that [first_ns, last_ns] touches, again from the
    store (an import or a recompute may change a closed period)."""
    if first_ns is None or last_ns is None:
        return
    from zoneinfo import ZoneInfo

    from alerts.compliance import local_day
    from alerts.indicators import compute_indicators

    tz = ZoneInfo(registry.timezone)
    compute_indicators(registry, store, local_day(first_ns, tz), local_day(last_ns, tz))


def _import(args: argparse.Namespace) -> int:
    from alerts.importer import import_csv
    from eit.registry import load_registry

    registry = load_registry(args.site)
    store, _ = _store_for(args)
    try:
        result = import_csv(Path(args.file), registry, store)
        _recompute_indicators(registry, store, result.first_ns, result.last_ns)
    except (OSError, ValueError) as exc:
        print(f"eit import: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    for line in result.errors:
        print(line, file=sys.stderr)
    for line in result.summary(args.file, registry.timezone):
        print(line)
    return 0 if result.imported or not result.rows else 1


def _recompute(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from alerts.compliance import day_bounds
    from alerts.recompute import recompute
    from alerts.settings import RuleSettings
    from eit.registry import load_registry

    registry = load_registry(args.site)
    span = _day_span(args, "eit recompute")
    if span is None:
        return 2
    first, last = span
    if last < first:
        print("eit recompute: --to is before --from", file=sys.stderr)
        return 2
    unknown = [f for f in args.factory or [] if f not in registry.factories]
    if unknown:
        print(f"eit recompute: --factory {', '.join(unknown)}: not in {args.site}", file=sys.stderr)
        return 2
    tz = ZoneInfo(registry.timezone)
    start, _ = day_bounds(first, tz)
    _, end = day_bounds(last, tz)
    store, completeness = _store_for(args)
    try:
        from alerts.settings import RuleSettings

        result = recompute(
            registry, store, start, end, args.factory or None, RuleSettings(completeness=completeness)
        )
        _recompute_indicators(registry, store, result.first_ns, result.last_ns)
    finally:
        store.close()
    print(
        f"eit recompute: {result.hours} hours of {result.series} channels recomputed,"
        f" {first} to {last} ({registry.timezone} days)"
    )
    return 0


def _report(args: argparse.Namespace) -> int:

    from alerts.report import compliance_report, render
    from eit.registry import load_registry

    registry = load_registry(args.site)
    span = _day_span(args, "eit report")
    if span is None:
        return 2
    first, last = span
    store, completeness = _store_for(args)
    try:
        report = compliance_report(
            registry,
            store,
            first,
            last,
            args.factory,
            args.completeness or completeness,
        )
        if args.config:  # the state database is known: the duties and the integrity findings
            from alerts.duties import build_duties_job
            from alerts.duties.report import add_duty_sections
            from alerts.state import open_alert_store
            from eit.timeutil import now_ns
            from server.config import load_serve_config

            config = load_serve_config(args.config)
            alerts = open_alert_store(config.state_url, config.state_path)
            try:
                job = build_duties_job(registry, store, alerts)
                add_duty_sections(
                    report, job, first, last, args.factory, now_ns(), officers=not args.without_integrity
                )
            finally:
                alerts.close()
    except ValueError as exc:
        print(f"eit report: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.format in ("pdf", "xlsx"):
        from alerts.report_files import render_file

        if not args.output:
            print(f"eit report: --format {args.format} needs --output FILE", file=sys.stderr)
            return 2
        Path(args.output).write_bytes(render_file(report, args.format, args.lang))
        return 0
    text = render(report, args.format, args.lang)
    _emit(text, args.output)
    return 0


def _day_span(args: argparse.Namespace, command: str) -> tuple[date, date] | None:
    """--from and --to as days; None (said on stderr) when one is not a date."""
    try:
        return date.fromisoformat(args.date_from), date.fromisoformat(args.date_to)
    except ValueError as exc:
        print(f"{command}: --from/--to: {exc} (use 2026-11-01)", file=sys.stderr)
        return None


def _emit(text: str, output: str | None) -> None:
    """A command's text to --output, or to stdout ending with a newline."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _indicators(args: argparse.Namespace) -> int:

    from alerts.indicators import compute_indicators, scoreboard
    from alerts.indicators_render import render
    from eit.registry import load_registry

    registry = load_registry(args.site)
    span = _day_span(args, "eit indicators")
    if span is None:
        return 2
    first, last = span
    store, _ = _store_for(args)
    try:
        if not args.no_compute:
            run, _ = compute_indicators(registry, store, first, last, args.indicator or None)
            print(
                f"eit indicators: {run.contributions} contribution(s) of {len(run.indicators)} indicator(s)"
                f" stored for {run.periods} period(s)",
                file=sys.stderr,
            )
        board = scoreboard(registry, store, first, last, args.public, args.agency)
    except ValueError as exc:
        print(f"eit indicators: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    text = render(board, args.format)
    _emit(text, args.output)
    return 0


def _export_open_data(args: argparse.Namespace) -> int:

    from eit.registry import load_registry
    from server.opendata import write_package

    registry = load_registry(args.site)
    span = _day_span(args, "eit export open-data")
    if span is None:
        return 2
    first, last = span
    store, _ = _store_for(args)
    try:
        written = write_package(registry, store, first, last, Path(args.out))
    except ValueError as exc:
        print(f"eit export open-data: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    rows = sum(n for _, n in written)
    print(f"eit export open-data: {len(written)} resource(s), {rows} row(s) written to {args.out}")
    return 0


def _integrity(args: argparse.Namespace) -> int:

    from alerts.integrity import integrity_report, load_thresholds
    from alerts.integrity.render import render
    from eit.registry import load_registry

    registry = load_registry(args.site)
    span = _day_span(args, "eit integrity")
    if span is None:
        return 2
    first, last = span
    thresholds = load_thresholds(args.thresholds)
    store, _ = _store_for(args)
    try:
        report = integrity_report(registry, store, first, last, args.factory, thresholds)
    except ValueError as exc:
        print(f"eit integrity: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    text = render(report, args.format)
    _emit(text, args.output)
    return 0


def _alert_action(args: argparse.Namespace) -> int:
    from alerts.model import LifecycleError
    from eit.timeutil import now_ns
    from server.alertview import AlertPrinter, open_alert_source

    source = open_alert_source(args.config, args.data_dir)
    store = source.store
    try:
        if args.action == "show":
            alert = store.get(args.id)
            if alert is None:
                print(f"eit alert: no alert #{args.id} in {source.where}", file=sys.stderr)
                return 1
            exceedances = store.exceedances(case_id=args.id)
            responses = store.responses(args.id)
            audit = store.audit(args.id)
            if args.json:
                doc = alert.to_json() | {
                    "exceedances": [e.to_json() for e in exceedances],
                    "responses": [r.to_json() for r in responses],
                    "audit": [e.to_json() for e in audit],
                }
                print(json.dumps(doc, ensure_ascii=False, indent=2))
            else:
                for line in AlertPrinter(source.timezone).detail(alert, exceedances, responses, audit):
                    print(line)
            return 0
        if not args.by:
            print("eit alert: --by WHO is required (the audit trail names who did it)", file=sys.stderr)
            return 2
        now = now_ns()
        if args.action == "ack":
            alert = store.acknowledge(args.id, args.by, now, args.note or "")
        elif args.action == "assign":
            if not args.to:
                print("eit alert assign: --to OFFICER is required", file=sys.stderr)
                return 2
            alert = store.assign(args.id, args.by, args.to, now)
        elif args.action == "note":
            alert = store.add_note(args.id, args.by, args.note or "", now)
        elif args.action == "resolve":
            alert = store.resolve_id(args.id, args.by, now, args.note or "")
        else:
            alert = store.close_alert(args.id, args.by, now, args.note or "")
    except LifecycleError as exc:
        print(f"eit alert: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"#{alert.id} {alert.state} {alert.factory}/{alert.device} {alert.parameter} [{alert.rule}]")
    return 0


def _api(args: argparse.Namespace) -> int:
    from server.config import load_serve_config
    from server.serve import run_api

    return run_api(load_serve_config(args.config))


def _bench(args: argparse.Namespace) -> int:
    """`eit bench`: bench/run.py of the source checkout (it starts Mosquitto and InfluxDB the way
    the tests do, so it needs the repository, not only the installed package)."""
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    if not (repo / "bench" / "run.py").exists():
        print(
            "eit bench: runs from a source checkout of EIT Monitor (bench/ and testbed/ beside server/);"
            f" none at {repo}",
            file=sys.stderr,
        )
        return 2
    import subprocess

    # The harness runs as its own program: the shipped server never imports the checkout's tools.
    path = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.call([sys.executable, str(repo / "bench" / "run.py"), *args.bench_args], env=env)


def _read_password(args: argparse.Namespace) -> tuple[str | None, bool]:
    """The password from --password-file or --password-env; else a new random one (True: made
    here, to be shown once)."""
    import os

    from server.passwords import generate_password

    if args.password_file:
        text = Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        return text, False
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            print(f"eit users: --password-env: variable {args.password_env} is not set", file=sys.stderr)
            return None, False
        return value, False
    return generate_password(), True


def _registry_has_officer(site: Path, officer: str) -> bool:
    """Whether the site registry has ``officer``; says which it has when not."""
    from eit.registry import load_registry

    registry = load_registry(site)
    if officer in registry.officers:
        return True
    known = ", ".join(registry.officers) or "none"
    print(f"eit users: --officer: no officer '{officer}' in {site} (it has: {known})", file=sys.stderr)
    return False


def _users(args: argparse.Namespace) -> int:
    from eit.timeutil import now_ns
    from server.accounts import AccountError, open_accounts
    from server.config import load_serve_config

    config = load_serve_config(args.config)
    accounts = open_accounts(config.state_url, config.state_path)
    try:
        if args.users_command == "list":
            for u in accounts.list_users():
                where = f" factory {u.factory}" if u.factory else ""
                who = f" registry officer {u.officer}" if u.officer else ""
                print(f"{u.name:24} {u.role:10}{where}{who}{' (disabled)' if u.disabled else ''}")
            return 0
        officer = getattr(args, "officer", None)
        if officer is not None and not _registry_has_officer(config.site, officer):
            return 2
        if args.users_command == "link":
            user = accounts.set_officer(args.name, None if args.none else officer)
            linked = f"registry officer {user.officer}" if user.officer else "no registry officer"
            print(f"{user.name}: {linked}")
            return 0
        if args.users_command in ("disable", "enable"):
            user = accounts.set_disabled(args.name, args.users_command == "disable")
            print(f"{user.name}: {'disabled' if user.disabled else 'enabled'}")
            return 0
        password, made = _read_password(args)
        if password is None:
            return 2
        if args.users_command == "passwd":
            accounts.set_password(args.name, password)
            print(f"{args.name}: password changed; its tokens are revoked")
        else:
            if args.role == "operator" and args.factory:
                from eit.registry import load_registry

                registry = load_registry(config.site)
                if args.factory not in registry.factories:
                    known = ", ".join(registry.factories)
                    print(
                        f"eit users: --factory: no factory '{args.factory}' in {config.site} ({known})",
                        file=sys.stderr,
                    )
                    return 2
            user = accounts.add_user(args.name, args.role, password, now_ns(), args.factory, officer)
            where = f" of factory {user.factory}" if user.factory else ""
            who = f", registry officer {user.officer}" if user.officer else ""
            print(f"{user.name}: {user.role}{where}{who} added")
        if made:
            # Shown once, on the terminal only: it is not logged or stored in the clear.
            print(f"password: {password}")
        return 0
    except (AccountError, OSError) as exc:
        print(f"eit users: {exc}", file=sys.stderr)
        return 2
    finally:
        accounts.close()


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
    p = edge_sub.add_parser(
        "keygen",
        help="make each device's signing key (Ed25519, owner-only file) and print the public keys "
        "to register",
    )
    p.add_argument("--config", required=True, help="agent configuration file (YAML) with signing.keys")
    p.add_argument("--device", action="append", default=None, help="only this device (repeatable)")
    p.add_argument("--rotate", action="store_true", help="move the existing key aside and make a new one")
    p.set_defaults(func=_edge_keygen)

    p = sub.add_parser("demo", help="run the example town on one machine, nothing else needed")
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS (default: until Ctrl-C)")
    p.add_argument(
        "--data-dir", default="demo-data", help="where the store and alert state go (default: ./demo-data)"
    )
    p.add_argument(
        "--site", default=None, help="folder with site.yaml and edge/*.yaml (default: examples/town)"
    )
    p.add_argument("--http-port", type=int, default=8080, help="HTTP port (another one when taken)")
    p.add_argument(
        "--history-hours",
        type=float,
        default=24.0,
        help="on the first run, simulate this many past hours so the charts have a history (0: none)",
    )
    p.add_argument(
        "--summary-s", type=float, default=10.0, help="print a summary line every SECONDS (default 10)"
    )
    p.add_argument("--every-reading", action="store_true", help="print every reading as well")
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

    from server.devices import add_parsers as add_devices_parsers

    add_devices_parsers(sub)

    from server.cluster import add_parsers as add_cluster_parsers

    add_cluster_parsers(sub)

    from server.duties_cli import add_parsers as add_duties_parsers

    add_duties_parsers(sub)

    def alert_state_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config", default=None, help="serve.yaml naming the state database (default: --data-dir)"
        )
        p.add_argument(
            "--data-dir",
            default="data",
            help="the folder eit demo or eit serve keeps its data in, when no --config (default: ./data;"
            " the demo's: demo-data)",
        )

    p = sub.add_parser("alerts", help="list alerts (of eit serve or eit demo)")
    alert_state_options(p)
    p.add_argument("--state", choices=("open", "acknowledged", "resolved", "closed", "active"), default=None)
    p.add_argument("--factory", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="JSON (UTC times) instead of text for people")
    p.set_defaults(func=_alerts)

    dash = sub.add_parser(
        "dashboards", help="Grafana dashboards as code: provisioning files, push to Grafana"
    )
    dash_sub = dash.add_subparsers(dest="dashboards_command", required=True, metavar="COMMAND")

    def influx_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--site", default=DEFAULT_SITE, help=f"site registry (default: {DEFAULT_SITE})")
        p.add_argument(
            "--influx-url", default="http://influxdb:8086", help="InfluxDB URL as Grafana reaches it"
        )
        p.add_argument("--database", default="eit", help="InfluxDB database (v1 API; on 2.x the DBRP name)")
        p.add_argument("--influx-user", default="grafana", help="InfluxDB v1 user Grafana reads as")

    p = dash_sub.add_parser("build", help="write the dashboards and provisioning files (deploy/grafana)")
    influx_options(p)
    p.add_argument("--out", default="deploy/grafana", help="folder to write (default: deploy/grafana)")
    p.add_argument(
        "--influx-password",
        default="$EIT_INFLUX_GRAFANA_PASSWORD",
        help="written into the data source file; Grafana expands $VARIABLES from its environment",
    )
    p.set_defaults(func=_dashboards_build)

    p = dash_sub.add_parser("push", help="create or update folders, data source, dashboards, public access")
    p.add_argument("--url", required=True, help="Grafana URL, e.g. http://localhost:3000")
    p.add_argument(
        "--public-url",
        default=None,
        help="Grafana's address for the public, which the printed public links start with, e.g. "
        "https://eit.example.go.th/grafana (default: --url)",
    )
    p.add_argument("--token", default=None, help="service account token (default: $GRAFANA_TOKEN)")
    p.add_argument("--user", default=None, help="or a Grafana admin user (password in $GRAFANA_PASSWORD)")
    influx_options(p)
    p.add_argument(
        "--influx-password-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the InfluxDB password",
    )
    p.set_defaults(func=_dashboards_push)

    p = sub.add_parser("alert", help="act on one alert: ack, assign, note, resolve, close, show")
    p.add_argument("action", choices=("ack", "assign", "note", "resolve", "close", "show"))
    p.add_argument("id", type=int)
    alert_state_options(p)
    p.add_argument("--json", action="store_true", help="show: the alert as JSON (UTC times)")
    p.add_argument("--by", default=None, help="who does it (an officer id), kept in the audit trail")
    p.add_argument("--note", default=None)
    p.add_argument("--to", default=None, help="assign: the officer to assign it to")
    p.set_defaults(func=_alert_action)

    p = sub.add_parser("import", help="load historical readings from CSV into the store")
    p.add_argument("--site", required=True, help="site registry (YAML)")
    p.add_argument("--config", default=None, help="serve.yaml naming the store (default: --data-dir)")
    p.add_argument(
        "--data-dir", default="data", help="embedded store folder when no --config (default: ./data)"
    )
    p.add_argument("file", help="CSV with columns time, factory, device, channel, value, flag")
    p.set_defaults(func=_import)

    p = sub.add_parser(
        "recompute",
        help="rerun the rules over stored readings: hourly, rolling, daily, AQI, energy (no alerts)",
    )
    p.add_argument("--site", required=True, help="site registry (YAML)")
    p.add_argument("--from", dest="date_from", required=True, help="first day (the town's time zone)")
    p.add_argument("--to", dest="date_to", required=True, help="last day, inclusive")
    p.add_argument("--factory", action="append", help="only this factory (repeatable; default: all)")
    p.add_argument("--config", default=None, help="serve.yaml naming the store (default: --data-dir)")
    p.add_argument(
        "--data-dir", default="data", help="embedded store folder when no --config (default: ./data)"
    )
    p.set_defaults(func=_recompute)

    p = sub.add_parser(
        "indicators",
        help="compute and store the town indicators for the months and years of a period, then show them",
    )
    p.add_argument("--site", required=True, help="site registry (YAML)")
    p.add_argument("--from", dest="date_from", required=True, help="first day (the town's time zone)")
    p.add_argument("--to", dest="date_to", required=True, help="last day, inclusive")
    p.add_argument("--format", choices=("json", "csv", "html"), default="json")
    p.add_argument("--output", default=None, help="write to this file instead of standard output")
    p.add_argument("--indicator", action="append", help="only this indicator (repeatable; default: all)")
    p.add_argument("--agency", default=None, help="show only the indicators this agency owns")
    p.add_argument("--public", action="store_true", help="the public figures: public factories only (N of M)")
    p.add_argument("--no-compute", action="store_true", help="show what is stored, compute nothing")
    p.add_argument("--config", default=None, help="serve.yaml naming the store (default: --data-dir)")
    p.add_argument(
        "--data-dir", default="data", help="embedded store folder when no --config (default: ./data)"
    )
    p.set_defaults(func=_indicators)

    export = sub.add_parser("export", help="exports")
    export_sub = export.add_subparsers(dest="export_command", required=True, metavar="COMMAND")
    p = export_sub.add_parser(
        "open-data", help="a Frictionless Data Package of what the public is shown (public factories)"
    )
    p.add_argument("--site", required=True, help="site registry (YAML)")
    p.add_argument("--from", dest="date_from", required=True, help="first day (the town's time zone)")
    p.add_argument("--to", dest="date_to", required=True, help="last day, inclusive")
    p.add_argument("--out", required=True, help="folder to write datapackage.json and the CSV files to")
    p.add_argument("--config", default=None, help="serve.yaml naming the store (default: --data-dir)")
    p.add_argument(
        "--data-dir", default="data", help="embedded store folder when no --config (default: ./data)"
    )
    p.set_defaults(func=_export_open_data)

    rep = sub.add_parser("report", help="reports")
    rep_sub = rep.add_subparsers(dest="report_command", required=True, metavar="COMMAND")
    p = rep_sub.add_parser("compliance", help="valid hours, completeness, exceedances, invalid hours")
    p.add_argument("--site", required=True, help="site registry (YAML)")
    p.add_argument(
        "--from", dest="date_from", required=True, help="first day (Asia/Bangkok), e.g. 2026-11-01"
    )
    p.add_argument("--to", dest="date_to", required=True, help="last day, inclusive")
    p.add_argument("--factory", default=None)
    p.add_argument("--format", choices=("json", "csv", "html", "pdf", "xlsx"), default="json")
    p.add_argument("--lang", choices=("th", "en"), default="en", help="language of html, pdf and xlsx")
    p.add_argument(
        "--output", default=None, help="write to this file instead of standard output (needed for pdf, xlsx)"
    )
    p.add_argument("--completeness", type=float, default=None, help="threshold (default 0.8 or the config's)")
    p.add_argument(
        "--without-integrity",
        action="store_true",
        help="leave out the officers' integrity section (a copy for a factory); with --config the"
        " report carries the duties and the integrity findings with their dispositions",
    )
    p.add_argument("--config", default=None, help="serve.yaml naming the store (default: --data-dir)")
    p.add_argument(
        "--data-dir", default="data", help="embedded store folder when no --config (default: ./data)"
    )
    p.set_defaults(func=_report)

    p = sub.add_parser(
        "integrity",
        help="data-integrity findings for officers (O2, limit hugging, smoothing, replay, flags, channels)",
    )
    p.add_argument("--site", required=True, help="site registry (YAML)")
    p.add_argument("--from", dest="date_from", required=True, help="first day (the town's time zone)")
    p.add_argument("--to", dest="date_to", required=True, help="last day, inclusive")
    p.add_argument("--factory", default=None)
    p.add_argument("--format", choices=("json", "csv", "html"), default="json")
    p.add_argument("--output", default=None, help="write to this file instead of standard output")
    p.add_argument(
        "--thresholds", default=None, help="a thresholds file (default: alerts/integrity/thresholds.yaml)"
    )
    p.add_argument("--config", default=None, help="serve.yaml naming the store (default: --data-dir)")
    p.add_argument(
        "--data-dir", default="data", help="embedded store folder when no --config (default: ./data)"
    )
    p.set_defaults(func=_integrity)

    p = sub.add_parser(
        "api", help="serve the HTTP API and web pages alone (the store and state of eit serve)"
    )
    p.add_argument("--config", required=True, help="server configuration file (YAML)")
    p.set_defaults(func=_api)

    p = sub.add_parser(
        "bench",
        help="benchmark the ingest against baselines (--quick: under 5 minutes; --full; --help)",
        add_help=False,  # its options are bench/run.py's own: `eit bench --help`
    )
    p.set_defaults(func=_bench, bench_args=[])

    users = sub.add_parser("users", help="accounts of the HTTP API and web pages")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    for name, text in (("add", "add an account"), ("passwd", "set a new password (revokes its tokens)")):
        p = users_sub.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="server configuration file (YAML)")
        if name == "add":
            p.add_argument("--role", required=True, choices=("officer", "supervisor", "admin", "operator"))
            p.add_argument("--factory", default=None, help="the factory of an operator account")
            p.add_argument(
                "--officer",
                default=None,
                metavar="ID",
                help="the site registry's officer this account logs in as (officer roles)",
            )
        secret = p.add_mutually_exclusive_group()
        secret.add_argument("--password-file", default=None, help="read the password from this file")
        secret.add_argument("--password-env", default=None, help="read the password from this variable")
        p.add_argument("name")
        p.set_defaults(func=_users)
    p = users_sub.add_parser("link", help="set the site registry's officer an account logs in as")
    p.add_argument("--config", required=True, help="server configuration file (YAML)")
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--officer", default=None, metavar="ID", help="an officer id of the site registry")
    link.add_argument("--none", action="store_true", help="the account is no registry officer")
    p.add_argument("name")
    p.set_defaults(func=_users)
    for name, text in (
        ("list", "list the accounts"),
        ("disable", "disable an account"),
        ("enable", "enable it again"),
    ):
        p = users_sub.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="server configuration file (YAML)")
        if name != "list":
            p.add_argument("name")
        p.set_defaults(func=_users)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # The demo prints what happens itself; its log shows only warnings unless asked.
    # So does `eit edge check`: its report is the output.
    quiet = args.command == "demo" or getattr(args, "edge_command", None) == "check"
    default_level = "WARNING" if quiet else None
    setup_logging(args.log_level or default_level, args.log_format)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        for problem in exc.problems:  # one line each, every problem found
            print(f"eit: configuration error: {problem}", file=sys.stderr)
        return 2
    except EitError as exc:  # a database or service the command needs, named with what went wrong
        print(f"eit: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
