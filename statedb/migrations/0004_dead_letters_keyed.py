"""Dead letters keyed and capped (ingest/deadletters.py): a redelivered bad message is kept once
with the times it came, each factory keeps a bounded number, none is kept past a retention.

The dead letters of earlier releases are keyed as the ingest keys new ones (the hash and the
caps are written out here as they are today, so this migration does the same to every database
whenever it runs), repeats among them merged into one row (the first, counting the others), and
their topic, detail and location cut to the caps.
"""

from __future__ import annotations

import hashlib
import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_CHUNK = 1000
_TOPIC, _REASON, _DETAIL, _LOCATION = 512, 64, 2000, 256
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def _cap(text: str, limit: int) -> str:
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key(topic: str, reason: str, location: str, payload: str) -> str:
    digest = hashlib.sha256()
    for part in (_cap(topic, _TOPIC), _cap(reason, _REASON), _cap(location, _LOCATION), payload):
        digest.update(part.replace("\x00", "\\x00").encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _factory(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == "eit" and _ID.fullmatch(parts[1]):
        return parts[1]
    return ""


def upgrade(conn: Connection) -> None:
    for column in (
        "factory TEXT NOT NULL DEFAULT ''",
        "letter_key TEXT NOT NULL DEFAULT ''",
        "last_ns BIGINT NOT NULL DEFAULT 0",
        "seen_count BIGINT NOT NULL DEFAULT 1",
    ):
        conn.execute(sa.text(f"ALTER TABLE dead_letters ADD COLUMN {column}"))
    after = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, topic, reason, detail, location, payload FROM dead_letters"
                " WHERE id > :after ORDER BY id LIMIT :n"
            ),
            {"after": after, "n": _CHUNK},
        ).all()
        if not rows:
            break
        conn.execute(
            sa.text(
                "UPDATE dead_letters SET topic = :topic, reason = :reason, detail = :detail,"
                " location = :location, factory = :factory, letter_key = :key, last_ns = received_ns"
                " WHERE id = :id"
            ),
            [
                {
                    "id": row_id,
                    "topic": _cap(topic, _TOPIC),
                    "reason": _cap(reason, _REASON),
                    "detail": _cap(detail, _DETAIL),
                    "location": _cap(location, _LOCATION),
                    "factory": _factory(topic),
                    "key": _key(topic, reason, location, payload),
                }
                for row_id, topic, reason, detail, location, payload in rows
            ],
        )
        after = rows[-1][0]
    # Repeats: the first row counts them all and keeps the last time; the others go.
    conn.execute(sa.text("CREATE INDEX dead_letters_key_merge ON dead_letters (letter_key, id)"))
    conn.execute(
        sa.text(
            "UPDATE dead_letters SET"
            " seen_count = (SELECT count(*) FROM dead_letters AS d2"
            "  WHERE d2.letter_key = dead_letters.letter_key),"
            " last_ns = (SELECT max(d2.received_ns) FROM dead_letters AS d2"
            "  WHERE d2.letter_key = dead_letters.letter_key)"
            " WHERE id IN (SELECT min(id) FROM dead_letters GROUP BY letter_key HAVING count(*) > 1)"
        )
    )
    conn.execute(
        sa.text(
            "DELETE FROM dead_letters WHERE id NOT IN (SELECT min(id) FROM dead_letters GROUP BY letter_key)"
        )
    )
    conn.execute(sa.text("DROP INDEX dead_letters_key_merge"))
    conn.execute(sa.text("CREATE UNIQUE INDEX dead_letters_key ON dead_letters (letter_key)"))
    conn.execute(sa.text("CREATE INDEX dead_letters_factory ON dead_letters (factory, last_ns, id)"))
    conn.execute(sa.text("CREATE INDEX dead_letters_last ON dead_letters (last_ns)"))
