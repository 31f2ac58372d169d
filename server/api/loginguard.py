"""Logins under attack: who may try a password now, and how many passwords are hashed at once.

A password check costs an Argon2id hash (64 MiB and about a second of a core here): a flood of
logins must neither fill the memory nor the cores, nor lock the rightful owner out of the account
the flood is aimed at. Three rules, checked before any hash and counted as the attempt begins
(so a burst of concurrent requests is counted whole, not after its hashes end):

1. **Per client address**: a bucket of ``per_address`` attempts, refilled evenly over
   ``window_s``. One guess each against many names is throttled here. A successful login gives
   its attempt back.
2. **Per account and address**: at most ``per_account_address`` failed logins for one account from
   one address within ``window_s``.
3. **Per account**: once an account has had ``per_account`` failures within ``window_s`` (from
   any addresses), an address that has failed on it gets no more tries until its failure ages
   out; an address that has not failed on it still gets its try. So an attack spread over many
   addresses is slowed to one guess per address, and the owner, logging in from an address of
   their own, is never locked out by it.

Refused: 429 with ``Retry-After`` (whole seconds), never a sleep in the handler. The hashes run
in worker threads, at most ``concurrent_hashes`` at once (an anyio limiter); a login waits for a
slot without a thread, and beyond ``waiting_max`` waiting logins the server answers 429 (busy) at
once: memory stays about ``concurrent_hashes`` x 64 MiB over the process's own, whatever comes.
One at a time by default: a hash runs its four lanes (argon2-cffi's parallelism 4) in four
threads, so one hash already keeps four cores busy, and a second at once adds memory, not speed,
on a small server.

The client's address is the connection's, or, from a proxy listed in ``http.trusted_proxies``,
the one it forwards (X-Forwarded-For; uvicorn reads it only from those addresses). Memory is
bounded: at most ``max_entries`` addresses, accounts and pairs are remembered (least recently
used forgotten first).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_address: int = 20
    per_account_address: int = 5
    per_account: int = 50
    window_s: float = 300.0
    concurrent_hashes: int = 1
    waiting_max: int = 16
    max_entries: int = 50_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an attempt is refused now and when to try again."""

    reason: str  # address | account | busy: a metrics label
    retry_after_s: int


@dataclass(slots=True)
class Attempt:
    account: str
    address: str
    stamp: float


class _Lru(Generic[K, V]):
    """A dict that forgets its least recently used keys beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, make: Callable[[], V]) -> V:
        found = self.items.get(key)
        if found is None:
            found = self.items[key] = make()
            if len(self.items) > self.limit:
                self.items.popitem(last=False)
        else:
            self.items.move_to_end(key)
        return found

    def peek(self, key: K) -> V | None:
        return self.items.get(key)

    def __len__(self) -> int:
        return len(self.items)


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class LoginGuard:
    """The three rules of the module's docstring; thread-safe, on a monotonic clock."""

    def __init__(
        self, limits: LoginLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or LoginLimits()
        self.clock = clock
        self._lock = threading.Lock()
        n = self.limits.max_entries
        self._buckets: _Lru[str, _Bucket] = _Lru(n)
        self._pairs: _Lru[tuple[str, str], deque[float]] = _Lru(n)
        self._accounts: _Lru[str, deque[float]] = _Lru(n)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        lim = self.limits
        rate = lim.per_address / lim.window_s
        bucket.tokens = min(float(lim.per_address), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now

    def _recent(self, stamps: deque[float] | None, now: float) -> deque[float] | None:
        if stamps is None:
            return None
        while stamps and now - stamps[0] >= self.limits.window_s:
            stamps.popleft()
        return stamps

    def admit(self, account: str, address: str) -> Attempt | Refusal:
        """An attempt that may go on to the password check (counted as failed until
        :meth:`succeeded` says otherwise), or why not and for how long."""
        lim = self.limits
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(address, lambda: _Bucket(float(lim.per_address), now))
            self._refill(bucket, now)
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) * lim.window_s / lim.per_address
                return Refusal("address", max(1, math.ceil(wait)))
            pair = self._recent(self._pairs.peek((account, address)), now)
            failures = self._recent(self._accounts.peek(account), now)
            pair_count = len(pair) if pair else 0
            account_count = len(failures) if failures else 0
            if pair and (
                pair_count >= lim.per_account_address or (account_count >= lim.per_account and pair_count)
            ):
                # The pair's failures that must age out before it may try again.
                keep = 0 if pair_count < lim.per_account_address else lim.per_account_address - 1
                if account_count >= lim.per_account:
                    keep = 0
                oldest = pair[pair_count - keep - 1]
                return Refusal("account", max(1, math.ceil(oldest + lim.window_s - now)))
            bucket.tokens -= 1.0
            self._pairs.get((account, address), deque).append(now)
            account_stamps = self._accounts.get(account, lambda: deque(maxlen=lim.per_account))
            account_stamps.append(now)
        return Attempt(account, address, now)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the attempt is not a failure, and the address gets it back."""
        lim = self.limits
        with self._lock:
            bucket = self._buckets.peek(attempt.address)
            if bucket is not None:
                bucket.tokens = min(float(lim.per_address), bucket.tokens + 1.0)
            pair = self._pairs.peek((attempt.account, attempt.address))
            if pair is not None:
                pair.clear()
            stamps = self._accounts.peek(attempt.account)
            if stamps is not None and attempt.stamp in stamps:
                stamps.remove(attempt.stamp)

    def remembered(self) -> int:
        """Addresses, pairs and accounts held (bounded by ``max_entries`` each)."""
        with self._lock:
            return len(self._buckets) + len(self._pairs) + len(self._accounts)
