"""Work the rules owe the store, kept where a crash cannot lose it.

The ingest acknowledges a message once its readings are stored and the rules have decided in
memory; the results those decisions lead to (an hour's average when it closes, a day's
completeness, an hour recomputed because late data arrived) are written later. So that a crash
in between loses none of them, the engine records each hour it opens, each closed hour that late
or repeated data made dirty and each day it has begun to count, *before* the batch is
acknowledged; an item is settled once its results are written. A restarted engine reopens every
pending item and reads it back from the store: nothing is left half done.

An item is (kind, series, start): ``hour`` (an open hour), ``late`` (a closed hour to recompute)
or ``day`` (a local day's completeness), with the hour's or the day's start. Each record carries
a sequence number; settling removes the records up to the number the decision saw, so a record
made again after the decision (more late data) survives the settling of the earlier one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from statedb import StateDb
from statedb.tables import rules_pending

HOUR = "hour"
LATE = "late"
DAY = "day"
PendingItem = tuple[str, tuple[str, str, str], int]  # (kind, (factory, device, channel), start ns)
Numbered = tuple[PendingItem, int]  # an item and its sequence number


class PendingWork(Protocol):
    def record(self, items: Iterable[Numbered]) -> None:
        """Durable on return."""
        ...

    def settle(self, items: Iterable[Numbered]) -> None:
        """Remove each item's records numbered up to the given number."""
        ...

    def items(self) -> list[Numbered]:
        """Every pending item with its latest number."""
        ...


class MemoryPendingWork:
    """Pending work held in memory: for a process that keeps nothing across restarts (`eit
    import`, `eit recompute`, tests of the rules alone)."""

    def __init__(self) -> None:
        self._items: dict[PendingItem, int] = {}
        self._lock = threading.Lock()

    def record(self, items: Iterable[Numbered]) -> None:
        with self._lock:
            for item, seq in items:
                self._items[item] = max(seq, self._items.get(item, seq))

    def settle(self, items: Iterable[Numbered]) -> None:
        with self._lock:
            for item, seq in items:
                if self._items.get(item, seq + 1) <= seq:
                    del self._items[item]

    def items(self) -> list[Numbered]:
        with self._lock:
            return sorted(self._items.items())


class StatePendingWork:
    """Pending work in the state database (``eit serve``): it survives the process."""

    def __init__(self, db: StateDb) -> None:
        self.db = db

    def record(self, items: Iterable[Numbered]) -> None:
        rows = _rows(items)
        if not rows:
            return
        t = rules_pending
        # One upsert for the whole batch (an hour's start opens an hour for every series at once):
        # a record made again takes the higher number.
        insert = sqlite_insert(t) if self.db.kind == "sqlite" else postgresql_insert(t)
        upsert = insert.on_conflict_do_update(
            index_elements=[t.c.kind, t.c.factory, t.c.device, t.c.channel, t.c.start_ns],
            set_={"seq": sa.func.max(t.c.seq, insert.excluded.seq)}
            if self.db.kind == "sqlite"
            else {"seq": sa.func.greatest(t.c.seq, insert.excluded.seq)},
        )
        with self.db.write() as conn:
            conn.execute(upsert, rows)

    def settle(self, items: Iterable[Numbered]) -> None:
        rows = _rows(items)
        if not rows:
            return
        t = rules_pending
        delete = sa.delete(t).where(
            t.c.kind == sa.bindparam("b_kind"),
            t.c.factory == sa.bindparam("b_factory"),
            t.c.device == sa.bindparam("b_device"),
            t.c.channel == sa.bindparam("b_channel"),
            t.c.start_ns == sa.bindparam("b_start_ns"),
            t.c.seq <= sa.bindparam("b_seq"),
        )
        with self.db.write() as conn:
            conn.execute(delete, [{f"b_{k}": v for k, v in row.items()} for row in rows])

    def items(self) -> list[Numbered]:
        t = rules_pending
        with self.db.read() as conn:
            found = conn.execute(sa.select(t).order_by(t.c.start_ns)).mappings().all()
        return [
            ((r["kind"], (r["factory"], r["device"], r["channel"]), r["start_ns"]), r["seq"]) for r in found
        ]


def _rows(items: Iterable[Numbered]) -> list[dict[str, object]]:
    return [
        {"kind": k, "factory": f, "device": d, "channel": c, "start_ns": start, "seq": seq}
        for (k, (f, d, c), start), seq in items
    ]
