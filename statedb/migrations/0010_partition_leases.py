"""Partition leases (ingest/leases.py): which ingest worker of a RabbitMQ cluster may write a
partition's readings, until when, and the token each new holder raises."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(
        sa.text(
            "CREATE TABLE IF NOT EXISTS partition_leases ("
            " queue_set TEXT NOT NULL,"
            " partition INTEGER NOT NULL,"
            " owner TEXT NOT NULL,"
            " token BIGINT NOT NULL,"
            " expires_ns BIGINT NOT NULL,"
            " PRIMARY KEY (queue_set, partition))"
        )
    )
