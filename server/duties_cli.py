"""`eit duties ...` and `eit integrity-findings ...`: the duties of WPMS and CEMS monitors and the
officers' integrity findings, on the store and state database a serve.yaml names (the same records
the HTTP API and the duties job use)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eit.timeutil import now_ns, parse_iso_ns

if TYPE_CHECKING:
    from alerts.duties import DutiesJob
    from eit.registry import Factory

ACTOR_PREFIX = "cli:"


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[DutiesJob]:
    from alerts.duties import build_duties_job
    from alerts.state import open_alert_store
    from eit.registry import load_registry
    from ingest.store import open_store
    from server.config import load_serve_config

    config = load_serve_config(args.config)
    registry = load_registry(config.site)
    store = open_store(config.store)
    try:
        alerts = open_alert_store(config.state_url, config.state_path)
        try:
            yield build_duties_job(registry, store, alerts)
        finally:
            alerts.close()
    finally:
        store.close()


class _Refused(Exception):
    """A command's input is wrong: the message names the option and what is wrong."""


def _time(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_iso_ns(text)
    except ValueError as exc:
        raise _Refused(f"{option} {text!r}: {exc}") from None


def _actor(args: argparse.Namespace) -> str:
    return str(args.actor) if args.actor else ACTOR_PREFIX + getpass.getuser()


def _factory(job: DutiesJob, factory_id: str) -> Factory:
    f = job.registry.factories.get(factory_id)
    if f is None:
        raise _Refused(
            f"--factory {factory_id!r}: not in the site registry ({', '.join(job.registry.factories)})"
        )
    return f


def _device(job: DutiesJob, factory_id: str, device: str, system: str) -> None:
    f = _factory(job, factory_id)
    d = f.devices.get(device)
    if d is None:
        raise _Refused(
            f"--device {device!r}: factory {factory_id} has no such device ({', '.join(f.devices)})"
        )
    if system == "wpms" and not (f.wpms and d.kind == "effluent"):
        raise _Refused(f"--device {device!r}: no WPMS monitor (a `wpms: true` factory's effluent device)")
    if system == "cems" and not (f.cems and d.kind == "stack"):
        raise _Refused(f"--device {device!r}: no CEMS (a `cems: true` factory's stack device)")


def _attach(job: DutiesJob, factory: str, path: str | None, actor: str) -> int | None:
    if path is None:
        return None
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise _Refused(f"--attach {path}: {exc.strerror}") from None
    return job.duties.add_attachment(factory, Path(path).name, content, actor, now_ns()).id


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _run(args: argparse.Namespace) -> int:
    from alerts.duties.model import DutyError

    try:
        with _opened(args) as job:
            _print(args.action(job, args))
    except (_Refused, DutyError) as exc:
        print(f"eit {args.command} {args.duties_command}: {exc}", file=sys.stderr)
        return 2
    return 0


# -- actions -----------------------------------------------------------------------------------------
def _notices(job: DutiesJob, args: argparse.Namespace) -> Any:
    if args.factory:
        _factory(job, args.factory)
    return [n.to_json() for n in job.duties.notices(args.factory, kind=args.kind, state=args.state)]


def _file(job: DutiesJob, args: argparse.Namespace) -> Any:
    _device(job, args.factory, args.device, args.system)
    start = _time("--start", args.start)
    assert start is not None
    end = _time("--end", args.end)
    notice = job.duties.file_notice(
        args.system, args.kind, args.factory, args.device, start, end, args.cause, _actor(args), now_ns()
    )
    return notice.to_json()


def _decide(job: DutiesJob, args: argparse.Namespace) -> Any:
    notice = job.duties.decide_shutdown(
        args.id, args.duties_command == "accept", _actor(args), now_ns(), args.note
    )
    return notice.to_json()


def _fix(job: DutiesJob, args: argparse.Namespace) -> Any:
    fixed = _time("--fixed-at", args.fixed_at)
    assert fixed is not None
    return job.duties.fix(args.id, fixed, _actor(args), now_ns(), args.note).to_json()


def _lab_check(job: DutiesJob, args: argparse.Namespace) -> Any:
    from alerts.duties.report import online_value_at

    _device(job, args.factory, args.device, "wpms")
    ch = job.registry.factories[args.factory].devices[args.device].channels.get(args.channel)
    if ch is None:
        raise _Refused(f"--channel {args.channel!r}: device {args.factory}/{args.device} has no such channel")
    sampled = _time("--sampled-at", args.sampled_at)
    assert sampled is not None
    actor = _actor(args)
    attachment = _attach(job, args.factory, args.attach, actor)
    online = online_value_at(job.store, args.factory, args.device, args.channel, sampled)
    check = job.duties.add_lab_check(
        args.factory,
        args.device,
        args.channel,
        sampled,
        args.lab_value,
        online,
        ch.unit,
        args.laboratory,
        actor,
        now_ns(),
        attachment,
    )
    return check.to_json()


def _stack_test(job: DutiesJob, args: argparse.Namespace) -> Any:
    results: dict[str, float] = {}
    for item in args.result:
        name, sep, value = item.partition("=")
        try:
            results[name] = float(value)
        except ValueError:
            raise _Refused(f"--result {item!r}: give CHANNEL=VALUE, e.g. so2=41.5") from None
        if not sep or not name:
            raise _Refused(f"--result {item!r}: give CHANNEL=VALUE, e.g. so2=41.5")
    tested = _time("--tested-at", args.tested_at)
    assert tested is not None
    notice = job.duties.notice(args.notice)
    actor = _actor(args)
    attachment = _attach(job, notice.factory, args.attach, actor)
    return job.duties.add_stack_test(
        args.notice, tested, results, args.laboratory, actor, now_ns(), attachment
    ).to_json()


def _report(job: DutiesJob, args: argparse.Namespace) -> Any:
    from alerts.duties.report import duties_report

    first, last = _days(args)
    if args.factory:
        _factory(job, args.factory)
    return duties_report(job, first, last, args.factory, now_ns())


def _days(args: argparse.Namespace) -> tuple[date, date]:
    try:
        first, last = date.fromisoformat(args.date_from), date.fromisoformat(args.date_to)
    except ValueError as exc:
        raise _Refused(f"--from/--to: {exc} (use 2026-11-01)") from None
    if last < first:
        raise _Refused(f"--to {last} is before --from {first}")
    return first, last


def _job_run(job: DutiesJob, args: argparse.Namespace) -> Any:
    at = _time("--at", args.at) or now_ns()
    job.integrity_monthly = not args.no_integrity
    r = job.run_once(at)
    return {
        "inferred": r.inferred,
        "fixed": r.fixed,
        "cases_opened": r.opened,
        "cases_ended": r.ended,
        "integrity_month": r.integrity_month,
        "integrity_new": r.integrity_new,
    }


def _reminders(job: DutiesJob, args: argparse.Namespace) -> Any:
    return job.reminders(_time("--at", args.at) or now_ns(), args.factory)


def _findings(job: DutiesJob, args: argparse.Namespace) -> Any:
    return [
        f.to_json()
        for f in job.duties.findings([args.month] if args.month else None, args.factory, args.disposition)
    ]


def _dispose(job: DutiesJob, args: argparse.Namespace) -> Any:
    found = job.duties.dispose(args.id, args.disposition, _actor(args), now_ns(), args.note)
    return found.to_json() | {"audit": [a.to_json() for a in job.duties.audit(f"finding/{args.id}")]}


def _record(job: DutiesJob, args: argparse.Namespace) -> Any:
    first, last = _days(args)
    new = job.run_integrity(first, last, now_ns(), _actor(args))
    return {"new": new, "findings": len(job.duties.findings())}


# -- parsers -----------------------------------------------------------------------------------------
def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    duties = sub.add_parser("duties", help="WPMS and CEMS duties: notices, lab checks, stack tests, report")
    dsub = duties.add_subparsers(dest="duties_command", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, text: str, action: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="serve.yaml naming the store and state database")
        p.add_argument("--actor", default=None, help="who does this (default: cli:<login name>)")
        p.set_defaults(func=_run, action=action)
        return p

    p = command(dsub, "notices", "list malfunction and shutdown notices (JSON)", _notices)
    p.add_argument("--factory", default=None)
    p.add_argument("--kind", choices=("malfunction", "shutdown"), default=None)
    p.add_argument("--state", choices=("open", "fixed", "filed", "accepted", "rejected"), default=None)

    p = command(dsub, "file", "file a malfunction or planned-shutdown notice", _file)
    p.add_argument("--system", required=True, choices=("wpms", "cems"))
    p.add_argument("--kind", required=True, choices=("malfunction", "shutdown"))
    p.add_argument("--factory", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--start", required=True, help="RFC 3339 time, e.g. 2026-11-10T15:00:00+07:00")
    p.add_argument("--end", default=None, help="the window's end (a shutdown needs one)")
    p.add_argument("--cause", default="")

    for name, text in (
        ("accept", "accept a shutdown window (officers)"),
        ("reject", "reject a shutdown window"),
    ):
        p = command(dsub, name, text, _decide)
        p.add_argument("id", type=int)
        p.add_argument("--note", default="")

    p = command(dsub, "fix", "a malfunction ends: the monitor works again", _fix)
    p.add_argument("id", type=int)
    p.add_argument("--fixed-at", required=True, help="RFC 3339 time")
    p.add_argument("--note", default="")

    p = command(
        dsub, "lab-check", "a grab sample's lab value against the online value (E = M - T)", _lab_check
    )
    p.add_argument("--factory", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--channel", required=True, help="bod or cod")
    p.add_argument("--sampled-at", required=True, help="RFC 3339 time of the grab sample")
    p.add_argument("--lab-value", required=True, type=float, help="T: the lab's value")
    p.add_argument("--laboratory", default="")
    p.add_argument("--attach", default=None, help="the lab report (PDF)")

    p = command(dsub, "stack-test", "the substitute stack test of a CEMS malfunction", _stack_test)
    p.add_argument("--notice", required=True, type=int, help="the CEMS malfunction notice")
    p.add_argument("--tested-at", required=True, help="RFC 3339 time")
    p.add_argument("--result", action="append", required=True, help="CHANNEL=VALUE (repeatable)")
    p.add_argument("--laboratory", default="")
    p.add_argument("--attach", default=None, help="the stack-test report (PDF)")

    p = command(dsub, "report", "the duties of a period (JSON)", _report)
    p.add_argument("--from", dest="date_from", required=True)
    p.add_argument("--to", dest="date_to", required=True)
    p.add_argument("--factory", default=None)

    p = command(dsub, "reminders", "lab checks due this month and not entered yet", _reminders)
    p.add_argument("--factory", default=None)
    p.add_argument("--at", default=None, help="as of this RFC 3339 time (default: now)")

    p = command(dsub, "run", "run the duties job once: infer, open cases of missed deadlines", _job_run)
    p.add_argument("--at", default=None, help="as of this RFC 3339 time (default: now)")
    p.add_argument("--no-integrity", action="store_true", help="skip the monthly integrity run")

    findings = sub.add_parser("integrity-findings", help="the officers' integrity findings and dispositions")
    fsub = findings.add_subparsers(dest="duties_command", required=True, metavar="COMMAND")
    p = command(fsub, "list", "list findings with their dispositions (JSON)", _findings)
    p.add_argument("--month", default=None, help="YYYY-MM")
    p.add_argument("--factory", default=None)
    p.add_argument("--disposition", choices=("confirmed", "dismissed", "inspect", "none"), default=None)
    p = command(fsub, "dispose", "an officer's disposition of a finding", _dispose)
    p.add_argument("id")
    p.add_argument("--disposition", required=True, choices=("confirmed", "dismissed", "inspect"))
    p.add_argument("--note", default="")
    p = command(
        fsub, "record", "run the integrity analytics over a period now and keep the findings", _record
    )
    p.add_argument("--from", dest="date_from", required=True)
    p.add_argument("--to", dest="date_to", required=True)
