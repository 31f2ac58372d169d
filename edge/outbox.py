"""The on-disk outbox: every scan waits here until the broker has acknowledged it (QoS 1).

SQLite in WAL mode with synchronous=FULL: a scan the agent took is on disk before the scan loop
moves on, and survives SIGKILL or a power cut. The publisher reads pending scans in order and
deletes them only when their PUBACK arrives. Each device has its own increasing ``seq``, assigned
in the same transaction that stores the scan, so a gap in ``seq`` at the server means lost scans.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from eit.timeutil import ns_to_iso

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    device  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    ts_ns   INTEGER NOT NULL,
    body    TEXT    NOT NULL        -- the scan as it goes on the wire (JSON object)
);
CREATE INDEX IF NOT EXISTS scans_device_id ON scans (device, id);
CREATE TABLE IF NOT EXISTS devices (
    device   TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class PendingScan:
    id: int
    seq: int
    ts_ns: int
    body: str


class Outbox:
    """A durable FIFO of scans per device, safe to use from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, device: str, ts_ns: int, values: dict[str, float], flags: dict[str, str]) -> int:
        """Store a scan durably; returns its sequence number."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT last_seq FROM devices WHERE device=?", (device,)).fetchone()
                seq = (row[0] + 1) if row else 1
                scan: dict[str, object] = {"seq": seq, "ts": ns_to_iso(ts_ns), "values": values}
                if flags:
                    scan["flags"] = flags
                body = json.dumps(scan, separators=(",", ":"), allow_nan=False)
                cur.execute(
                    "INSERT INTO scans (device, seq, ts_ns, body) VALUES (?, ?, ?, ?)",
                    (device, seq, ts_ns, body),
                )
                cur.execute(
                    "INSERT INTO devices (device, last_seq) VALUES (?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET last_seq=excluded.last_seq",
                    (device, seq),
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return seq

    def pending(self, device: str, after_id: int = 0, limit: int = 500) -> list[PendingScan]:
        """The oldest scans of ``device`` with an id above ``after_id``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, seq, ts_ns, body FROM scans WHERE device=? AND id>? ORDER BY id LIMIT ?",
                (device, after_id, limit),
            ).fetchall()
        return [PendingScan(*row) for row in rows]

    def delete(self, ids: list[int]) -> None:
        """Forget scans the broker has acknowledged."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM scans WHERE id=?", [(i,) for i in ids])
            self._db.execute("COMMIT")

    def count(self, device: str | None = None) -> int:
        with self._lock:
            if device is None:
                row = self._db.execute("SELECT count(*) FROM scans").fetchone()
            else:
                row = self._db.execute("SELECT count(*) FROM scans WHERE device=?", (device,)).fetchone()
        return int(row[0])

    def last_seq(self, device: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT last_seq FROM devices WHERE device=?", (device,)).fetchone()
        return int(row[0]) if row else 0


def message_payload(scans: list[PendingScan]) -> bytes:
    """A v1 payload holding several stored scans, built without re-encoding them."""
    return ('{"v":1,"scans":[' + ",".join(s.body for s in scans) + "]}").encode()
