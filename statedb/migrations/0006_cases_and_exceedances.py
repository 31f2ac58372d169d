"""Alerts become cases with a condition of their own, and exceedances become records.

A case (still the ``alerts`` table: the API, CLI and MQTT keep the name) has two sides: what
officers do (``state``: open, acknowledged, resolved, closed) and what the rules see
(``condition``: ongoing or ended). Resolving a case whose condition persists leaves it ongoing;
one case per key has an ongoing condition at most. A new episode of a key opens a new case that
names the previous one. Existing alerts migrate: open and acknowledged ones are ongoing, the others
ended.

``exceedances``: one immutable record per legal period above a limit (confirmed), and the
provisional ones of running hours, each decided once (confirmed or withdrawn).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Double, Identity, Index, Integer, MetaData, Table, Text, text
from sqlalchemy.engine import Connection

_Id = BigInteger().with_variant(Integer(), "sqlite")
_m = MetaData()

_exceedances = Table(
    "exceedances",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("case_id", BigInteger),
    Column("factory", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("averaging", Text, nullable=False),
    Column("period_start_ns", BigInteger, nullable=False),
    Column("period_end_ns", BigInteger, nullable=False),
    Column("average", Double, nullable=False),
    Column("limit_value", Double, nullable=False),
    Column("unit", Text, nullable=False),
    Column("basis", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("origin", Text, nullable=False, server_default=text("''")),
    Column("retroactive", Integer, nullable=False, server_default=text("0")),
    Column("provisional", Integer, nullable=False, server_default=text("0")),
    Column("outcome", Text),
    Column("decided_ns", BigInteger),
    Column("recorded_ns", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)
_INDEXES = (  # bound to the table: created with it
    Index("exceedances_case", _exceedances.c.case_id, _exceedances.c.id),
    Index("exceedances_period", _exceedances.c.factory, _exceedances.c.period_start_ns),
    Index(
        "exceedances_series",
        _exceedances.c.factory,
        _exceedances.c.device,
        _exceedances.c.channel,
        _exceedances.c.rule,
        _exceedances.c.period_start_ns,
    ),
)

_COLUMNS = (
    ("condition", "TEXT NOT NULL DEFAULT 'ended'"),
    ("condition_since_ns", "BIGINT"),
    ("ended_ns", "BIGINT"),
    ("previous_id", "BIGINT"),
    ("resolution", "TEXT NOT NULL DEFAULT ''"),
    ("current_value", "DOUBLE PRECISION"),
    ("current_ns", "BIGINT"),
)


def upgrade(conn: Connection) -> None:
    for name, declaration in _COLUMNS:
        conn.execute(sa.text(f"ALTER TABLE alerts ADD COLUMN {name} {declaration}"))
    conn.execute(
        sa.text(
            "UPDATE alerts SET condition = 'ongoing', condition_since_ns = opened_ns,"
            " current_value = value, current_ns = updated_ns"
            " WHERE state IN ('open', 'acknowledged')"
        )
    )
    conn.execute(sa.text("UPDATE alerts SET ended_ns = resolved_ns WHERE state IN ('resolved', 'closed')"))
    conn.execute(sa.text("DROP INDEX alerts_one_active"))
    conn.execute(
        sa.text(
            "CREATE UNIQUE INDEX alerts_one_ongoing ON alerts (factory, device, parameter, rule)"
            " WHERE condition = 'ongoing'"
        )
    )
    conn.execute(sa.text("CREATE INDEX alerts_condition ON alerts (condition, id)"))
    conn.execute(sa.text("CREATE INDEX alerts_factory ON alerts (factory, id)"))
    _exceedances.create(conn)  # with its indexes
