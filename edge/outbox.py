"""The on-disk outbox: every scan waits here until the broker has acknowledged it (QoS 1).

SQLite in WAL mode with synchronous=FULL: a scan the agent took is on disk before the scan loop
moves on, and survives SIGKILL or a power cut. The publisher reads pending scans in order and
deletes them only when their PUBACK arrives. Each device has its own increasing ``seq``, assigned
in the same transaction that stores the scan, so a gap in ``seq`` at the server means lost scans.

Bounds: the outbox never grows past ``max_bytes`` of database pages (the write-ahead log adds up
to a few MB) and never keeps a scan longer than ``max_age_s`` after it was stored. When a bound
is reached the oldest scans are dropped, in the same transaction that stores the new one, and
counted per device in the file itself (``dropped``), so the count survives restarts and appears
in every status message and in the agent's metrics. Scans stored while the clock was known to be
wrong are never dropped for age: their age is unknown. Only the size bound can drop them. The
``seq`` ranges dropped are kept too (``dropped_seqs``, the newest ranges per device) and told in
the status message, so the server tells the drops the agent reported from unexplained gaps.

Signing (wire v2, eit/signing.py): with a device's key the scan is signed as it is stored, in the
same transaction, and names the hash of the device's previous scan, kept in the file
(``devices.last_hash``): the chain goes on across restarts and outages, and a scan dropped by a
bound leaves a gap the status explains.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eit.bounds import MAX_MESSAGE_BYTES
from eit.signing import GENESIS, Signer, canonical, scan_hash
from eit.sqlitedb import immediate, open_durable
from eit.timeutil import NS_PER_S, now_ns, ns_to_iso, parse_iso_ns

log = logging.getLogger("eit.edge.outbox")

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
CREATE TABLE IF NOT EXISTS dropped (
    device  TEXT    NOT NULL,
    reason  TEXT    NOT NULL,       -- 'size' or 'age'
    scans   INTEGER NOT NULL,
    PRIMARY KEY (device, reason)
);
CREATE TABLE IF NOT EXISTS dropped_seqs (
    device    TEXT    NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    reason    TEXT    NOT NULL,
    PRIMARY KEY (device, first_seq)
);
"""
# The dropped seq ranges kept per device (the status message tells them all).
DROPPED_RANGES_KEPT = 32
# Columns added after the first release; an outbox file from then is upgraded in place.
_ADDED_COLUMNS = {
    "scans": [
        ("stored_ns", "INTEGER NOT NULL DEFAULT 0"),  # agent clock when stored (for the age bound)
        ("clock_ok", "INTEGER NOT NULL DEFAULT 1"),  # 0: stored while the clock was known wrong
        ("signed", "INTEGER NOT NULL DEFAULT 0"),  # 1: the body carries a signature (wire v2)
    ],
    "devices": [
        ("last_ts_ns", "INTEGER NOT NULL DEFAULT 0"),
        ("last_hash", "TEXT NOT NULL DEFAULT ''"),  # the hash of the device's last signed scan
    ],
}
AGE_CHECK_EVERY_S = 10.0
DROP_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class PendingScan:
    id: int
    seq: int
    ts_ns: int
    body: str
    signed: bool = False


class Outbox:
    """A durable, bounded FIFO of scans per device, safe to use from several threads."""

    def __init__(
        self,
        path: Path,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
        age_check_every_s: float = AGE_CHECK_EVERY_S,
        *,
        factory: str = "",
        signers: dict[str, Signer] | None = None,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        # Told the devices whose scans a bound dropped, after the transaction (the agent sends
        # their status at once: it names the seqs dropped).
        self.on_drop = on_drop
        self._dropped_devices: set[str] = set()
        self.factory = factory
        self.signers = signers or {}
        self.age_check_every_s = age_check_every_s
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._db = open_durable(path)
        self._db.execute("PRAGMA journal_size_limit=4194304")
        # A bounded page cache (1 MB): the outbox touches only its newest and oldest pages, and
        # during a long outage the default (2 MB, and per connection) would grow the agent's memory.
        self._db.execute("PRAGMA cache_size=-1024")
        self._db.executescript(_SCHEMA)
        self._upgrade()
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._next_age_check = 0.0
        self._unlogged_drops: dict[tuple[str, str], int] = {}
        self._next_drop_log = 0.0

    def _upgrade(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                    if name == "stored_ns":
                        self._db.execute("UPDATE scans SET stored_ns = ts_ns")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(
        self,
        device: str,
        ts_ns: int,
        values: dict[str, float],
        flags: dict[str, str],
        *,
        clock_ok: bool = True,
        stored_ns: int | None = None,
    ) -> int:
        """Store a scan durably (dropping the oldest scans if a bound is reached); returns its seq."""
        stored = now_ns() if stored_ns is None else stored_ns
        with self._lock:
            with immediate(self._db) as cur:
                row = cur.execute(
                    "SELECT last_seq, last_hash FROM devices WHERE device=?", (device,)
                ).fetchone()
                seq = (row[0] + 1) if row else 1
                last_hash = (row[1] if row else "") or GENESIS
                wire_ts = ns_to_iso(ts_ns)
                scan: dict[str, object] = {"seq": seq, "ts": wire_ts, "values": values}
                if flags:
                    scan["flags"] = flags
                signer = self.signers.get(device)
                if signer is not None:
                    # The time as the wire carries it (to the microsecond), which the server verifies.
                    at = parse_iso_ns(wire_ts)
                    signed = canonical(self.factory, device, seq, at, values, flags, signer.key_id, last_hash)
                    sig = signer.sign(signed)
                    scan.update({"k": signer.key_id, "prev": last_hash, "sig": sig})
                    last_hash = scan_hash(signed, sig)
                body = json.dumps(scan, separators=(",", ":"), allow_nan=False)
                cur.execute(
                    "INSERT INTO scans (device, seq, ts_ns, body, stored_ns, clock_ok, signed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (device, seq, ts_ns, body, stored, int(clock_ok), int(signer is not None)),
                )
                cur.execute(
                    "INSERT INTO devices (device, last_seq, last_ts_ns, last_hash) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET last_seq=excluded.last_seq, "
                    "last_ts_ns=max(last_ts_ns, excluded.last_ts_ns), last_hash=excluded.last_hash",
                    (device, seq, ts_ns if clock_ok else 0, last_hash if signer is not None else ""),
                )
                if clock_ok:  # a clock known wrong cannot tell the age of anything
                    self._enforce_age(cur, now_ns())
                self._enforce_size(cur)
            self._log_drops()
            dropped, self._dropped_devices = self._dropped_devices, set()
        if dropped and self.on_drop is not None:
            for name in sorted(dropped):
                self.on_drop(name)
        return seq

    # -- bounds (called inside append's transaction) ------------------------------------------------
    def used_bytes(self, cur: sqlite3.Cursor | None = None) -> int:
        c = cur or self._db.cursor()
        pages = int(c.execute("PRAGMA page_count").fetchone()[0])
        free = int(c.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _enforce_size(self, cur: sqlite3.Cursor) -> None:
        if self.max_bytes is None:
            return
        while self.used_bytes(cur) > self.max_bytes:
            total = int(cur.execute("SELECT count(*) FROM scans").fetchone()[0])
            if total <= 1:
                return  # never drop the scan just stored; a bound this small is a config error
            batch = max(1, min(total - 1, total // 100))
            rows = cur.execute("SELECT id, device, seq FROM scans ORDER BY id LIMIT ?", (batch,)).fetchall()
            self._drop(cur, rows, "size")

    def _enforce_age(self, cur: sqlite3.Cursor, now: int) -> None:
        if self.max_age_s is None or time.monotonic() < self._next_age_check:
            return
        self._next_age_check = time.monotonic() + self.age_check_every_s
        cutoff = now - int(self.max_age_s * NS_PER_S)
        rows = cur.execute(
            "SELECT id, device, seq FROM scans WHERE clock_ok=1 AND stored_ns<? ORDER BY id", (cutoff,)
        ).fetchall()
        if rows:
            self._drop(cur, rows, "age")

    def _drop(self, cur: sqlite3.Cursor, rows: list[tuple[int, str, int]], reason: str) -> None:
        per_device: dict[str, int] = {}
        seqs: dict[str, list[int]] = {}
        for _, device, seq in rows:
            per_device[device] = per_device.get(device, 0) + 1
            seqs.setdefault(device, []).append(seq)
        for device, dropped_seqs in seqs.items():
            self._note_dropped_seqs(cur, device, sorted(dropped_seqs), reason)
        cur.executemany("DELETE FROM scans WHERE id=?", [(r[0],) for r in rows])
        for device, n in per_device.items():
            cur.execute(
                "INSERT INTO dropped (device, reason, scans) VALUES (?, ?, ?) "
                "ON CONFLICT(device, reason) DO UPDATE SET scans=scans+excluded.scans",
                (device, reason, n),
            )
            key = (device, reason)
            self._unlogged_drops[key] = self._unlogged_drops.get(key, 0) + n
            self._dropped_devices.add(device)

    def _note_dropped_seqs(self, cur: sqlite3.Cursor, device: str, seqs: list[int], reason: str) -> None:
        """Keep the dropped seqs as ranges, joined to the device's newest range when they follow it."""
        ranges: list[list[int]] = []
        for seq in seqs:
            if ranges and seq == ranges[-1][1] + 1:
                ranges[-1][1] = seq
            else:
                ranges.append([seq, seq])
        newest = cur.execute(
            "SELECT first_seq, last_seq, reason FROM dropped_seqs WHERE device=? "
            "ORDER BY first_seq DESC LIMIT 1",
            (device,),
        ).fetchone()
        for first, last in ranges:
            if newest is not None and newest[1] + 1 == first and newest[2] == reason:
                cur.execute(
                    "UPDATE dropped_seqs SET last_seq=? WHERE device=? AND first_seq=?",
                    (last, device, newest[0]),
                )
                newest = (newest[0], last, reason)
                continue
            cur.execute(
                "INSERT OR REPLACE INTO dropped_seqs (device, first_seq, last_seq, reason) "
                "VALUES (?, ?, ?, ?)",
                (device, first, last, reason),
            )
            newest = (first, last, reason)
        cur.execute(
            "DELETE FROM dropped_seqs WHERE device=? AND first_seq NOT IN "
            "(SELECT first_seq FROM dropped_seqs WHERE device=? ORDER BY first_seq DESC LIMIT ?)",
            (device, device, DROPPED_RANGES_KEPT),
        )

    def dropped_seqs(self, device: str) -> list[tuple[int, int]]:
        """The newest seq ranges (first, last) of ``device`` dropped by a bound, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT first_seq, last_seq FROM dropped_seqs WHERE device=? ORDER BY first_seq", (device,)
            ).fetchall()
        return [(int(a), int(b)) for a, b in rows]

    def _log_drops(self) -> None:
        if not self._unlogged_drops or time.monotonic() < self._next_drop_log:
            return
        self._next_drop_log = time.monotonic() + DROP_LOG_EVERY_S
        for (device, reason), n in sorted(self._unlogged_drops.items()):
            bound = (
                f"larger than {(self.max_bytes or 0) / 1e6:g} MB"
                if reason == "size"
                else f"older than {(self.max_age_s or 0) / 86400:g} days"
            )
            log.warning(
                "outbox %s: dropped the %d oldest scan(s) of %s: the backlog is %s "
                "(totals: eit_edge_outbox_dropped_scans_total, and 'outbox_dropped' in the status)",
                self.path,
                n,
                device,
                bound,
            )
        self._unlogged_drops.clear()

    # -- reading ---------------------------------------------------------------------------------------
    def pending(self, device: str, after_id: int = 0, limit: int = 500) -> list[PendingScan]:
        """The oldest scans of ``device`` with an id above ``after_id``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, seq, ts_ns, body, signed FROM scans WHERE device=? AND id>? ORDER BY id LIMIT ?",
                (device, after_id, limit),
            ).fetchall()
        return [PendingScan(i, seq, ts, body, bool(signed)) for i, seq, ts, body, signed in rows]

    def delete(self, ids: list[int]) -> None:
        """Forget scans the broker has acknowledged."""
        if not ids:
            return
        with self._lock, immediate(self._db) as cur:
            cur.executemany("DELETE FROM scans WHERE id=?", [(i,) for i in ids])

    def count(self, device: str | None = None) -> int:
        with self._lock:
            if device is None:
                row = self._db.execute("SELECT count(*) FROM scans").fetchone()
            else:
                row = self._db.execute("SELECT count(*) FROM scans WHERE device=?", (device,)).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        """Pending scans per device."""
        with self._lock:
            rows = self._db.execute("SELECT device, count(*) FROM scans GROUP BY device").fetchall()
        return {str(d): int(n) for d, n in rows}

    def dropped(self, device: str | None = None) -> dict[str, int]:
        """Scans dropped by reason ('size', 'age'), for one device or all, since the file was made."""
        with self._lock:
            if device is None:
                rows = self._db.execute("SELECT reason, sum(scans) FROM dropped GROUP BY reason").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT reason, scans FROM dropped WHERE device=?", (device,)
                ).fetchall()
        return {str(r): int(n) for r, n in rows}

    def dropped_by_device(self) -> dict[tuple[str, str], int]:
        with self._lock:
            rows = self._db.execute("SELECT device, reason, scans FROM dropped").fetchall()
        return {(str(d), str(r)): int(n) for d, r, n in rows}

    def last_seq(self, device: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT last_seq FROM devices WHERE device=?", (device,)).fetchone()
        return int(row[0]) if row else 0

    def latest_ts_ns(self) -> int:
        """The newest scan time ever stored (any device): the clock must not run behind it."""
        with self._lock:
            row = self._db.execute("SELECT max(last_ts_ns) FROM devices").fetchone()
        return int(row[0] or 0)


_ENVELOPE_BYTES = len(b'{"v":1,"scans":[]}')


def message_payload(scans: list[PendingScan]) -> bytes:
    """A payload holding several stored scans, built without re-encoding them: v2 when one of
    them is signed (v2 carries unsigned scans too), else v1."""
    version = 2 if any(s.signed for s in scans) else 1
    return (f'{{"v":{version},"scans":[' + ",".join(s.body for s in scans) + "]}").encode()


def within_message(scans: list[PendingScan], max_bytes: int = MAX_MESSAGE_BYTES) -> list[PendingScan]:
    """The first of ``scans`` whose payload (:func:`message_payload`) fits in ``max_bytes``, the
    contract's largest message (eit/bounds.py): the server refuses a larger one whole. At least
    one scan, even one alone beyond it (then the server dead-letters it as too_large, with its
    reason, rather than the agent resending it for ever)."""
    size = _ENVELOPE_BYTES
    for index, scan in enumerate(scans):
        size += len(scan.body.encode()) + (1 if index else 0)
        if size > max_bytes:
            return scans[: max(index, 1)]
    return scans
