"""The notifiers' delivery queue (alerts/notifiers/queue.py): each notification a row, written
when its alert event is submitted, sent by its notifier's worker until delivered or expired."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Identity, Index, Integer, MetaData, Table, Text, text
from sqlalchemy.engine import Connection

_Id = BigInteger().with_variant(Integer(), "sqlite")
_m = MetaData()

_queue = Table(
    "notification_queue",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("notifier", Text, nullable=False),
    Column("alert_id", BigInteger, nullable=False),
    Column("step", Integer, nullable=False),
    Column("event", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("event_json", Text, nullable=False),
    Column("parts", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
    Column("next_attempt_ns", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_attempt_ns", BigInteger),
    Column("last_error", Text, nullable=False, server_default=text("''")),
    Column("delivered_ns", BigInteger),
    Column("lease_until_ns", BigInteger),
    sqlite_autoincrement=True,
)
_INDEXES = (  # attached to the table: created with it
    Index("notification_queue_key", _queue.c.notifier, _queue.c.idempotency_key, unique=True),
    Index("notification_queue_next", _queue.c.notifier, _queue.c.state, _queue.c.recipient, _queue.c.id),
    Index("notification_queue_alert", _queue.c.alert_id, _queue.c.id),
)


def upgrade(conn: Connection) -> None:
    _m.create_all(conn, checkfirst=True)  # the table with its indexes
