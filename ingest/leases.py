"""Partition leases in the state database: which worker may write a partition's readings.

RabbitMQ gives a partition's messages to one consumer at a time (single active consumer), but a
worker that hangs (paused, swapping) keeps believing it holds its partition after the broker has
closed its connection and handed the partition to another. A lease is the fence: a worker writes a
partition's batch only while its lease is valid by its own monotonic clock, measured from before
its last renewal was sent; it renews every lease_s / 3. A worker that misses a renewal does not
renew again: it is fenced, closes its connection (the broker redelivers what it held) and takes
the lease afresh only once it is free or expired. Each new holder raises the lease's ``token``.

Times in the table are the workers' wall clocks (ns since the epoch): the workers' clocks must
agree to well within lease_s (NTP).

A holder can stop anywhere, also between its UPDATE of a lease row and the COMMIT, holding that
row's lock. On PostgreSQL every lease transaction therefore bounds its own waits: a row lock is
waited on for at most a tenth of the lease (an acquire that meets one counts as "held by another",
a renewal that meets one fails and is tried again at the next round), and a transaction left idle
for a quarter of the lease is ended by the server, so a stopped holder's locks are released and its
lease expires as any other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eit.timeutil import now_ns
from statedb import StateDb, StateDbUnavailable

LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that ran out

_ACQUIRE = sa.text(
    "INSERT INTO partition_leases (queue_set, partition, owner, token, expires_ns)"
    " VALUES (:queue_set, :partition, :owner, 1, :expires_ns)"
    " ON CONFLICT (queue_set, partition) DO UPDATE SET"
    " owner = excluded.owner, token = partition_leases.token + 1, expires_ns = excluded.expires_ns"
    " WHERE partition_leases.expires_ns < :now_ns"
    " OR (partition_leases.owner = excluded.owner AND partition_leases.expires_ns = 0)"
)
_RENEW = sa.text(
    "UPDATE partition_leases SET expires_ns = :expires_ns"
    " WHERE queue_set = :queue_set AND partition = :partition AND owner = :owner AND token = :token"
)
_RELEASE = sa.text(
    "UPDATE partition_leases SET expires_ns = 0"
    " WHERE queue_set = :queue_set AND partition = :partition AND owner = :owner AND token = :token"
)
_TOKEN = sa.text(
    "SELECT token FROM partition_leases"
    " WHERE queue_set = :queue_set AND partition = :partition AND owner = :owner"
)
_BOUNDS = sa.text(
    "SELECT set_config('lock_timeout', :lock_ms, true),"
    " set_config('idle_in_transaction_session_timeout', :idle_ms, true)"
)
_ALL = sa.text(
    "SELECT partition, owner, token, expires_ns FROM partition_leases WHERE queue_set = :queue_set"
)


@dataclass(frozen=True, slots=True)
class Lease:
    partition: int
    token: int
    valid_until: float  # this process's time.monotonic()


@dataclass(frozen=True, slots=True)
class LeaseRow:
    partition: int
    owner: str
    token: int
    expires_ns: int


class PartitionLeases:
    """One worker's side of the lease table (``queue_set``: the partitions' queue prefix)."""

    def __init__(self, db: StateDb, queue_set: str, owner: str, lease_s: float) -> None:
        self.db = db
        self.queue_set = queue_set
        self.owner = owner
        self.lease_s = lease_s

    def acquire(self, partition: int) -> Lease | None:
        """Take the partition's lease if it is free or expired (a new token); None when another
        worker holds it."""
        started = time.monotonic()
        wall = now_ns()
        params = {
            "queue_set": self.queue_set,
            "partition": partition,
            "owner": self.owner,
            "expires_ns": wall + int(self.lease_s * 1e9),
            "now_ns": wall,
        }
        try:
            with self._write() as conn:
                taken = conn.execute(_ACQUIRE, params).rowcount == 1
                if not taken:
                    return None
                token = conn.execute(_TOKEN, params).scalar_one()
        except StateDbUnavailable as exc:
            if lock_not_available(exc):
                return None  # its row is locked by a holder mid-transaction: held by another
            raise
        return Lease(partition, int(token), started + self.lease_s)

    def renew(self, lease: Lease) -> Lease | None:
        """Extend a lease still held (None when it was lost: another holder, or released)."""
        started = time.monotonic()
        if started >= lease.valid_until:
            return None  # lapsed by this clock: never renew across a pause
        params = {
            "queue_set": self.queue_set,
            "partition": lease.partition,
            "owner": self.owner,
            "token": lease.token,
            "expires_ns": now_ns() + int(self.lease_s * 1e9),
        }
        with self._write() as conn:
            if conn.execute(_RENEW, params).rowcount != 1:
                return None
        return Lease(lease.partition, lease.token, started + self.lease_s)

    def release(self, lease: Lease) -> None:
        params = {
            "queue_set": self.queue_set,
            "partition": lease.partition,
            "owner": self.owner,
            "token": lease.token,
        }
        with self._write() as conn:
            conn.execute(_RELEASE, params)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction whose lock waits and idle time are bounded (PostgreSQL)."""
        with self.db.write() as conn:
            if self.db.kind == "postgresql":
                bounds = {
                    "lock_ms": f"{max(10, int(self.lease_s * 100))}ms",
                    "idle_ms": f"{max(100, int(self.lease_s * 250))}ms",
                }
                conn.execute(_BOUNDS, bounds)
            yield conn

    def all(self) -> list[LeaseRow]:
        with self.db.read() as conn:
            rows = conn.execute(_ALL, {"queue_set": self.queue_set}).all()
        return [LeaseRow(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


def lock_not_available(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is PostgreSQL's "lock not available" (lock_timeout)."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; never follow a cycle
        if seen is None:
            break
        if getattr(seen, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False
