"""The officers' inbox: which cases a filter selects, newest first, a page at a time.

A page is read by keyset, not by offset: the next page is the cases with an ``id`` below the last
one shown (``before_id``), so a later page costs what the first one costs, and a case opened while
an officer pages does not shift the pages. Every filter but the text search is backed by an index
ending in ``id`` (statedb/tables.py); the text search reads the cases the other filters leave, newest
first, until the page is full (docs/performance.md has what it costs at 10,000 cases).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from alerts.model import ACTIVE_STATES
from statedb.tables import alerts

ACTIVE = "active"  # a state filter: open or acknowledged
MAX_TERMS = 8
MAX_TERM_LENGTH = 100
_CASE_NUMBER = re.compile(r"#?(\d{1,18})")
_c = alerts.c


@dataclass(frozen=True, slots=True)
class InboxFilter:
    """What the inbox shows. ``text``: every word must appear in the case's message, factory,
    device or parameter (case-insensitive), or name its factory (``text_factories``: the factories
    whose names hold that word, looked up in the site registry by the caller), or be its number
    (``#123``)."""

    state: str | None = None  # open, acknowledged, resolved, closed, or active
    condition: str | None = None  # ongoing or ended
    severity: str | None = None
    factory: str | None = None
    rule: str | None = None
    opened_from_ns: int | None = None  # opened at or after
    opened_to_ns: int | None = None  # opened before
    text: str = ""
    text_factories: dict[str, tuple[str, ...]] | None = None  # word -> factory ids named by it


def terms(text: str) -> list[str]:
    """The words of a search, at most :data:`MAX_TERMS`, each at most :data:`MAX_TERM_LENGTH`."""
    return [w[:MAX_TERM_LENGTH] for w in text.split()][:MAX_TERMS]


def _like(word: str) -> str:
    escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(f: InboxFilter) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of ``f``."""
    where: list[sa.ColumnElement[bool]] = []
    if f.state == ACTIVE:
        where.append(_c.state.in_(ACTIVE_STATES))
    elif f.state is not None:
        where.append(_c.state == f.state)
    if f.condition is not None:
        where.append(_c.condition == f.condition)
    if f.severity is not None:
        where.append(_c.severity == f.severity)
    if f.factory is not None:
        where.append(_c.factory == f.factory)
    if f.rule is not None:
        where.append(_c.rule == f.rule)
    if f.opened_from_ns is not None:
        where.append(_c.opened_ns >= f.opened_from_ns)
    if f.opened_to_ns is not None:
        where.append(_c.opened_ns < f.opened_to_ns)
    named = f.text_factories or {}
    for word in terms(f.text):
        pattern = _like(word)
        either: list[sa.ColumnElement[bool]] = [
            sa.func.lower(column).like(pattern, escape="\\")
            for column in (_c.message, _c.factory, _c.device, _c.parameter)
        ]
        if named.get(word):
            either.append(_c.factory.in_(named[word]))
        number = _CASE_NUMBER.fullmatch(word)
        if number:
            either.append(_c.id == int(number.group(1)))
        where.append(sa.or_(*either))
    return where
