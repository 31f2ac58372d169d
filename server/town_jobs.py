"""Which worker of the cluster runs the town-wide jobs: a leader lease in the state database.

The town indicators (alerts/indicators_job.py) and the duties with their monthly integrity run
(alerts/duties/) belong to no partition. On the RabbitMQ cluster (docs/scale-out.md) every worker
would run them, and the duties' cases and notifications would be made once per worker. One lease
decides instead: the partition lease table (ingest/leases.py) with a queue set of its own,
``<queue_prefix>.town-jobs``, partition 0. The worker that holds it runs the jobs; the others keep
trying to take it, and the first to find it free or expired becomes the leader.

The lease is renewed every ``lease_s / 3`` and is valid by this worker's own monotonic clock,
counted from before the renewal was sent: a worker paused beyond the lease sees it lapse before
the database lets another take it, and the jobs ask :meth:`TownJobsLeader.holds` before each run
(the duties also before each of their writes), so two workers never run them at once. A lapsed
lease is never renewed: the worker takes it afresh once it is free or expired, with a new token.
On stop the lease is released, and a standby takes it at its next round.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from eit.supervise import Stage, SupervisedLoop, Supervisor
from ingest.leases import Lease, LeaseRow, PartitionLeases
from statedb import StateDb, StateDbUnavailable

log = logging.getLogger("server.town_jobs")

TOWN_JOBS_PARTITION = 0
# How often a worker without the lease tries to take it (at most; a third of the lease when less).
ACQUIRE_EVERY_S = 1.0


def town_jobs_set(queue_prefix: str) -> str:
    """The queue set of the town-wide jobs' lease, beside the partitions' ``queue_prefix``."""
    return f"{queue_prefix}.town-jobs"


@dataclass(frozen=True, slots=True)
class Leadership:
    """What this worker knows of the town-wide jobs' lease (``/readyz``)."""

    leader: bool
    owner: str
    token: int
    taken: int  # times this worker became the leader
    lost: int  # times its lease was lost or lapsed while it held it


class TownJobsLeader(SupervisedLoop):
    """Takes and renews the town-wide jobs' lease on a supervised thread (stage ``town-jobs``)."""

    def __init__(self, leases: PartitionLeases, supervisor: Supervisor) -> None:
        super().__init__(supervisor, Stage("town-jobs"))
        self.leases = leases
        self.renew_every_s = leases.lease_s / 3
        self._lease: Lease | None = None
        self._next_renewal = 0.0
        self.taken = 0
        self.lost = 0
        self.rounds = 0

    @classmethod
    def on(
        cls, db: StateDb, queue_prefix: str, owner: str, lease_s: float, supervisor: Supervisor
    ) -> TownJobsLeader:
        """The leader loop of worker ``owner`` over the lease table of ``db``."""
        return cls(PartitionLeases(db, town_jobs_set(queue_prefix), owner, lease_s), supervisor)

    def holds(self) -> bool:
        """Whether this worker may run the town-wide jobs now: it holds the lease, valid by its own
        clock, and is not stopping."""
        lease = self._lease
        return lease is not None and not self._stop.is_set() and time.monotonic() < lease.valid_until

    def leadership(self) -> Leadership:
        lease = self._lease
        return Leadership(self.holds(), self.leases.owner, lease.token if lease else 0, self.taken, self.lost)

    def step(self) -> bool:
        """One round: renew the lease when due, or take it when this worker has none; whether it
        holds the lease afterwards. A database that cannot be reached is tried again at the next
        round (a lease that cannot be renewed lapses by itself)."""
        self.rounds += 1
        lease = self._lease
        if lease is not None and time.monotonic() >= self._next_renewal:
            try:
                renewed = self.leases.renew(lease)
            except StateDbUnavailable as exc:
                log.warning("renewing the town-wide jobs' lease: %s", exc)
                self._next_renewal = time.monotonic() + self._round_s()
            else:
                self._next_renewal = time.monotonic() + self.renew_every_s
                if renewed is None:
                    self.lost += 1
                    log.warning(
                        "lost the town-wide jobs' lease (token %d): another worker runs them", lease.token
                    )
                self._lease = renewed
        if self._lease is None:
            try:
                taken = self.leases.acquire(TOWN_JOBS_PARTITION)
            except StateDbUnavailable as exc:
                log.warning("taking the town-wide jobs' lease: %s", exc)
                taken = None
            if taken is not None:
                self._lease = taken
                self._next_renewal = time.monotonic() + self.renew_every_s
                self.taken += 1
                log.info("took the town-wide jobs' lease (token %d): this worker runs them", taken.token)
        return self.holds()

    def holder(self) -> LeaseRow | None:
        """The lease's row in the database (any worker's), None before anyone took it."""
        rows = self.leases.all()
        return rows[0] if rows else None

    def _round_s(self) -> float:
        return min(ACQUIRE_EVERY_S, self.renew_every_s)

    def _run(self) -> None:
        while True:
            self.stage.progress()
            self.step()
            if self._stop.wait(self._round_s()):
                break
        self.release()

    def stop(self) -> None:
        """Stop renewing and release the lease (also when the loop's thread does not end in time:
        :meth:`holds` is false from the moment the stop begins)."""
        super().stop()
        self.release()

    def release(self) -> None:
        """Give the lease up so that a standby takes it at once (on stop)."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        with contextlib.suppress(StateDbUnavailable):
            self.leases.release(lease)
            log.info("released the town-wide jobs' lease (token %d)", lease.token)
