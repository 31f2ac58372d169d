"""Dead letters: every rejected message or part of one, with its reason, kept for inspection.

Stored in the server's state database (SQLite), never silently dropped, and counted by reason in
the metrics. ``payload`` holds exactly what was rejected: the whole message when the message was
unusable, the offending scan or value otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eit.sqlitedb import immediate, open_durable

MAX_PAYLOAD_BYTES = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    topic       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    location    TEXT    NOT NULL,
    payload     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (reason, id);
"""


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
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_durable(path)
        self._db.executescript(_SCHEMA)

    def add(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        rows = [(d.received_ns, d.topic, d.reason, d.detail, d.location, d.payload) for d in letters]
        with self._lock, immediate(self._db) as cur:
            cur.executemany(
                "INSERT INTO dead_letters (received_ns, topic, reason, detail, location, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def recent(self, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        sql = "SELECT received_ns, topic, reason, detail, location, payload, id FROM dead_letters"
        params: list[object] = []
        if reason is not None:
            sql += " WHERE reason=?"
            params.append(reason)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [DeadLetter(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason").fetchall()
        return {reason: int(n) for reason, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
