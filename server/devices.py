"""`eit devices init|add|revoke`: the broker's logins (server/brokerauth.py, docs/broker.md).

Nothing here ever asks a question: passwords come from a file or a variable, or are made here
and shown once (or written to ``--password-out``), and replacing a password needs ``--rotate``.
So the commands run the same from a terminal, a script or ``docker compose run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from server.brokerauth import (
    HEALTH_LOGIN,
    AddResult,
    BrokerAuthError,
    DynsecControl,
    InitialLogins,
    Role,
    add_logins,
    check_factory,
    check_id,
    factory_logins,
    factory_role,
    generate_password,
    health_role,
    ingest_logins,
    ingest_role,
    initial_config,
    parse_owner,
    revoke_logins,
    write_initial_config,
)


class _Refused(Exception):
    """The command cannot run as given; the message says why (exit status 2)."""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devices = sub.add_parser(
        "devices",
        help="broker logins: one per connection, bound to its client id (Mosquitto dynamic security)",
    )
    devices_sub = devices.add_subparsers(dest="devices_command", required=True, metavar="COMMAND")

    p = devices_sub.add_parser(
        "init",
        help="write the broker's first dynamic-security file (administrator, ingest, health check)",
    )
    p.add_argument("--file", required=True, help="the file mosquitto.conf names in plugin_opt_config_file")
    p.add_argument(
        "--owner",
        default=None,
        help="UID:GID of the broker's user, who must own the file and its folder (1883:1883 in the "
        "eclipse-mosquitto image); needs root",
    )
    p.add_argument(
        "--ingest-client-id", default="eit-ingest", help="the ingest's mqtt.client_id (default: eit-ingest)"
    )
    for who in ("admin", "ingest", "health"):
        group = p.add_mutually_exclusive_group()
        group.add_argument(f"--{who}-password-file", default=None, help=f"the {who} login's password")
        group.add_argument(f"--{who}-password-env", default=None, help="... or from this variable")
    p.set_defaults(func=run_init)

    p = devices_sub.add_parser(
        "add",
        help="make (or with --rotate, give a new password to) the logins of a factory's device "
        "connections: they may publish only under eit/FACTORY/#",
    )
    p.add_argument("name", metavar="FACTORY", help="the factory's id in the site registry")
    p.add_argument("--config", required=True, help="server configuration (site, mqtt, broker sections)")
    p.add_argument(
        "--device",
        action="append",
        default=None,
        help="only this device's connection (repeatable; default: every device of the factory)",
    )
    p.add_argument(
        "--client-id",
        default=None,
        help="the agent's mqtt.client_id, before '-DEVICE' (default: the factory id)",
    )
    p.add_argument("--rotate", action="store_true", help="replace the password of logins that exist")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--ingest", action="store_true", help="FACTORY is the ingest's client id: its connections' logins"
    )
    kind.add_argument("--health", action="store_true", help="the health check's login (FACTORY: eit-health)")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--password-file", default=None, help="the password to give (default: a new one)")
    secret.add_argument("--password-env", default=None, help="... or from this variable")
    p.add_argument(
        "--password-out", default=None, help="write a new password to this file (mode 600), not the screen"
    )
    p.set_defaults(func=run_add)

    p = devices_sub.add_parser(
        "revoke", help="delete a factory's logins (or one device's); the broker closes their connections"
    )
    p.add_argument("name", metavar="FACTORY")
    p.add_argument("--config", required=True, help="server configuration (site, mqtt, broker sections)")
    p.add_argument("--device", action="append", default=None, help="only this device's login (repeatable)")
    p.add_argument("--client-id", default=None, help="the agent's mqtt.client_id (default: the factory id)")
    p.set_defaults(func=run_revoke)

    from server.devicekeys_cli import add_parsers as add_key_parsers

    add_key_parsers(devices_sub)


def _password(file: str | None, env: str | None, option: str) -> tuple[str, bool]:
    """(password, made here) from a file, a variable or a new random one."""
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise _Refused(f"{option}-file {file}: {exc.strerror}") from None
        if not text:
            raise _Refused(f"{option}-file {file} is empty")
        return text, False
    if env:
        value = os.environ.get(env)
        if not value:
            raise _Refused(f"{option}-env: variable {env} is not set or empty")
        return value, False
    return generate_password(), True


def _fail(exc: Exception) -> int:
    print(f"eit devices: {exc}", file=sys.stderr)
    return 2


def run_init(args: argparse.Namespace) -> int:
    try:
        owner = parse_owner(args.owner) if args.owner else None
        made: dict[str, str] = {}
        passwords: dict[str, str] = {}
        for who in ("admin", "ingest", "health"):
            file, env = getattr(args, f"{who}_password_file"), getattr(args, f"{who}_password_env")
            value, new = _password(file, env, f"--{who}-password")
            passwords[who] = value
            if new:
                made[who] = value
        logins = InitialLogins(
            passwords["admin"], passwords["ingest"], passwords["health"], args.ingest_client_id
        )
        path = Path(args.file)
        write_initial_config(path, initial_config(logins), owner)
    except (_Refused, BrokerAuthError) as exc:
        return _fail(exc)
    print(f"wrote {path}" + (f" (owner {owner[0]}:{owner[1]}, mode 640)" if owner else " (mode 640)"))
    print("  eit-admin      the administrator (`eit devices add|revoke`), client id eit-admin")
    print(f"  {', '.join(ingest_logins(args.ingest_client_id))}   the ingest's connections")
    print(f"  {HEALTH_LOGIN}     the health check, client id {HEALTH_LOGIN}")
    for who, value in made.items():
        print(f"  {who} password: {value}   (made here, shown once)")
    print("The broker reads this file when it starts and keeps it from then on.")
    return 0


def _control(config_path: str) -> tuple[DynsecControl, Path, dict[str, list[str]]]:
    from eit.registry import load_registry
    from server.config import load_serve_config

    config = load_serve_config(config_path)
    registry = load_registry(config.site)
    devices = {fid: list(f.devices) for fid, f in registry.factories.items()}
    admin = config.broker.settings(config.mqtt)
    if admin.password is None:
        raise _Refused(f"{config_path}: broker.password (or password_file, password_env) is not set")
    return DynsecControl(admin, config.broker.timeout_s), config.site, devices


def _factory_names(
    args: argparse.Namespace, site: Path, devices: dict[str, list[str]]
) -> tuple[Role, list[str]]:
    factory = args.name
    check_factory(factory)
    if factory not in devices:
        raise _Refused(f"factory '{factory}' is not in the site registry {site}: add it there first")
    wanted = args.device or devices[factory]
    unknown = [d for d in wanted if d not in devices[factory]]
    if unknown:
        raise _Refused(
            f"factory '{factory}' has no device {', '.join(unknown)} in {site} "
            f"(it has {', '.join(devices[factory]) or 'none'})"
        )
    client_id = args.client_id or factory
    check_id(client_id, "client id")
    return factory_role(factory), factory_logins(client_id, wanted)


def run_add(args: argparse.Namespace) -> int:
    try:
        password, made = _password(args.password_file, args.password_env, "--password")
        control, site, devices = _control(args.config)
        if args.ingest:
            check_id(args.name, "client id")
            role, names, who = ingest_role(), ingest_logins(args.name), "the ingest"
        elif args.health:
            if args.name != HEALTH_LOGIN:
                raise _Refused(f"the health check's login is {HEALTH_LOGIN}, not {args.name}")
            role, names, who = health_role(), [HEALTH_LOGIN], "the health check"
        else:
            role, names = _factory_names(args, site, devices)
            who = f"factory {args.name}"
        with control:
            result = add_logins(control, role, names, password, rotate=args.rotate)
    except (_Refused, BrokerAuthError) as exc:
        return _fail(exc)
    _print_added(args, who, result, made)
    return 0


def _print_added(args: argparse.Namespace, who: str, result: AddResult, made: bool) -> None:
    if result.created:
        print(f"{who}: {len(result.created)} login(s) created, each bound to the client id of its name:")
        for name in result.created:
            print(f"  {name}")
    if result.rotated:
        print(f"{who}: new password for {len(result.rotated)} login(s); their connections were closed:")
        for name in result.rotated:
            print(f"  {name}")
    print(f"  allowed:  {result.role.allowed()}")
    if made and args.password_out:
        out = Path(args.password_out)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(result.password + "\n")
        print(f"  password: written to {out} (mode 600)")
    elif made:
        print(f"  password: {result.password}")
        print("            (shown once; every login above has it)")
    if not (args.ingest or args.health):
        print("The agent's mqtt section:")
        print(f"  client_id: {args.client_id or args.name}")
        print('  username: "{client_id}"      # each device connection logs in as itself')
        print("  password_file: ...           # the password above")
    print("Applied by the running broker at once; it keeps them in its dynamic-security file.")


def run_revoke(args: argparse.Namespace) -> int:
    # Not checked against the site registry: a factory or device taken out of it keeps its
    # logins until they are revoked.
    try:
        control, _, _ = _control(args.config)
        check_factory(args.name)
        client_id = args.client_id or args.name
        check_id(client_id, "client id")
        role, names = factory_role(args.name), factory_logins(client_id, args.device or [])
        with control:
            revoked = revoke_logins(control, role, names if args.device else None)
    except (_Refused, BrokerAuthError) as exc:
        return _fail(exc)
    print(f"factory {args.name}: {len(revoked)} login(s) revoked; the broker closed their connections:")
    for name in revoked:
        print(f"  {name}")
    if not args.device:
        print(f"  role {role.name} deleted")
    return 0
