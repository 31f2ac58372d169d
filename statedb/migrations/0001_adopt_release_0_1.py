"""The state database of release 0.1, created where missing and adopted as it is where present.

Release 0.1 made these tables itself (``CREATE TABLE IF NOT EXISTS``): the alert store made
alerts, alert_audit and alert_notifications, the accounts made api_users, api_tokens and
alert_responses, the dead letters made dead_letters (SQLite only: new on PostgreSQL). A table
that exists is left as it is, rows and all. The alert store of 0.1 also upgraded files of the
first release, which lacked the later alert columns and had a unique index on open alerts only;
so does this.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Double, Identity, Index, Integer, MetaData, Table, Text, text
from sqlalchemy.engine import Connection

_Id = BigInteger().with_variant(Integer(), "sqlite")
_m = MetaData()

_alerts = Table(
    "alerts",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("factory", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("parameter", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("opened_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Double),
    Column("limit_value", Double),
    Column("unit", Text, nullable=False, server_default=text("''")),
    Column("resolved_ns", BigInteger),
    sqlite_autoincrement=True,
)
# Columns added to alerts after the first release: (name, declaration), added when missing.
_ALERT_COLUMNS = (
    ("provisional", "INTEGER NOT NULL DEFAULT 0"),
    ("retroactive", "INTEGER NOT NULL DEFAULT 0"),
    ("period_start_ns", "BIGINT"),
    ("assignee", "TEXT"),
    ("acknowledged_ns", "BIGINT"),
    ("acknowledged_by", "TEXT"),
    ("closed_ns", "BIGINT"),
    ("escalation_step", "INTEGER NOT NULL DEFAULT 0"),
    ("flaps", "INTEGER NOT NULL DEFAULT 0"),
    ("template", "TEXT NOT NULL DEFAULT ''"),
    ("params", "TEXT NOT NULL DEFAULT '{}'"),
)
_ACTIVE = ("open", "acknowledged")
_alert_indexes = (
    Index(
        "alerts_one_active",
        _alerts.c.factory,
        _alerts.c.device,
        _alerts.c.parameter,
        _alerts.c.rule,
        unique=True,
        sqlite_where=_alerts.c.state.in_(_ACTIVE),
        postgresql_where=_alerts.c.state.in_(_ACTIVE),
    ),
    Index("alerts_state", _alerts.c.state, _alerts.c.id),
    Index(
        "alerts_key", _alerts.c.factory, _alerts.c.device, _alerts.c.parameter, _alerts.c.rule, _alerts.c.id
    ),
)
_alert_audit = Table(
    "alert_audit",
    _m,
    Column("alert_id", BigInteger, nullable=False),
    Column("seq", _Id, Identity(always=True), primary_key=True),
    Column("ts_ns", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=text("''")),
    sqlite_autoincrement=True,
)
_alert_notifications = Table(
    "alert_notifications",
    _m,
    Column("alert_id", BigInteger, primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("notifier", Text, primary_key=True),
    Column("recipient", Text, primary_key=True),
    Column("ts_ns", BigInteger, nullable=False),
)
_api_users = Table(
    "api_users",
    _m,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("factory", Text),
    Column("password_hash", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("disabled", Integer, nullable=False, server_default=text("0")),
)
_api_tokens = Table(
    "api_tokens",
    _m,
    Column("token_hash", Text, primary_key=True),
    Column("user_name", Text, nullable=False),
    Column("issued_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
)
_alert_responses = Table(
    "alert_responses",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("factory", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("cause", Text, nullable=False),
    Column("corrective_action", Text, nullable=False),
    sqlite_autoincrement=True,
)
_dead_letters = Table(
    "dead_letters",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("received_ns", BigInteger, nullable=False),
    Column("topic", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("payload", Text, nullable=False),
    sqlite_autoincrement=True,
)
_other_indexes = (
    Index("alert_audit_alert", _alert_audit.c.alert_id, _alert_audit.c.seq),
    Index("api_tokens_user", _api_tokens.c.user_name),
    Index("alert_responses_alert", _alert_responses.c.alert_id, _alert_responses.c.id),
    Index("dead_letters_reason", _dead_letters.c.reason, _dead_letters.c.id),
)


def upgrade(conn: Connection) -> None:
    _m.create_all(conn, checkfirst=True)
    have = {column["name"] for column in sa.inspect(conn).get_columns("alerts")}
    for name, declaration in _ALERT_COLUMNS:
        if name not in have:
            conn.execute(sa.text(f"ALTER TABLE alerts ADD COLUMN {name} {declaration}"))
    conn.execute(sa.text("DROP INDEX IF EXISTS alerts_one_open"))  # the first release's (open only)
    for index in (*_alert_indexes, *_other_indexes):
        index.create(conn, checkfirst=True)
