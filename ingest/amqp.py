"""The ingest over AMQP: a worker of the RabbitMQ cluster (``ingest.transport: amqp``).

The worker consumes every partition (a quorum queue with a single active consumer, declared by
`eit cluster init`) and the queue of unroutable messages; the broker makes one consumer of each
queue active, so a partition's messages reach one worker at a time, in the order they entered
the queue. The stages (decode, write, rules + ack) are those of :class:`StagedIngest`.

Fencing. A worker writes a partition's batch only while

- the connection that delivered the batch is still the worker's current one (its *epoch*), and
- the worker holds the partition's lease (:mod:`ingest.leases`), valid by its own clock.

A worker that misses a lease renewal (paused beyond the lease, the state database unreachable)
closes its connection: the broker gives what it held to the next consumer, and the worker
starts afresh on a new connection, behind the others. A batch of an older connection is neither
written nor handed to the rules nor acknowledged. Fencing looks at leases and connections,
never at a batch's age: a slow store delays every worker alike and fences none.

Ownership. Each worker publishes a *tick* into every partition every ``tick_s``: the active
consumer of a partition without traffic still receives something, takes the partition's lease,
and so owns its factories (:attr:`AmqpIngest.owned_partitions`).

pika's BlockingConnection is not thread-safe: the connection thread alone talks to it; the rules
stage's acknowledgements reach it through ``add_callback_threadsafe``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from eit.supervise import Stage, Supervisor, Worker
from eit.timeutil import now_ns
from ingest.leases import Lease, PartitionLeases
from ingest.partitions import TICK_HEADER, UNROUTABLE_PARTITION, partition_of, queue_name, topic_of
from ingest.service import Incoming, Ingest, StagedIngest
from ingest.settings import AmqpSettings
from statedb import StateDbUnavailable

log = logging.getLogger("eit.ingest.amqp")
# pika logs every connection step at INFO; its warnings and errors stay.
logging.getLogger("pika").setLevel(logging.WARNING)

_FIRST_SEQ = re.compile(rb'"seq":\s*(\d+)')
RECONNECT_WAIT_S = 0.5
LEASE_POLL_S = 0.2  # how often partitions just delivered are offered to the lease table


def worker_id() -> str:
    """This worker's name in the lease table: host, process and a random part (a restarted
    worker is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"


class AmqpIngest(StagedIngest):
    """Connects :class:`Ingest` to the RabbitMQ cluster's partitions over AMQP."""

    def __init__(
        self,
        ingest: Ingest,
        settings: AmqpSettings,
        leases: PartitionLeases,
        supervisor: Supervisor | None = None,
    ) -> None:
        super().__init__(ingest, supervisor)
        self.settings = settings
        self.leases = leases
        self.owner = leases.owner
        # A replica's workers leave the unroutable queue to the primary set's (one dead letter).
        unroutable = [] if settings.replica else [UNROUTABLE_PARTITION]
        self.partitions = [*range(settings.partitions), *unroutable]
        self._lock = threading.Lock()
        self._epoch = 0
        self._seen: set[int] = set()  # partitions delivered on the current connection
        self._held: dict[int, Lease] = {}  # their leases
        self._fence_epoch = -1  # a connection to close (fenced)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self.fenced = 0  # times this worker fenced itself
        self.fenced_messages = 0  # messages dropped unacknowledged by fencing
        self.connection_stage = Stage("ingest-amqp", lambda: 0)
        self.lease_stage = Stage("ingest-leases", lambda: len(self._seen) - len(self._held))
        self._transport_workers: list[Worker] = []
        # Told, before the first write of a partition whose lease this worker has just taken,
        # which factories it now holds and since when (the rules read back what they missed).
        self.on_partition_taken: Callable[[frozenset[str], int], None] | None = None
        self._broker = ""
        self._delivery_log: TextIO | None = None
        if settings.delivery_log:
            self._delivery_log = open(settings.delivery_log, "a", encoding="utf-8")  # noqa: SIM115

    @property
    def stages(self) -> tuple[Stage, ...]:
        return (*super().stages, self.connection_stage, self.lease_stage)

    @property
    def owned_partitions(self) -> set[int]:
        """The partitions whose lease this worker holds now (by its own clock)."""
        now = time.monotonic()
        with self._lock:
            return {p for p, lease in self._held.items() if lease.valid_until > now}

    def _factories_of(self, partition: int) -> frozenset[str]:
        count = self.settings.partitions
        return frozenset(f for f in self.ingest.registry.factories if partition_of(f, count) == partition)

    def owned_factories(self) -> frozenset[str]:
        """The registry's factories whose partitions this worker holds now (the rules judge
        staleness and publish public states for these only)."""
        owned = self.owned_partitions
        return frozenset(
            f for f in self.ingest.registry.factories if partition_of(f, self.settings.partitions) in owned
        )

    # -- the transport ----------------------------------------------------------------------------
    def _start_transport(self) -> None:
        self._transport_workers = [
            self.supervisor.run(self.connection_stage, self._connection_loop),
            self.supervisor.run(self.lease_stage, self._lease_loop),
        ]

    def _stop_transport(self) -> None:
        for worker in self._transport_workers:
            worker.stop(10.0)
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        for lease in held:  # the next worker need not wait for them to expire
            with contextlib.suppress(StateDbUnavailable):
                self.leases.release(lease)

    def _connection_loop(self) -> None:
        urls = [self.settings.with_password(url) for url in self.settings.urls]
        start = random.randrange(len(urls))
        attempt = 0
        while not self._stop.is_set():
            url = urls[(start + attempt) % len(urls)]
            attempt += 1
            self.connection_stage.progress()
            try:
                self._consume(url)
                attempt = 0
            except pika.exceptions.AMQPError as exc:
                self.last_broker_error = f"broker {_safe(url)}: {type(exc).__name__}: {exc}"
                log.warning("%s (trying the next node)", self.last_broker_error)
            except OSError as exc:
                self.last_broker_error = f"broker {_safe(url)}: {exc}"
                log.warning("%s (trying the next node)", self.last_broker_error)
            finally:
                self._connection_lost()
            if not self._stop.is_set():
                self.connection_stage.rest(RECONNECT_WAIT_S)
                self._stop.wait(RECONNECT_WAIT_S if attempt >= len(urls) else 0.05)

    def _consume(self, url: str) -> None:
        params = pika.URLParameters(url)
        params.heartbeat = self.settings.heartbeat_s
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.blocked_connection_timeout = 60
        params.client_properties = {"connection_name": f"eit-ingest {self.owner}"}
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self.settings.prefetch)
            with self._lock:
                self._epoch += 1
                epoch = self._epoch
                self._seen.clear()
                self._held.clear()
                self._connection, self._channel = connection, channel
            for partition in self.partitions:
                channel.basic_consume(
                    queue_name(self.settings.queue_prefix, partition),
                    functools.partial(self._on_message, partition, epoch),
                    consumer_tag=f"{self.owner}/{partition}/{epoch}",
                )
            self._broker = _safe(url)
            self.last_broker_error = ""
            self._connected.set()
            self.metrics.broker_connected.set(1)
            log.info(
                "consuming %d partitions from %s (connection %d)", len(self.partitions), self._broker, epoch
            )
            next_tick = 0.0
            while not self._stop.is_set():
                with self._lock:
                    if self._fence_epoch == epoch:
                        log.warning(
                            "fenced: closing connection %d (the broker redelivers what it held)", epoch
                        )
                        return
                now = time.monotonic()
                if now >= next_tick:
                    self._tick(channel)
                    next_tick = now + self.settings.tick_s
                connection.process_data_events(time_limit=0.1)
                self.connection_stage.progress()
        finally:
            with self._lock:
                self._epoch += 1  # whatever this connection delivered is no longer ours
                self._connection = self._channel = None
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # closing a broken connection: nothing more to do with it
                log.debug("closing the AMQP connection failed", exc_info=True)

    def _connection_lost(self) -> None:
        self._connected.clear()
        self.metrics.broker_connected.set(0)
        with self._lock:
            self._seen.clear()
            self._held.clear()

    def _tick(self, channel: BlockingChannel) -> None:
        properties = pika.BasicProperties(headers={TICK_HEADER: self.owner}, delivery_mode=1)
        for partition in self.partitions:
            channel.basic_publish("", queue_name(self.settings.queue_prefix, partition), b"", properties)

    def _on_message(
        self,
        partition: int,
        epoch: int,
        channel: BlockingChannel,
        method: Any,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        with self._lock:
            self._seen.add(partition)
        headers = properties.headers
        if headers and TICK_HEADER in headers:
            channel.basic_ack(method.delivery_tag)
            return
        self._received_one(
            Incoming(method.delivery_tag, 1, topic_of(method.routing_key), body, False, partition, epoch)
        )

    # -- leases -----------------------------------------------------------------------------------
    def _lease_loop(self) -> None:
        renew_every = self.settings.lease_s / 3
        next_renewal = time.monotonic() + renew_every
        while not self._stop.wait(LEASE_POLL_S):
            self.lease_stage.progress()
            with self._lock:
                epoch = self._epoch
                wanted = self._seen - self._held.keys()
                held = dict(self._held)
            # Renewals first: they keep this worker's partitions; one that fails to reach the
            # database is tried again next round (a lease that cannot be renewed lapses by itself,
            # and the write stage sees it), and never holds up the others.
            if time.monotonic() >= next_renewal:
                next_renewal = time.monotonic() + renew_every
                for partition, lease in held.items():
                    try:
                        renewed = self.leases.renew(lease)
                    except StateDbUnavailable as exc:
                        log.warning("renewing the lease of partition %d: %s", partition, exc)
                        next_renewal = min(next_renewal, time.monotonic() + LEASE_POLL_S)
                        continue
                    if renewed is None:
                        self._fence(epoch, f"lost the lease of partition {partition}")
                        break
                    with self._lock:
                        if self._epoch == epoch and partition in self._held:
                            self._held[partition] = renewed
            for partition in sorted(wanted):
                try:
                    taken = self.leases.acquire(partition)
                except StateDbUnavailable as exc:
                    log.warning("taking the lease of partition %d: %s", partition, exc)
                    continue
                if taken is not None:
                    if self.on_partition_taken is not None and partition != UNROUTABLE_PARTITION:
                        self.on_partition_taken(self._factories_of(partition), now_ns())
                    with self._lock:
                        if self._epoch == epoch:
                            self._held[partition] = taken
                    log.info("took the lease of partition %d (token %d)", partition, taken.token)

    def _fence(self, epoch: int, why: str) -> None:
        with self._lock:
            if self._fence_epoch == epoch or self._epoch != epoch:
                return
            self._fence_epoch = epoch
            self._held.clear()
        self.fenced += 1
        log.warning("fenced (%s): the connection closes, its messages go back to the broker", why)

    # -- the stages' questions --------------------------------------------------------------------
    def _may_write(self, batch: Sequence[Incoming]) -> bool | None:
        now = time.monotonic()
        with self._lock:
            epoch = self._epoch
            if self._fence_epoch == epoch or self._channel is None or not self._channel.is_open:
                current = False
            else:
                current = all(msg.epoch == epoch for msg in batch)
            if current:
                for partition in {msg.partition for msg in batch}:
                    lease = self._held.get(partition)
                    if lease is None:
                        return None  # not yet ours: the previous holder's lease has to expire
                    if lease.valid_until <= now:
                        current = False
                        break
        if not current:
            if batch and batch[0].epoch == epoch:
                self._fence(epoch, "a lease lapsed before a write")
            self.fenced_messages += len(batch)
            log.warning("dropped a batch of %d messages unacknowledged (fenced)", len(batch))
        return current

    def _after_write(self, batch: Sequence[Incoming]) -> None:
        if self._delivery_log is None:
            return
        stamp = time.time_ns()
        lines = []
        for msg in batch:
            found = _FIRST_SEQ.search(msg.payload[:200])
            seq = found.group(1).decode() if found else "-"
            lines.append(f"{stamp}\t{self.owner}\t{msg.epoch}\t{msg.partition}\t{msg.topic}\t{seq}\n")
        self._delivery_log.write("".join(lines))
        self._delivery_log.flush()

    def _still_current(self, batch: Sequence[Incoming]) -> bool:
        with self._lock:
            return bool(batch) and batch[0].epoch == self._epoch and self._fence_epoch != self._epoch

    def _acknowledge(self, batch: Sequence[Incoming], upto: int) -> None:
        if not batch:
            return
        last = max(msg.mid for msg in batch[:upto])
        with self._lock:
            if batch[0].epoch != self._epoch or self._connection is None or self._channel is None:
                return  # that connection is gone: the broker redelivers, the rules absorb the repeat
            connection, channel = self._connection, self._channel
        try:
            # Deliveries are handled in the order received: every earlier tag is done too.
            connection.add_callback_threadsafe(functools.partial(_ack_upto, channel, last))
        except Exception:  # the connection closed meanwhile: redelivered, absorbed
            log.warning("acknowledging up to %d failed: the connection closed", last, exc_info=True)


def _ack_upto(channel: BlockingChannel, tag: int) -> None:
    if channel.is_open:
        channel.basic_ack(tag, multiple=True)


def _safe(url: str) -> str:
    """A broker URL without its password, for logs and health."""
    params = pika.URLParameters(url)
    return f"{params.host}:{params.port}/{params.virtual_host}"
