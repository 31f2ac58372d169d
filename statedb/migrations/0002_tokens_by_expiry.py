"""Tokens by expiry: every login sweeps the expired tokens (``expires_ns <= now``), which now reads
an index instead of the whole table."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS api_tokens_expires ON api_tokens (expires_ns)"))
