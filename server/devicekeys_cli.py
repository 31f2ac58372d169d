"""`eit devices key add|rotate|list`: the devices' registered public keys (eit/devicekeys.py).

Only public keys: each is made by its agent (`eit edge keygen`), which prints the command to run
here. `add` registers a device's first key; `rotate` registers a new one and ends the open key
where the new one begins, so readings signed before then still verify. The ingest of a running
`eit serve` reads the file again within seconds. Nothing here asks a question.
"""

from __future__ import annotations

import argparse
import sys

from eit.timeutil import now_ns, ns_to_iso, parse_iso_ns


def add_parsers(devices_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = devices_sub.add_parser(
        "key", help="the devices' registered public keys, which the ingest verifies signed scans with"
    )
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    for name, rotate, text in (
        ("add", False, "register a device's first public key (from `eit edge keygen`)"),
        ("rotate", True, "register a device's new public key; its open key ends where the new one begins"),
    ):
        p = key_sub.add_parser(name, help=text)
        p.add_argument("name", metavar="FACTORY", help="the factory's id in the site registry")
        p.add_argument("--device", required=True, help="the device's id in the site registry")
        p.add_argument(
            "--public-key",
            required=True,
            help="the public key `eit edge keygen` printed, as --public-key=KEY (it may begin with '-')",
        )
        p.add_argument("--config", required=True, help="server configuration (site, signing.keys)")
        p.add_argument(
            "--valid-from",
            default=None,
            help="ISO 8601 UTC time the key is valid from (default: now)",
        )
        p.set_defaults(func=run_add, rotate=rotate)
    p = key_sub.add_parser("list", help="the registered keys and their validity")
    p.add_argument("--config", required=True)
    p.set_defaults(func=run_list)


def run_add(args: argparse.Namespace) -> int:
    from eit.devicekeys import add_key
    from eit.errors import ConfigError
    from eit.registry import load_registry
    from server.config import load_serve_config

    config = load_serve_config(args.config)
    registry = load_registry(config.site)
    factory = registry.factories.get(args.name)
    if factory is None:
        print(
            f"eit devices key: factory '{args.name}' is not in the site registry {config.site}",
            file=sys.stderr,
        )
        return 2
    if args.device not in factory.devices:
        print(
            f"eit devices key: factory '{args.name}' has no device '{args.device}' in {config.site} "
            f"(it has {', '.join(factory.devices) or 'none'})",
            file=sys.stderr,
        )
        return 2
    try:
        valid_from = parse_iso_ns(args.valid_from) if args.valid_from else now_ns()
    except ValueError as exc:
        print(f"eit devices key: --valid-from '{args.valid_from}': {exc}", file=sys.stderr)
        return 2
    path = config.device_keys_path
    try:
        key = add_key(path, args.name, args.device, args.public_key, valid_from, rotate=args.rotate)
    except ConfigError as exc:
        print(f"eit devices key: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name}/{args.device}: key {key.id} valid from {ns_to_iso(key.valid_from_ns)} ({path})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from eit.devicekeys import load_device_keys
    from server.config import load_serve_config

    config = load_serve_config(args.config)
    for key in load_device_keys(config.device_keys_path).keys:
        until = ns_to_iso(key.valid_to_ns) if key.valid_to_ns is not None else "open"
        print(f"{key.factory}/{key.device}\t{key.id}\t{ns_to_iso(key.valid_from_ns)}\t{until}")
    return 0
