"""The bounds of the contract: what a message, a time and a sequence number may be.

One set of numbers for every path a value enters by (the wire decoder and the status parser,
`eit import`, the HTTP API's time parameters) and for the agent, which cuts its backlog into
messages that fit. Anything outside them is refused with a reason before it reaches a store or
the rules; nothing here needs more than the standard library (the agent imports it).

- Times: from 2000-01-01T00:00:00Z (no monitoring data of this platform is older) to
  ``max_future_s`` ahead of the receiving clock (the ingest's setting, 300 s by default), and
  always inside what every store holds: InfluxDB keeps signed 64-bit nanoseconds up to
  2262-04-11T23:47:16.854775806Z, SQLite a signed 64-bit integer.
- ``seq``: a whole number from 0 to 2^63 - 1 (a signed 64-bit integer in every store).
- A message: at most :data:`MAX_MESSAGE_BYTES` (1 MiB). The agent splits its backlog into
  messages under it; the ingest dead-letters a larger one whole (``too_large``); a broker's
  ``max_packet_size`` set to it refuses it before it travels.
- JSON: at most :data:`MAX_JSON_DEPTH` levels of nesting and :data:`MAX_NUMBER_DIGITS` digits in
  a row in a number, checked before a parser can spend time or stack on them; numbers finite; a
  key given twice in one object refused (eit/jsonload.py).
"""

from __future__ import annotations

from typing import Final, NamedTuple

NS_PER_S: Final = 1_000_000_000

EARLIEST_NS: Final = 946_684_800 * NS_PER_S  # 2000-01-01T00:00:00Z
EARLIEST_TEXT: Final = "2000-01-01T00:00:00Z"
# InfluxDB's largest time (math.MaxInt64 - 1); SQLite's integers go one further.
STORE_LATEST_NS: Final = 2**63 - 2
STORE_LATEST_TEXT: Final = "2262-04-11T23:47:16Z"
# The ingest's default for ``ingest.max_future_s``; `eit import` holds rows to it as well.
MAX_FUTURE_S: Final = 300.0

SEQ_MAX: Final = 2**63 - 1

MAX_MESSAGE_BYTES: Final = 1024 * 1024
# A v1 payload nests 4 levels ({"scans": [{"values": {...}}]}), an agent's JSON status 2.
MAX_JSON_DEPTH: Final = 32
# The largest double written out in full (printf's %f) has 309 digits before its point; an
# integer of 500 digits costs Python microseconds to convert, one of 5,000 milliseconds.
MAX_NUMBER_DIGITS: Final = 500


class Problem(NamedTuple):
    """Why a value is refused: a reason code (metrics label, dead letter) and a sentence."""

    reason: str
    detail: str


def time_problem(ts_ns: int, now_ns: int | None = None, max_future_s: float = MAX_FUTURE_S) -> Problem | None:
    """Why ``ts_ns`` is not a time the platform keeps, or None when it is.

    Without ``now_ns`` only the fixed bounds apply (2000 to what every store holds,
    ``time_out_of_range``); with it, a time more than ``max_future_s`` ahead of ``now_ns`` is
    refused too (``future_timestamp``)."""
    if ts_ns < EARLIEST_NS:
        return Problem("time_out_of_range", f"before {EARLIEST_TEXT}, the earliest time this platform keeps")
    if ts_ns > STORE_LATEST_NS:
        return Problem("time_out_of_range", f"after {STORE_LATEST_TEXT}, the latest time a store holds")
    if now_ns is not None and ts_ns > now_ns + int(max_future_s * NS_PER_S):
        return Problem("future_timestamp", f"more than {max_future_s:g} s ahead of the server clock")
    return None


def seq_problem(seq: object) -> Problem | None:
    """Why ``seq`` is not a sequence number, or None when it is (a bool is not a number here)."""
    if type(seq) is not int or seq < 0:
        return Problem("bad_scan", f"'seq' must be a whole number >= 0, got {_shown(seq)}")
    if seq > SEQ_MAX:
        return Problem("seq_out_of_range", f"'seq' {_shown(seq)} is beyond 2^63-1, the largest a store holds")
    return None


def _shown(value: object) -> str:
    if isinstance(value, int) and not -(10**30) < value < 10**30:
        return f"(a number of {value.bit_length()} bits)"
    plain = isinstance(value, int | float | str | bool) or value is None
    text = repr(value) if plain else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
