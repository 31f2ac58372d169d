"""Time conversions used across the platform. Timestamps travel as integer UTC nanoseconds."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ns() -> int:
    return time.time_ns()


def datetime_to_ns(dt: datetime) -> int:
    """An aware datetime to integer nanoseconds since the epoch, without float rounding."""
    delta = dt - _EPOCH
    return (delta // timedelta(microseconds=1)) * 1000


def ns_to_datetime(ts_ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_ns // 1000)


def ns_to_iso(ts_ns: int) -> str:
    """ISO 8601 in UTC with a Z suffix, exact to the microsecond (trailing zeros trimmed)."""
    dt = ns_to_datetime(ts_ns)
    if dt.microsecond:
        if dt.microsecond % 1000 == 0:
            return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# RFC 3339 date-time, the form the wire schema documents: a zone (Z or an offset) is required.
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?")


def parse_iso_ns(text: str) -> int:
    """Parse an RFC 3339 timestamp that carries a zone (``Z`` or an offset)."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError("not an ISO 8601 timestamp such as 2026-11-27T04:00:00Z")
    if m.group(3) is None:
        raise ValueError("no time zone: give UTC with a Z suffix, e.g. 2026-11-27T04:00:00Z")
    frac = m.group(2) or ""
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + zone)
    ns = int((frac[1:] + "000000000")[:9]) if frac else 0
    return datetime_to_ns(base) + ns
