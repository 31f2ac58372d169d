"""The rules' pending work (alerts/pending.py): hours open, hours to recompute and days to count,
recorded before a batch is acknowledged and settled once their results are written."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(
        sa.text(
            "CREATE TABLE IF NOT EXISTS rules_pending ("
            " kind TEXT NOT NULL,"
            " factory TEXT NOT NULL,"
            " device TEXT NOT NULL,"
            " channel TEXT NOT NULL,"
            " start_ns BIGINT NOT NULL,"
            " seq BIGINT NOT NULL,"
            " PRIMARY KEY (kind, factory, device, channel, start_ns))"
        )
    )
