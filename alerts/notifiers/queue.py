"""The notifiers' delivery queue, in the state database (table ``notification_queue``).

A row is one notification: one notifier, one recipient (an officer's id, or ``*`` for a
broadcast notifier), one alert event. It holds what to send, rendered when the event was queued
(so a resend is the same message), and the idempotency key the notifier sends with it. Its
``state`` is ``pending`` until the receiver answered (``delivered``) or the notifier's
``expire_after_s`` passed without an answer (``expired``).

Queueing an event claims it in ``alert_notifications`` in the same transaction (an alert reaches
each channel once per escalation step, also when the event is submitted again). A worker takes a
*lease* on the row it sends, so that two processes sharing the database never send the same row
at once; a lease left by a process that died runs out after ``lease_s``, and the row is sent
again: delivery is at least once, and the key lets the receiver drop the repeat.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from eit.timeutil import ns_to_iso
from statedb import StateDb
from statedb.tables import alert_notifications, notification_queue

PENDING = "pending"
DELIVERED = "delivered"
EXPIRED = "expired"
STATES = (PENDING, DELIVERED, EXPIRED)
# What the console asks for besides the states: pending after a failed attempt; that or expired.
FAILING = "failing"
TROUBLED = "troubled"
MAX_ERROR_LENGTH = 1000

_q = notification_queue.c


@dataclass(frozen=True, slots=True)
class Claim:
    """The claim of ``alert_notifications`` a queued row stands for: ``notifier`` is
    ``<notifier>:<event>``, ``recipient`` the officer's id or ``*`` (``#<flaps>`` added for a
    reopened alert)."""

    notifier: str
    recipient: str


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A notification to queue."""

    notifier: str
    alert_id: int
    step: int
    event: str
    recipient: str
    key: str
    event_json: dict[str, Any]
    parts: dict[str, Any]
    expires_ns: int
    claim: Claim | None  # None: not claimed (routine updates), queued once per key


@dataclass(frozen=True, slots=True)
class Delivery:
    """A queued notification as the database has it."""

    id: int
    notifier: str
    alert_id: int
    step: int
    event: str
    recipient: str
    key: str
    parts: dict[str, Any]
    state: str
    created_ns: int
    expires_ns: int
    next_attempt_ns: int
    attempts: int
    last_attempt_ns: int | None
    last_error: str
    delivered_ns: int | None

    @property
    def failing(self) -> bool:
        """Pending after at least one failed attempt."""
        return self.state == PENDING and bool(self.last_error)

    def to_json(self) -> dict[str, Any]:
        """As the officers' console shows it (what was sent stays in the queue)."""

        def at(ts_ns: int | None) -> str | None:
            return ns_to_iso(ts_ns) if ts_ns is not None else None

        return {
            "id": self.id,
            "notifier": self.notifier,
            "alert_id": self.alert_id,
            "event": self.event,
            "step": self.step,
            "recipient": self.recipient,
            "state": self.state,
            "failing": self.failing,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "idempotency_key": self.key,
            "queued_at": at(self.created_ns),
            "last_attempt_at": at(self.last_attempt_ns),
            "next_attempt_at": at(self.next_attempt_ns) if self.state == PENDING else None,
            "delivered_at": at(self.delivered_ns),
            "expires_at": at(self.expires_ns),
        }


@dataclass(frozen=True, slots=True)
class Backlog:
    """A notifier's undelivered rows: how many, the oldest's creation, the soonest expiry."""

    undelivered: int
    oldest_created_ns: int | None
    soonest_expiry_ns: int | None


class DeliveryQueue:
    """The queue's queries; every method is one transaction of the state database."""

    def __init__(self, db: StateDb) -> None:
        self.db = db

    def _insert_or_skip(self, table: Table) -> Any:
        """INSERT that does nothing where the row's unique key is taken (both dialects)."""
        insert = postgresql.insert(table) if self.db.kind == "postgresql" else sqlite.insert(table)
        return insert.on_conflict_do_nothing()

    # -- the dispatcher --------------------------------------------------------------------------
    def enqueue(self, items: Sequence[NewDelivery], now_ns: int) -> builtins.list[NewDelivery]:
        """Claim and queue ``items`` in one transaction; returns those queued now (an item
        claimed or queued before is skipped)."""
        queued = []
        with self.db.write() as conn:
            for item in items:
                if item.claim is not None and not self._claim(conn, item, now_ns):
                    continue
                inserted = conn.execute(
                    self._insert_or_skip(notification_queue)
                    .values(
                        notifier=item.notifier,
                        alert_id=item.alert_id,
                        step=item.step,
                        event=item.event,
                        recipient=item.recipient,
                        idempotency_key=item.key,
                        event_json=json.dumps(item.event_json, ensure_ascii=False),
                        parts=json.dumps(item.parts, ensure_ascii=False),
                        state=PENDING,
                        created_ns=now_ns,
                        expires_ns=item.expires_ns,
                        next_attempt_ns=now_ns,
                    )
                    .returning(_q.id)
                ).first()
                if inserted is not None:
                    queued.append(item)
        return queued

    def _claim(self, conn: Connection, item: NewDelivery, now_ns: int) -> bool:
        assert item.claim is not None
        # RETURNING says whether the row went in (psycopg's rowcount of an INSERT ... ON CONFLICT
        # DO NOTHING is not to be relied on).
        claimed = conn.execute(
            self._insert_or_skip(alert_notifications)
            .values(
                alert_id=item.alert_id,
                step=item.step,
                notifier=item.claim.notifier,
                recipient=item.claim.recipient,
                ts_ns=now_ns,
            )
            .returning(alert_notifications.c.alert_id)
        ).first()
        return claimed is not None

    # -- a notifier's worker ---------------------------------------------------------------------
    def backlog(self, notifier: str) -> Backlog:
        with self.db.read() as conn:
            count, oldest, soonest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(_q.created_ns), sa.func.min(_q.expires_ns)).where(
                    _q.notifier == notifier, _q.state == PENDING
                )
            ).one()
        return Backlog(int(count), _int_or_none(oldest), _int_or_none(soonest))

    def next_due(self, notifier: str, now_ns: int) -> tuple[Delivery | None, int | None]:
        """The row to send now: of each recipient's oldest pending row (rows go out in order, per
        recipient, so one refusing mailbox does not hold the others'), the one due first and not
        leased by another worker. Returns (that row, None), or (None, when the next is due: a
        wait for its attempt, or for another worker's lease to end)."""
        heads = (
            sa.select(sa.func.min(_q.id))
            .where(_q.notifier == notifier, _q.state == PENDING)
            .group_by(_q.recipient)
        )
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(_q.id, _q.next_attempt_ns, _q.lease_until_ns)
                .where(_q.id.in_(heads.scalar_subquery()))
                .order_by(_q.next_attempt_ns, _q.id)
            ).all()
            wake_ns: int | None = None
            for row_id, next_attempt_ns, lease_until_ns in rows:
                free_at = max(int(next_attempt_ns), int(lease_until_ns or 0))
                if free_at <= now_ns:
                    found = conn.execute(sa.select(notification_queue).where(_q.id == row_id)).one()
                    return _delivery(found._mapping), None
                wake_ns = free_at if wake_ns is None else min(wake_ns, free_at)
        return None, wake_ns

    def lease(self, delivery_id: int, now_ns: int, until_ns: int) -> bool:
        """Take the row for one attempt (False: delivered, expired or leased meanwhile)."""
        with self.db.write() as conn:
            taken = conn.execute(
                notification_queue.update()
                .where(
                    _q.id == delivery_id,
                    _q.state == PENDING,
                    sa.or_(_q.lease_until_ns.is_(None), _q.lease_until_ns <= now_ns),
                )
                .values(lease_until_ns=until_ns, attempts=_q.attempts + 1, last_attempt_ns=now_ns)
            ).rowcount
        return bool(taken == 1)

    def delivered(self, delivery_id: int, now_ns: int) -> None:
        """The receiver answered: the row is never sent again."""
        with self.db.write() as conn:
            conn.execute(
                notification_queue.update()
                .where(_q.id == delivery_id)
                .values(state=DELIVERED, delivered_ns=now_ns, lease_until_ns=None)
            )

    def failed(self, delivery_id: int, error: str, next_attempt_ns: int) -> None:
        """An attempt failed: try again at ``next_attempt_ns`` (unless it expires first)."""
        with self.db.write() as conn:
            conn.execute(
                notification_queue.update()
                .where(_q.id == delivery_id, _q.state == PENDING)
                .values(
                    last_error=error[:MAX_ERROR_LENGTH], next_attempt_ns=next_attempt_ns, lease_until_ns=None
                )
            )

    def expire(self, notifier: str, now_ns: int) -> builtins.list[Delivery]:
        """Give up the notifier's pending rows whose time ran out (a row being sent is left to
        its attempt); returns them."""
        due = sa.and_(
            _q.notifier == notifier,
            _q.state == PENDING,
            _q.expires_ns <= now_ns,
            sa.or_(_q.lease_until_ns.is_(None), _q.lease_until_ns <= now_ns),
        )
        with self.db.write() as conn:
            rows = conn.execute(sa.select(notification_queue).where(due).order_by(_q.id)).all()
            if rows:
                conn.execute(
                    notification_queue.update()
                    .where(_q.id.in_([r.id for r in rows]))
                    .values(state=EXPIRED, lease_until_ns=None)
                )
        return [_delivery(r._mapping) for r in rows]

    def prune(self, notifier: str, delivered_before_ns: int) -> int:
        """Forget the notifier's rows delivered before the time given (the claims stay)."""
        with self.db.write() as conn:
            deleted = conn.execute(
                notification_queue.delete().where(
                    _q.notifier == notifier, _q.state == DELIVERED, _q.delivered_ns < delivered_before_ns
                )
            ).rowcount
        return int(deleted)

    # -- the officers' console -------------------------------------------------------------------
    def for_alert(self, alert_id: int) -> builtins.list[Delivery]:
        """Every notification of the alert kept in the queue, in the order queued."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(notification_queue).where(_q.alert_id == alert_id).order_by(_q.id)
            ).all()
        return [_delivery(r._mapping) for r in rows]

    def listing(self, state: str = TROUBLED, limit: int = 500) -> builtins.list[Delivery]:
        """Notifications in ``state``, newest first: pending, delivered, expired, ``failing``
        (pending after a failed attempt) or ``troubled`` (failing or expired)."""
        failing = sa.and_(_q.state == PENDING, _q.last_error != "")
        where = {
            TROUBLED: sa.or_(_q.state == EXPIRED, failing),
            FAILING: failing,
        }.get(state, _q.state == state)
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(notification_queue).where(where).order_by(_q.id.desc()).limit(limit)
            ).all()
        return [_delivery(r._mapping) for r in rows]

    def get(self, delivery_id: int) -> Delivery | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(notification_queue).where(_q.id == delivery_id)).first()
        return _delivery(row._mapping) if row is not None else None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _delivery(m: RowMapping) -> Delivery:
    return Delivery(
        id=int(m["id"]),
        notifier=str(m["notifier"]),
        alert_id=int(m["alert_id"]),
        step=int(m["step"]),
        event=str(m["event"]),
        recipient=str(m["recipient"]),
        key=str(m["idempotency_key"]),
        parts=json.loads(m["parts"]),
        state=str(m["state"]),
        created_ns=int(m["created_ns"]),
        expires_ns=int(m["expires_ns"]),
        next_attempt_ns=int(m["next_attempt_ns"]),
        attempts=int(m["attempts"]),
        last_attempt_ns=_int_or_none(m["last_attempt_ns"]),
        last_error=str(m["last_error"] or ""),
        delivered_ns=_int_or_none(m["delivered_ns"]),
    )
