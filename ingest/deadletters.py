"""Dead letters: every rejected message or part of one, with its reason, kept for inspection.

Stored in the server's state database (statedb: the SQLite file of ``state.path``, or PostgreSQL
when ``state.url`` is set), never silently dropped, and counted by reason in the metrics.
``payload`` holds exactly what was rejected: the whole message when the message was unusable, the
offending scan or value otherwise.

The table cannot grow without bound, whatever a sender does:

- A dead letter is keyed by a hash of its topic, reason, location and payload (the whole payload,
  also when only its first 64 KiB are kept): a message the broker delivers again, or an agent
  sends again, is kept once, with the times it came (``count``) and when it came first
  (``received_ns``) and last (``last_ns``).
- Every field is capped: the payload at 64 KiB (with its full size and hash when cut), the topic,
  the detail and the location at a few hundred characters.
- Each factory keeps at most ``max_per_factory`` dead letters (the ones seen longest ago go
  first; the senders of unregistered factories and broken topics share one such allowance), and
  none older than ``retention_days``: see :class:`DeadLetterSettings`. What is let go is counted
  (:class:`Evicted`, the ingest's ``eit_dead_letters_evicted_total``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ingest.settings import DeadLetterSettings
from statedb import StateDb, open_state_db
from statedb.tables import dead_letters

MAX_PAYLOAD_BYTES = 64 * 1024
# What payload_text gives at most: 64 KiB, each undecodable byte written as 4 characters, and
# the note of the whole payload's size and hash.
_MAX_PAYLOAD_CHARS = 4 * MAX_PAYLOAD_BYTES + 256
MAX_TOPIC_CHARS = 512
MAX_REASON_CHARS = 64
MAX_DETAIL_CHARS = 2000
MAX_LOCATION_CHARS = 256
NS_PER_DAY = 86_400 * 1_000_000_000
# Retention is swept at most this often (and when the ingest starts).
PRUNE_INTERVAL_NS = 600 * 1_000_000_000

_d = dead_letters.c


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_ns: int  # first received
    topic: str
    reason: str
    detail: str
    location: str
    payload: str
    id: int | None = None
    # The registered factory the topic names; "" for an unregistered factory or a broken topic.
    factory: str = ""
    count: int = 1  # times received
    last_ns: int | None = None  # last received (None: received_ns)

    @property
    def last_received_ns(self) -> int:
        return self.received_ns if self.last_ns is None else self.last_ns

    def capped(self) -> DeadLetter:
        """Every field within its cap; PostgreSQL's text holds no NUL (written as its escape)."""
        return replace(
            self,
            topic=_cap(self.topic, MAX_TOPIC_CHARS),
            reason=_cap(self.reason, MAX_REASON_CHARS),
            detail=_cap(self.detail, MAX_DETAIL_CHARS),
            location=_cap(self.location, MAX_LOCATION_CHARS),
            payload=_storable(
                self.payload
                if len(self.payload) <= _MAX_PAYLOAD_CHARS
                else payload_text(self.payload.encode("utf-8", "surrogatepass"))
            ),
            factory=_cap(self.factory, MAX_REASON_CHARS),
        )

    @property
    def key(self) -> str:
        """The identity of a dead letter: the same message rejected for the same reason at the
        same place (its detail may differ: it can name the server's clock)."""
        return letter_key(self.topic, self.reason, self.location, self.payload)


def letter_key(topic: str, reason: str, location: str, payload: str) -> str:
    """SHA-256 (hex) of the capped topic, reason, location and the payload as kept (which names
    the whole payload's hash when it was cut). statedb/migrations/0004 keyed the dead letters of
    earlier releases the same way."""
    digest = hashlib.sha256()
    for part in (
        _cap(topic, MAX_TOPIC_CHARS),
        _cap(reason, MAX_REASON_CHARS),
        _cap(location, MAX_LOCATION_CHARS),
        _storable(payload),
    ):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def payload_text(payload: bytes | Any) -> str:
    """The rejected content as text: raw bytes decoded leniently, fragments as JSON. Beyond
    64 KiB the text is cut, and ends with the whole content's size and SHA-256."""
    if isinstance(payload, bytes | bytearray):
        whole = bytes(payload)
    else:
        try:
            whole = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        except (ValueError, TypeError, RecursionError):  # not reached with the contract's bounds
            whole = repr(payload)[: MAX_PAYLOAD_BYTES + 1].encode("utf-8", "surrogatepass")
    if len(whole) <= MAX_PAYLOAD_BYTES:
        return whole.decode("utf-8", errors="backslashreplace")
    head = whole[:MAX_PAYLOAD_BYTES].decode("utf-8", errors="backslashreplace")
    return f"{head}... [cut: {len(whole):,} bytes in all, sha256 {hashlib.sha256(whole).hexdigest()}]"


@dataclass(slots=True)
class Evicted:
    """Dead letters let go by :meth:`DeadLetterStore.add` or :meth:`DeadLetterStore.prune`."""

    cap: int = 0  # beyond a factory's max_per_factory, the ones seen longest ago
    retention: int = 0  # last seen more than retention_days ago
    factories: list[str] = field(default_factory=list)  # whose cap let some go


class DeadLetterStore:
    """The dead letters in the state database ``db`` (shared with the alerts and the accounts;
    closed here only when :func:`open_dead_letters` opened it for them alone).

    :meth:`add` raises :class:`statedb.StateDbUnavailable` when the database cannot be reached:
    the ingest then holds the batch unacknowledged and retries."""

    def __init__(
        self, db: StateDb, *, owns_db: bool = False, settings: DeadLetterSettings | None = None
    ) -> None:
        self.db = db
        self._owns_db = owns_db
        self.settings = settings or DeadLetterSettings()
        self._next_prune_ns = 0

    def add(self, letters: Sequence[DeadLetter], now_ns: int | None = None) -> Evicted:
        """Keep ``letters`` (one row per key: a repeat counts and moves its last time), then let
        go what is beyond each touched factory's cap, and sweep retention when it is due (on
        the clock ``now_ns``; by default the newest of the letters' times)."""
        evicted = Evicted()
        if not letters:
            return evicted
        # The retention's clock: the letters' own (the ingest stamps them as it receives them).
        now = max(d.last_received_ns for d in letters) if now_ns is None else now_ns
        merged: dict[str, dict[str, Any]] = {}
        for letter in letters:
            d = letter.capped()
            key = d.key
            row = merged.get(key)
            if row is None:
                merged[key] = {
                    "received_ns": d.received_ns,
                    "topic": d.topic,
                    "reason": d.reason,
                    "detail": d.detail,
                    "location": d.location,
                    "payload": d.payload,
                    "factory": d.factory,
                    "letter_key": key,
                    "last_ns": d.last_received_ns,
                    "seen_count": d.count,
                }
            else:
                row["seen_count"] += d.count
                row["received_ns"] = min(row["received_ns"], d.received_ns)
                if d.last_received_ns >= row["last_ns"]:
                    row["last_ns"], row["detail"] = d.last_received_ns, d.detail
        insert = (
            postgresql.insert(dead_letters) if self.db.kind == "postgresql" else sqlite.insert(dead_letters)
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[_d.letter_key],
            set_={
                "seen_count": _d.seen_count + insert.excluded.seen_count,
                "last_ns": sa.func.greatest(_d.last_ns, insert.excluded.last_ns)
                if self.db.kind == "postgresql"
                else sa.func.max(_d.last_ns, insert.excluded.last_ns),
                # The detail of the latest time it came (a late redelivery keeps the newer one).
                "detail": sa.case(
                    (insert.excluded.last_ns >= _d.last_ns, insert.excluded.detail), else_=_d.detail
                ),
            },
        )
        with self.db.write() as conn:
            conn.execute(upsert, list(merged.values()))
            for factory in sorted({row["factory"] for row in merged.values()}):
                cut = self._enforce_cap(conn, factory)
                if cut:
                    evicted.cap += cut
                    evicted.factories.append(factory)
            if now >= self._next_prune_ns:
                evicted.retention = self._enforce_retention(conn, now)
        if now >= self._next_prune_ns:
            self._next_prune_ns = now + PRUNE_INTERVAL_NS
        return evicted

    def prune(self, now_ns: int | None = None) -> Evicted:
        """Let go what is beyond retention, and beyond the cap of every factory (when the
        ingest starts: the settings may have been lowered since)."""
        now = time.time_ns() if now_ns is None else now_ns
        evicted = Evicted()
        with self.db.write() as conn:
            evicted.retention = self._enforce_retention(conn, now)
            over = conn.execute(
                sa.select(_d.factory)
                .group_by(_d.factory)
                .having(sa.func.count() > self.settings.max_per_factory)
                .order_by(_d.factory)
            ).scalars()
            for factory in list(over):
                cut = self._enforce_cap(conn, str(factory))
                if cut:
                    evicted.cap += cut
                    evicted.factories.append(str(factory))
        self._next_prune_ns = now + PRUNE_INTERVAL_NS
        return evicted

    def _enforce_cap(self, conn: sa.Connection, factory: str) -> int:
        kept = int(conn.execute(sa.select(sa.func.count()).where(_d.factory == factory)).scalar_one())
        excess = kept - self.settings.max_per_factory
        if excess <= 0:
            return 0
        oldest = (
            sa.select(_d.id).where(_d.factory == factory).order_by(_d.last_ns, _d.id).limit(excess)
        ).scalar_subquery()
        conn.execute(sa.delete(dead_letters).where(_d.id.in_(oldest)))
        return excess

    def _enforce_retention(self, conn: sa.Connection, now_ns: int) -> int:
        cutoff = now_ns - int(self.settings.retention_days * NS_PER_DAY)
        return int(conn.execute(sa.delete(dead_letters).where(_d.last_ns < cutoff)).rowcount)

    def recent(self, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        """The dead letters seen most recently first (a repeat comes back to the top)."""
        query = sa.select(
            _d.received_ns,
            _d.topic,
            _d.reason,
            _d.detail,
            _d.location,
            _d.payload,
            _d.id,
            _d.factory,
            _d.seen_count,
            _d.last_ns,
        )
        if reason is not None:
            query = query.where(_d.reason == reason)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(_d.last_ns.desc(), _d.id.desc()).limit(limit)).all()
        return [
            DeadLetter(
                int(ns),
                str(topic),
                str(why),
                str(detail),
                str(where),
                str(payload),
                int(i),
                str(factory),
                int(count),
                int(last),
            )
            for ns, topic, why, detail, where, payload, i, factory, count, last in rows
        ]

    def counts(self) -> dict[str, int]:
        """Dead letters kept, by reason (a repeated one counts once)."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(_d.reason, sa.func.count()).group_by(_d.reason)).all()
        return {str(reason): int(n) for reason, n in rows}

    def close(self) -> None:
        if self._owns_db:
            self.db.close()


def _cap(text: str, limit: int) -> str:
    text = _storable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _storable(text: str) -> str:
    """Text every database keeps: PostgreSQL's text holds no NUL character (SQLite's does), and
    neither takes a lone surrogate (JSON's "\\ud800" in a key): written as the escapes they are."""
    text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


# C0 and C1 control characters, and the Unicode marks that reorder or hide text on a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
# The same beyond C0 (json.dumps escapes C0 in strings; the C0 outside them is its layout).
_CONTROL_NOT_C0 = re.compile("[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (an ANSI escape sequence's ESC,
    a carriage return that overwrites the line, bidirectional overrides) as escapes such as
    ``\\x1b`` and ``\\u202e``; everything else, Thai included, as it is."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def json_printable(text: str) -> str:
    """JSON text (from json.dumps, which escapes C0 controls itself) with the other characters
    of :func:`printable` written as JSON's ``\\uXXXX`` escapes: the same document, safe on a
    terminal."""
    return _CONTROL_NOT_C0.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def open_dead_letters(
    url: str | None, path: Path, settings: DeadLetterSettings | None = None
) -> DeadLetterStore:
    """Dead letters on a state database of their own: PostgreSQL when ``url`` is given, else the
    SQLite file ``path``. The server shares one database between its stores instead."""
    return DeadLetterStore(open_state_db(url, path), owns_db=True, settings=settings)
