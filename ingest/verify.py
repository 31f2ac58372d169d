"""Verification of signed scans (wire v2, eit/signing.py) and of each device's chain of them.

Each scan gets a result (:data:`eit.signing.RESULTS`) that the ingest stores beside its readings
as ``verified``; nothing is dropped for it: an unsigned scan from a device with a registered key
is stored, flagged ``unsigned``, and counted. The key is the device's key valid at the scan's
time (eit/devicekeys.py), named by the scan's key id; the key file is read again when it changes,
so a rotation needs no restart.

The chain: a verified scan names the hash of its device's previous scan. Per device the verifier
keeps the newest seq and hash it has seen, and the hashes of the last :data:`RECENT_KEPT` scans:

- the next seq naming the newest hash: the chain goes on;
- the next seq naming another hash: ``chain_break`` (a scan was replaced on the way);
- a jump in seq: a gap, ``reported_drop`` when the agent's status said it dropped those seqs
  (``outbox_dropped_seqs``: edge/outbox.py), ``unexplained_gap`` otherwise; a later status that
  reports them turns it into ``reported_drop``; late scans that fill it make it ``reordered``;
- a seq already seen with the same hash: a repeat (redelivery, a replayed message), absorbed and
  counted, never reported as tampering; with another hash: ``conflict``.

A scan that does not verify under a seq that was received verified is a changed copy of stored
evidence: the ingest keeps it as a dead letter (``unverified_copy``) instead of letting it
overwrite the verified readings (:meth:`ScanVerifier.verified_before`).

After a restart of the ingest the newest stored seq of the device (``head_of``) stands for the
head, so a gap across the restart is still seen (its hash is not known: the first scan's
``prev`` is taken on trust). Events are written to the store (``chain_events``) with the batch.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eit.devicekeys import DeviceKeys, load_device_keys
from eit.errors import ConfigError
from eit.signing import (
    BAD_SIGNATURE,
    GENESIS,
    NOT_SIGNED,
    UNKNOWN_KEY,
    UNSIGNED,
    VERIFIED,
    canonical,
    scan_hash,
    verify,
)
from eit.store import Point
from eit.storeschema import ChainEvents
from eit.timeutil import ns_to_iso
from eit.wire import Scan

log = logging.getLogger("eit.ingest.verify")

RECENT_KEPT = 4096  # hashes of the newest scans kept per device (repeats older than that: absorbed)
OPEN_GAPS_KEPT = 64  # gaps per device that a late status or late scans may still explain
RELOAD_CHECK_S = 2.0

REPORTED_DROP = "reported_drop"
UNEXPLAINED_GAP = "unexplained_gap"
REORDERED = "reordered"
CHAIN_BREAK = "chain_break"
CONFLICT = "conflict"


@dataclass(slots=True)
class _Gap:
    ts_ns: int
    first: int
    last: int
    missing: set[int]
    kind: str

    def point(self, factory: str, device: str) -> Point:
        n = len(self.missing)
        if self.kind == REORDERED:
            detail = f"seq {self.first}-{self.last} arrived after seq {self.last + 1} (reordered on the way)"
        elif self.kind == REPORTED_DROP:
            detail = f"{n} scan(s) in seq {self.first}-{self.last} dropped by the agent's outbox (reported)"
        else:
            detail = f"{n} scan(s) in seq {self.first}-{self.last} missing between the meter and the store"
        return _event(factory, device, self.ts_ns, self.kind, self.first, self.last, n, detail)


def _event(
    factory: str, device: str, ts_ns: int, kind: str, first: int, last: int, missing: int, detail: str
) -> Point:
    return Point(
        ChainEvents.NAME,
        {ChainEvents.TAGS[0]: factory, ChainEvents.TAGS[1]: device},
        ts_ns,
        {
            ChainEvents.KIND: kind,
            ChainEvents.FIRST_SEQ: first,
            ChainEvents.LAST_SEQ: last,
            ChainEvents.MISSING: missing,
            ChainEvents.DETAIL: detail,
        },
    )


@dataclass(slots=True)
class _Chain:
    head_seq: int = 0
    head_hash: str | None = None  # None: not known (the first scan after a restart)
    recent: OrderedDict[int, str] = field(default_factory=OrderedDict)
    reported: list[tuple[int, int]] = field(default_factory=list)
    gaps: list[_Gap] = field(default_factory=list)


def _covered(ranges: Sequence[tuple[int, int]], first: int, last: int) -> bool:
    """Every seq in first..last lies in one of the ranges (joined where they touch)."""
    at = first
    for lo, hi in sorted(ranges):
        if lo <= at <= hi:
            at = hi + 1
            if at > last:
                return True
    return at > last


class KeyRing:
    """The registered keys, read again when the file changes (checked every few seconds).

    A file that cannot be read when the ingest starts is a configuration error (ConfigError
    naming the file, the key and the line: `eit serve` does not start); one broken by a later
    edit is logged and counted, and the keys read before stay in use."""

    def __init__(self, path: Path | None, on_error: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.on_error = on_error
        self.keys = DeviceKeys()
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self.load(strict=True)

    def load(self, *, strict: bool = False) -> None:
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._stamp:
            return
        try:
            self.keys = load_device_keys(self.path)
        except (ConfigError, OSError) as exc:
            if strict:
                raise
            # Keep the keys read before: a broken edit must not flag every scan of the town.
            log.error("device keys not (re)loaded, the previous ones stay in use: %s", exc)
            if self.on_error is not None:
                self.on_error(str(exc))
            return
        self._stamp = stamp
        log.info("device keys: %d key(s) from %s", len(self.keys.keys), self.path)

    def current(self) -> DeviceKeys:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RELOAD_CHECK_S
            self.load()
        return self.keys


class ScanVerifier:
    """Verifies scans and follows each device's chain; used by one thread (the decode stage)."""

    def __init__(
        self,
        keys: KeyRing,
        head_of: Callable[[str, str], int | None] | None = None,
        count: Callable[[str, int], None] | None = None,
    ) -> None:
        self.keyring = keys
        self.head_of = head_of
        self.count = count or (lambda _name, _n: None)
        self._chains: dict[tuple[str, str], _Chain] = {}

    # -- results -----------------------------------------------------------------------------------
    def check(self, factory: str, device: str, scans: Sequence[Scan]) -> tuple[list[str] | None, list[Point]]:
        """Each scan's result, in order (None: none is signed and the device has no key, so
        there is nothing to flag), and the chain events seen (points for the store)."""
        keys = self.keyring.current()
        has_keys = bool(keys.of(factory, device))
        if not has_keys and all(scan.sig is None for scan in scans):
            self.count("not_signed", len(scans))  # an agent that does not sign: nothing to check
            return None, []
        results: list[str] = []
        events: list[Point] = []
        for scan in scans:
            if scan.sig is None:
                signed_then = has_keys and bool(keys.valid_at(factory, device, scan.ts_ns))
                results.append(UNSIGNED if signed_then else NOT_SIGNED)
                continue
            key = keys.key_for(factory, device, scan.key or "", scan.ts_ns)
            if key is None or key.public is None:
                results.append(UNKNOWN_KEY)
                continue
            body = canonical(
                factory, device, scan.seq, scan.ts_ns, scan.values, scan.flags, key.id, scan.prev or ""
            )
            if not verify(key.public, body, scan.sig):
                results.append(BAD_SIGNATURE)
                continue
            results.append(VERIFIED)
            if scan.seq is not None:
                self._follow(factory, device, scan, scan_hash(body, scan.sig), events)
        for result in results:
            self.count(result or "not_signed", 1)
        return results, events

    def follows(self, factory: str, device: str) -> bool:
        """The device has sent verified scans (since the ingest started)."""
        return (factory, device) in self._chains

    def verified_before(self, factory: str, device: str, seq: int) -> bool:
        """A scan with this seq was received signed and verified (among the newest kept)."""
        chain = self._chains.get((factory, device))
        return chain is not None and seq in chain.recent

    # -- the chain -------------------------------------------------------------------------------------
    def _chain(self, factory: str, device: str) -> _Chain:
        chain = self._chains.get((factory, device))
        if chain is None:
            chain = _Chain()
            if self.head_of is not None:
                try:
                    chain.head_seq = self.head_of(factory, device) or 0
                except Exception as exc:  # the store away: the chain starts at the next scan
                    log.warning("newest stored seq of %s/%s not read: %s", factory, device, exc)
            self._chains[(factory, device)] = chain
        return chain

    def _follow(self, factory: str, device: str, scan: Scan, digest: str, events: list[Point]) -> None:
        assert scan.seq is not None
        seq, prev = scan.seq, scan.prev or ""
        chain = self._chain(factory, device)
        seen = chain.recent.get(seq)
        if seen is not None:
            if seen == digest:
                self.count("repeat", 1)
            else:
                detail = f"a second, different signed scan with seq {seq}"
                self._event(events, factory, device, scan.ts_ns, CONFLICT, seq, seq, detail)
            return
        if seq <= chain.head_seq:
            if not self._fill(factory, device, chain, seq, events):
                self.count("repeat", 1)  # older than the hashes kept: a repeat, absorbed
            self._remember(chain, seq, digest)
            return
        if seq == chain.head_seq + 1 and chain.head_hash is not None and prev != chain.head_hash:
            detail = f"seq {seq} names another previous scan than the seq {seq - 1} received"
            self._event(events, factory, device, scan.ts_ns, CHAIN_BREAK, seq, seq, detail)
        elif seq > chain.head_seq + 1 and not (
            chain.head_seq == 0 and chain.head_hash is None and prev == GENESIS
        ):
            first, last = chain.head_seq + 1, seq - 1
            if chain.head_seq == 0 and chain.head_hash is None and self.head_of is None:
                first = last + 1  # nothing known before this scan: no gap to tell
            if first <= last:
                kind = REPORTED_DROP if _covered(chain.reported, first, last) else UNEXPLAINED_GAP
                gap = _Gap(
                    scan.ts_ns,
                    first,
                    last,
                    set(range(first, last + 1)) if last - first < 100_000 else set(),
                    kind,
                )
                chain.gaps.append(gap)
                del chain.gaps[:-OPEN_GAPS_KEPT]
                self.count(kind, 1)
                events.append(gap.point(factory, device))
                log.warning("%s/%s: %s", factory, device, events[-1].fields[ChainEvents.DETAIL])
        chain.head_seq, chain.head_hash = seq, digest
        self._remember(chain, seq, digest)

    def _fill(self, factory: str, device: str, chain: _Chain, seq: int, events: list[Point]) -> bool:
        for gap in chain.gaps:
            if seq in gap.missing:
                gap.missing.discard(seq)
                if not gap.missing:
                    gap.kind = REORDERED
                    self.count(REORDERED, 1)
                events.append(gap.point(factory, device))
                return True
        return False

    def _remember(self, chain: _Chain, seq: int, digest: str) -> None:
        chain.recent[seq] = digest
        while len(chain.recent) > RECENT_KEPT:
            chain.recent.popitem(last=False)

    def _event(
        self,
        events: list[Point],
        factory: str,
        device: str,
        ts_ns: int,
        kind: str,
        first: int,
        last: int,
        detail: str,
    ) -> None:
        self.count(kind, 1)
        events.append(_event(factory, device, ts_ns, kind, first, last, last - first + 1, detail))
        log.warning("%s/%s at %s: %s: %s", factory, device, ns_to_iso(ts_ns), kind, detail)

    # -- what the agent reports -------------------------------------------------------------------
    def reported_drops(self, factory: str, device: str, details: dict[str, Any]) -> list[Point]:
        """Note the seq ranges an agent's status says its outbox dropped; gaps seen before that
        they explain become ``reported_drop`` (their points, rewritten, are returned)."""
        raw = details.get("outbox_dropped_seqs")
        if not isinstance(raw, list):
            return []
        ranges = [
            (int(r[0]), int(r[1]))
            for r in raw[:1000]
            if isinstance(r, list)
            and len(r) == 2
            and all(type(x) is int and x >= 0 for x in r)
            and r[0] <= r[1]
        ]
        if not ranges:
            return []
        chain = self._chain(factory, device)
        chain.reported = sorted(set(chain.reported) | set(ranges))[-1000:]
        rewritten = []
        for gap in chain.gaps:
            if gap.kind == UNEXPLAINED_GAP and _covered(chain.reported, gap.first, gap.last):
                gap.kind = REPORTED_DROP
                self.count("explained_later", 1)
                rewritten.append(gap.point(factory, device))
        return rewritten
