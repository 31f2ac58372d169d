"""`eit cluster init|sync|status`: the RabbitMQ cluster's topology, from the site registry.

- ``init`` declares, idempotently: the unroutable exchange and its quorum queue (messages of a
  factory no binding takes: the workers read them and dead-letter them as ``unknown_factory``,
  nothing the broker confirmed is dropped), P partitions (quorum queues with a single active
  consumer, ``replicas`` members), and one binding per registry factory, ``eit.<factory>.#``
  from the MQTT plugin's exchange to the factory's partition (its data and status alike).
  The MQTT exchange's alternate exchange is set by a policy in deploy/cluster/definitions.json.
- ``sync`` does the same and removes the bindings of factories no longer in the registry (read
  through the management API).
- ``status`` shows per partition its leader, members, active consumer, depth and lease holder,
  and which worker holds the town-wide jobs' lease (server/town_jobs.py).

The partition count is fixed for the cluster's life: changing it moves factories between
partitions, which would reorder their messages; ``init`` refuses a count that differs from the
queues found.
"""

from __future__ import annotations

import argparse
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eit.errors import EitError

if TYPE_CHECKING:
    from ingest.leases import LeaseRow
    from ingest.settings import AmqpSettings
    from server.config import ServeConfig


class ClusterError(EitError):
    """The cluster cannot be reached or refused a declaration; says which and why."""


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    queue: str
    leader: str
    members: int
    active_consumer: str
    consumers: int
    messages: int
    lease_owner: str
    lease_token: int


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = sub.add_parser(
        "cluster", help="the RabbitMQ cluster's partitions and bindings (docs/scale-out.md)"
    )
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="COMMAND")
    for name, text, func in (
        ("init", "declare the partitions, the unroutable queue and a binding per factory", _run_init),
        ("sync", "as init, and remove the bindings of factories no longer in the registry", _run_sync),
        (
            "status",
            "per partition: leader, active consumer, depth, lease holder; the town-wide jobs' holder",
            _run_status,
        ),
    ):
        p = cluster_sub.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="the workers' serve.yaml (ingest.amqp)")
        if name == "status":
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
    p = cluster_sub.add_parser(
        "login",
        help="add or update a factory's MQTT login: it publishes only under eit/<factory>/",
    )
    p.add_argument("--config", required=True, help="the workers' serve.yaml (ingest.amqp)")
    p.add_argument("factory")
    p.add_argument("--user", default=None, help="the login's name (default: the factory id)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--password-file", default=None, help="a file holding the login's password")
    group.add_argument("--password-env", default=None, help="... or the variable holding it")
    p.set_defaults(func=_run_login)


def _settings(config: ServeConfig) -> AmqpSettings:
    amqp = config.ingest.amqp
    if amqp is None:
        raise ClusterError(f"{config.source}: ingest.amqp is missing (the cluster's URLs and partitions)")
    return amqp


def _run_init(args: argparse.Namespace) -> int:
    from server.config import load_serve_config

    config = load_serve_config(args.config)
    registry = _registry(config)
    declared = declare(_settings(config), sorted(registry))
    print(f"cluster: {declared.partitions} partitions, {declared.bindings} factory bindings declared")
    return 0


def _run_sync(args: argparse.Namespace) -> int:
    from server.config import load_serve_config

    config = load_serve_config(args.config)
    settings = _settings(config)
    factories = sorted(_registry(config))
    declared = declare(settings, factories)
    removed = remove_stale_bindings(settings, factories)
    print(
        f"cluster: {declared.partitions} partitions, {declared.bindings} factory bindings declared,"
        f" {len(removed)} removed{': ' + ', '.join(removed) if removed else ''}"
    )
    return 0


def _run_status(args: argparse.Namespace) -> int:
    import json

    from server.config import load_serve_config

    config = load_serve_config(args.config)
    rows = status(config)
    if args.json:
        print(
            json.dumps(
                [row.__dict__ if hasattr(row, "__dict__") else _as_dict(row) for row in rows], indent=2
            )
        )
        return 0
    print(f"{'partition':<20} {'leader':<28} {'members':>7} {'active consumer':<40} {'depth':>8}  lease")
    for row in rows:
        print(
            f"{row.queue:<20} {row.leader:<28} {row.members:>7} {row.active_consumer[:40]:<40}"
            f" {row.messages:>8}  {row.lease_owner or '-'}"
            + (f" (token {row.lease_token})" if row.lease_owner else "")
        )
    holder = town_jobs_holder(config)
    print(
        "town-wide jobs (indicators, duties): "
        + (f"{holder.owner} (token {holder.token})" if holder is not None else "no worker holds the lease")
    )
    return 0


def _as_dict(row: PartitionStatus) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__}


def _registry(config: ServeConfig) -> dict[str, Any]:
    from eit.registry import load_registry

    return dict(load_registry(config.site).factories)


def _run_login(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from server.config import load_serve_config

    config = load_serve_config(args.config)
    if args.factory not in _registry(config):
        raise ClusterError(f"factory {args.factory!r} is not in the site registry {config.site}")
    if args.password_file:
        password = Path(args.password_file).read_text().strip()
    else:
        password = os.environ.get(args.password_env, "")
    if len(password) < 12:
        raise ClusterError("the login's password must have at least 12 characters")
    user = args.user or args.factory
    factory_login(_settings(config), args.factory, user, password)
    print(f"cluster: login {user} may publish under eit/{args.factory}/ only")
    return 0


def factory_login(settings: AmqpSettings, factory: str, user: str, password: str) -> None:
    """A factory's MQTT login on the cluster (management API): it writes only to the MQTT
    exchange, and there only routing keys ``eit.<factory>.*`` (its topics eit/<factory>/...);
    it reads nothing but its own MQTT subscription queues."""
    import re

    from ingest.partitions import binding_key

    vhost = urllib.parse.quote(_vhost(settings), safe="")
    name = urllib.parse.quote(user, safe="")
    prefix = "^" + re.escape(binding_key(factory)[: -len("#")])
    _management(settings, f"/api/users/{name}", "PUT", {"password": password, "tags": ""})
    _management(
        settings,
        f"/api/permissions/{vhost}/{name}",
        "PUT",
        {
            "configure": "^mqtt-subscription-",
            "write": f"^({re.escape(settings.exchange)}|mqtt-subscription-.*)$",
            "read": f"^({re.escape(settings.exchange)}|mqtt-subscription-.*)$",
        },
    )
    _management(
        settings,
        f"/api/topic-permissions/{vhost}/{name}",
        "PUT",
        {"exchange": settings.exchange, "write": prefix, "read": prefix},
    )


# -- declarations -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Declared:
    partitions: int
    bindings: int


def declare(settings: AmqpSettings, factories: list[str]) -> Declared:
    """Declare the topology on the cluster (idempotent: declaring again changes nothing)."""
    import pika.exceptions

    from ingest.partitions import UNROUTABLE, UNROUTABLE_PARTITION, binding_key, partition_of, queue_name

    connection = _connect(settings)
    try:
        _check_partition_count(connection, settings)
        channel = connection.channel()
        arguments = {
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-quorum-initial-group-size": settings.replicas,
            # Leaders spread over the nodes (else all on the node that declared them).
            "x-queue-leader-locator": "balanced",
        }
        channel.exchange_declare(UNROUTABLE, "fanout", durable=True)
        for partition in [*range(settings.partitions), UNROUTABLE_PARTITION]:
            channel.queue_declare(
                queue_name(settings.queue_prefix, partition), durable=True, arguments=arguments
            )
        channel.queue_bind(UNROUTABLE, UNROUTABLE)
        # The MQTT plugin declares its exchange too, the same way (topic, durable).
        channel.exchange_declare(settings.exchange, "topic", durable=True)
        for factory in factories:
            queue = queue_name(settings.queue_prefix, partition_of(factory, settings.partitions))
            channel.queue_bind(queue, settings.exchange, routing_key=binding_key(factory))
    except pika.exceptions.AMQPError as exc:
        raise ClusterError(f"declaring the cluster's topology failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if connection.is_open:
            connection.close()
    return Declared(settings.partitions, len(factories))


def _check_partition_count(connection: Any, settings: AmqpSettings) -> None:
    """Refuse a partition count other than the one the cluster was made with: the queue after
    the last partition must not exist (a passive declaration of it fails)."""
    import pika.exceptions

    from ingest.partitions import queue_name

    channel = connection.channel()
    try:
        channel.queue_declare(queue_name(settings.queue_prefix, settings.partitions), passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return
        raise
    raise ClusterError(
        f"the cluster has more than ingest.amqp.partitions = {settings.partitions} partitions"
        f" ({queue_name(settings.queue_prefix, settings.partitions)} exists): the count is fixed for the"
        " cluster's life (changing it would move factories and reorder their messages)"
    )


def _connect(settings: AmqpSettings) -> Any:
    import logging

    import pika
    import pika.exceptions

    logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO is every connection step
    # The partition count check's passive declaration is refused on purpose (404): not a warning.
    logging.getLogger("pika.channel").setLevel(logging.ERROR)

    errors = []
    for url in settings.urls:
        try:
            params = pika.URLParameters(settings.with_password(url))
            params.connection_attempts = 1
            params.socket_timeout = 5
            return pika.BlockingConnection(params)
        except (pika.exceptions.AMQPError, OSError) as exc:
            errors.append(f"{_without_password(url)}: {type(exc).__name__}: {exc}")
    raise ClusterError("no node of the cluster answers (ingest.amqp.urls): " + "; ".join(errors))


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port or ''}{parts.path}"


# -- management API: bindings and status --------------------------------------------------------


def _management(settings: AmqpSettings, path: str, method: str = "GET", body: Any = None) -> Any:
    import requests

    if not settings.management_urls:
        raise ClusterError("ingest.amqp.management_urls is empty: `eit cluster` reads the management API")
    errors = []
    for url in settings.management_urls:
        parts = urllib.parse.urlsplit(settings.with_password(url))
        base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
        auth = (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
        try:
            response = requests.request(method, base + path, auth=auth, json=body, timeout=10)
        except requests.RequestException as exc:
            errors.append(f"{base}: {exc}")
            continue
        if response.status_code not in (200, 201, 204):
            errors.append(f"{base}{path}: HTTP {response.status_code} {response.text[:200]}")
            continue
        return response.json() if response.content else None
    raise ClusterError(
        "the management API does not answer (ingest.amqp.management_urls): " + "; ".join(errors)
    )


def _vhost(settings: AmqpSettings) -> str:
    import pika

    return str(pika.URLParameters(settings.urls[0]).virtual_host)


def remove_stale_bindings(settings: AmqpSettings, factories: list[str]) -> list[str]:
    """Unbind factories that are no longer in the registry, or bound to another partition."""
    from ingest.partitions import binding_key, partition_of, queue_name

    vhost = urllib.parse.quote(_vhost(settings), safe="")
    exchange = urllib.parse.quote(settings.exchange, safe="")
    bindings = _management(settings, f"/api/exchanges/{vhost}/{exchange}/bindings/source")
    wanted = {
        (queue_name(settings.queue_prefix, partition_of(f, settings.partitions)), binding_key(f))
        for f in factories
    }
    # Only this queue set's partitions: another set bound to the same exchange is not ours to change.
    ours = {queue_name(settings.queue_prefix, p) for p in range(settings.partitions)}
    stale = [
        (b["destination"], b["routing_key"])
        for b in bindings
        if b.get("destination_type") == "queue"
        and b["destination"] in ours
        and (b["destination"], b["routing_key"]) not in wanted
    ]
    if not stale:
        return []
    connection = _connect(settings)
    try:
        channel = connection.channel()
        for queue, key in stale:
            channel.queue_unbind(queue, settings.exchange, routing_key=key)
    finally:
        if connection.is_open:
            connection.close()
    return [key for _, key in stale]


def town_jobs_holder(config: ServeConfig) -> LeaseRow | None:
    """The worker holding the town-wide jobs' lease now (server/town_jobs.py), by the database's
    row and this machine's clock; None when it is free (released or expired) or never taken."""
    from eit.timeutil import now_ns
    from ingest.leases import PartitionLeases
    from server.town_jobs import TOWN_JOBS_PARTITION, town_jobs_set
    from statedb import open_state_db

    settings = _settings(config)
    state_db = open_state_db(config.state_url, config.state_path)
    try:
        rows = PartitionLeases(state_db, town_jobs_set(settings.queue_prefix), "", 0).all()
    finally:
        state_db.close()
    now = now_ns()
    return next((r for r in rows if r.partition == TOWN_JOBS_PARTITION and r.expires_ns > now), None)


def status(config: ServeConfig) -> list[PartitionStatus]:
    from ingest.leases import PartitionLeases
    from ingest.partitions import UNROUTABLE_PARTITION, queue_name
    from statedb import open_state_db

    settings = _settings(config)
    vhost = urllib.parse.quote(_vhost(settings), safe="")
    state_db = open_state_db(config.state_url, config.state_path)
    try:
        leases = {row.partition: row for row in PartitionLeases(state_db, settings.queue_prefix, "", 0).all()}
    finally:
        state_db.close()
    rows = []
    for partition in [*range(settings.partitions), UNROUTABLE_PARTITION]:
        name = queue_name(settings.queue_prefix, partition)
        queue = _management(settings, f"/api/queues/{vhost}/{urllib.parse.quote(name, safe='')}")
        active = queue.get("single_active_consumer_ctag") or queue.get("single_active_consumer_tag") or ""
        lease = leases.get(partition)
        rows.append(
            PartitionStatus(
                queue=name,
                leader=str(queue.get("leader", queue.get("node", ""))),
                members=len(queue.get("members", [])),
                active_consumer=str(active),
                consumers=int(queue.get("consumers", 0)),
                messages=int(queue.get("messages", 0)),
                lease_owner=lease.owner if lease is not None else "",
                lease_token=lease.token if lease is not None else 0,
            )
        )
    return rows
