"""JSON from the wire, bounded: size, nesting, digits and duplicate keys (eit/bounds.py).

:func:`loads` reads a message's JSON or raises :class:`DecodeError` with a reason of its own:

- ``too_large``: more than :data:`MAX_MESSAGE_BYTES`, refused before anything reads it;
- ``number_too_long``: a number with more than :data:`MAX_NUMBER_DIGITS` digits in a row, found
  by one regular-expression pass before parsing (Python's int conversion is quadratic in the
  digits);
- ``too_deep``: more than :data:`MAX_JSON_DEPTH` levels of nesting. orjson, the fast reader,
  refuses anything deeper than 1024 itself and builds the document without recursion in Python;
  the document's depth is then measured, without recursion, before anything else walks it (a
  ``repr`` or ``json.dumps`` of 1000 levels exhausts Python's stack). json, the reference reader,
  recurses: what it reads is measured before it parses;
- ``duplicate_key``: a key given twice in one object (JSON readers keep the last one silently, so
  ``{"scans": [...], "scans": [...]}`` would drop the first list), naming the key and its object;
- ``not_utf8``, ``not_json``: as json names them, with line and column.

Finding duplicates costs one count: the keys the text holds (a quote followed by a colon, a
count in C) against the keys the document holds (counted in the same walk as the depth). They
can differ without a duplicate only for a key written with a space before its colon, a string
that starts with a colon or holds an escaped quote before one; then, and when they differ
because of a duplicate, json reads the text again with a hook that names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate, repeat
from typing import Any

from eit.bounds import MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, MAX_NUMBER_DIGITS
from eit.errors import DecodeError

_fast_loads: Callable[[bytes | str], Any] | None
try:  # 3-5 times faster than json on a payload; json stays the reference (and the error text)
    from orjson import loads as _orjson_loads

    _fast_loads = _orjson_loads
except ImportError:  # the edge agent does not install it, and needs no speed there
    _fast_loads = None

# A run of digits longer than the bound, found from its first digit only (linear time).
_LONG_DIGITS = re.compile(rb"(?<![0-9])[0-9]{%d}" % (MAX_NUMBER_DIGITS + 1))
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# More opening brackets in a row (with only whitespace between) than the nesting bound allows.
_OPENINGS_IN_A_ROW = re.compile(rb"[\[{](?:[ \t\n\r]*[\[{]){%d}" % MAX_JSON_DEPTH)
_KEY_END_SPACED = re.compile(rb'"[ \t\n\r]+:')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
# Opening brackets to 2, closing ones to 0: minus one, the step of the nesting count.
_BRACKET_STEPS = bytes.maketrans(b"{[}]", b"\x02\x02\x00\x00")
_MISSING = object()


def loads(payload: bytes | str, what: str = "payload") -> Any:
    """The JSON document of ``payload`` within the contract's bounds; DecodeError otherwise.
    ``what`` names the payload in the messages ("payload", "status")."""
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(
            "too_large",
            f"{what} of {len(data):,} bytes is larger than the {MAX_MESSAGE_BYTES:,} a message may be",
        )
    if (
        len(data) > MAX_NUMBER_DIGITS
        and _LONG_DIGITS.search(data) is not None
        and _LONG_DIGITS.search(_STRING.sub(b'""', data)) is not None  # not digits in a string
    ):
        raise DecodeError("number_too_long", f"{what} holds a number of more than {MAX_NUMBER_DIGITS} digits")
    doc: Any = _MISSING
    if _fast_loads is not None:
        # orjson refused it (orjson.JSONDecodeError is a ValueError): json reads it again and names
        # the problem. Not contextlib.suppress: it costs 0.3 us a message.
        try:  # noqa: SIM105
            doc = _fast_loads(payload)
        except ValueError:
            pass
    if doc is _MISSING:
        _check_depth_of_text(data, what)
        doc = _reference_loads(payload, what)
    keys = _count_keys_within_depth(doc, what)
    # Every key ends in a quote and a colon: with no key written with a space before its colon,
    # the text's count of '":' is at least its keys, and equals the document's only without a
    # key given twice (or a string that starts with a colon or holds an escaped quote before
    # one: then json reads it again to be sure).
    if keys != data.count(b'":') or _KEY_END_SPACED.search(data) is not None:
        _find_duplicate_key(payload, what)
    return doc


def _reference_loads(payload: bytes | str, what: str, hook: Callable[[Any], Any] | None = None) -> Any:
    try:
        return json.loads(payload, object_pairs_hook=hook)
    except UnicodeDecodeError as exc:
        raise DecodeError("not_utf8", f"{what} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(
            "not_json", f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # not reached: the depth is measured first
        raise DecodeError("too_deep", f"{what} is nested too deeply") from None


def _too_deep(what: str) -> DecodeError:
    return DecodeError("too_deep", f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")


def _check_depth_of_text(data: bytes, what: str) -> None:
    """Measure the nesting of the text before json, which recurses, reads it: the running count
    of brackets outside strings, computed by C iterators (an opening bracket counts 1, a
    closing one -1)."""
    if data.count(b"{") + data.count(b"[") <= MAX_JSON_DEPTH:
        return
    outside = _STRING.sub(b"", data)
    if _OPENINGS_IN_A_ROW.search(outside) is not None:  # the usual attack, found at once
        raise _too_deep(what)
    steps = outside.translate(_BRACKET_STEPS, _NOT_BRACKETS)
    if max(accumulate(map(int.__sub__, steps, repeat(1))), default=0) > MAX_JSON_DEPTH:
        raise _too_deep(what)


def _count_keys_within_depth(doc: Any, what: str) -> int:
    """The keys of every object in ``doc``; DecodeError when it nests deeper than the bound
    (the recursion stops there: orjson may have read 1024 levels)."""
    kind = type(doc)
    return _keys(doc, 1, what) if kind is dict or kind is list else 0


def _keys(node: Any, depth: int, what: str) -> int:
    if depth > MAX_JSON_DEPTH:
        raise _too_deep(what)
    if type(node) is dict:
        keys = len(node)
        children = node.values()
    else:
        keys = 0
        children = node
    for child in children:
        kind = type(child)
        if kind is dict or kind is list:
            keys += _keys(child, depth + 1, what)
    return keys


def _find_duplicate_key(payload: bytes | str, what: str) -> None:
    """Read the text again with a hook that names a key given twice (DecodeError), or return
    when there is none (a string held an escaped quote before a colon)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    others = ", ".join(repr(k[:40]) for k in list(found)[:4] if k != key)
                    beside = f" (beside {others})" if others else ""
                    raise DecodeError(
                        "duplicate_key",
                        f"{what} gives the key {key[:60]!r} twice in one object{beside}",
                        key[:60],
                    )
                seen.add(key)
        return found

    _reference_loads(payload, what, unique)
