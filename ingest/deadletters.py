"""Dead letters: every rejected message or part of one, with its reason, kept for inspection.

Stored in the server's state database (statedb: the SQLite file of ``state.path``, or PostgreSQL
when ``state.url`` is set), never silently dropped, and counted by reason in the metrics.
``payload`` holds exactly what was rejected: the whole message when the message was unusable, the
offending scan or value otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from statedb import StateDb, open_state_db
from statedb.tables import dead_letters

MAX_PAYLOAD_BYTES = 64 * 1024

_d = dead_letters.c


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_ns: int
    topic: str
    reason: str
    detail: str
    location: str
    payload: str
    id: int | None = None


def payload_text(payload: bytes | Any) -> str:
    """The rejected content as text: raw bytes decoded leniently, fragments as JSON."""
    if isinstance(payload, bytes | bytearray):
        text = bytes(payload[:MAX_PAYLOAD_BYTES]).decode("utf-8", errors="backslashreplace")
    else:
        text = json.dumps(payload, ensure_ascii=False, default=str)[:MAX_PAYLOAD_BYTES]
    return text


class DeadLetterStore:
    """The dead letters in the state database ``db`` (shared with the alerts and the accounts;
    closed here only when :func:`open_dead_letters` opened it for them alone).

    :meth:`add` raises :class:`statedb.StateDbUnavailable` when the database cannot be reached:
    the ingest then holds the batch unacknowledged and retries."""

    def __init__(self, db: StateDb, *, owns_db: bool = False) -> None:
        self.db = db
        self._owns_db = owns_db

    def add(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        rows = [
            {
                "received_ns": d.received_ns,
                "topic": _no_nul(d.topic),
                "reason": _no_nul(d.reason),
                "detail": _no_nul(d.detail),
                "location": _no_nul(d.location),
                "payload": _no_nul(d.payload),
            }
            for d in letters
        ]
        with self.db.write() as conn:
            conn.execute(dead_letters.insert(), rows)

    def recent(self, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        query = sa.select(_d.received_ns, _d.topic, _d.reason, _d.detail, _d.location, _d.payload, _d.id)
        if reason is not None:
            query = query.where(_d.reason == reason)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(_d.id.desc()).limit(limit)).all()
        return [
            DeadLetter(int(ns), str(topic), str(why), str(detail), str(where), str(payload), int(i))
            for ns, topic, why, detail, where, payload, i in rows
        ]

    def counts(self) -> dict[str, int]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(_d.reason, sa.func.count()).group_by(_d.reason)).all()
        return {str(reason): int(n) for reason, n in rows}

    def close(self) -> None:
        if self._owns_db:
            self.db.close()


def _no_nul(text: str) -> str:
    # PostgreSQL's text holds no NUL character (SQLite's does): written as the escape it stands for.
    return text.replace("\x00", "\\x00")


def open_dead_letters(url: str | None, path: Path) -> DeadLetterStore:
    """Dead letters on a state database of their own: PostgreSQL when ``url`` is given, else the
    SQLite file ``path``. The server shares one database between its stores instead."""
    return DeadLetterStore(open_state_db(url, path), owns_db=True)
