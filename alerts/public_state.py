"""The public state of a factory: one table, from the rules' conditions only.

| state | when |
|---|---|
| ``exceeding`` | its last closed legal period (a clock hour, or a rolling window) is above a limit |
| ``provisional`` | only the running hour is above (its own label, never red) |
| ``shutdown`` | shutdown windows an officer accepted cover all its monitors now (alerts/duties/) |
| ``no_data`` | nothing arrived for ``rules.public_no_data_after_s`` |
| ``compliant`` | none of the above |

Officers' actions (acknowledging or resolving a case) never change it: it follows what the
measurements say. The rules compute it (:func:`public_state`) and write it to the store
(``public_state``, docs/store-schema.md) when it changes and every :data:`REPUBLISH_NS` while it
holds, so a reader can tell a state that holds from rules that stopped; the API, the web pages and
Grafana read it from there (:func:`read_public_states`), so every one of them shows the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from eit.store import Store
from eit.storeschema import FACTORY, PublicState

EXCEEDING: Final = "exceeding"
PROVISIONAL: Final = "provisional"
SHUTDOWN: Final = "shutdown"
NO_DATA: Final = "no_data"
COMPLIANT: Final = "compliant"
STATES: Final = (EXCEEDING, PROVISIONAL, SHUTDOWN, NO_DATA, COMPLIANT)

# An unchanged state is written again this often. A reader takes a state older than its own
# no-data period, but never less than two of these, for rules that stopped (no data).
REPUBLISH_NS: Final = 300 * 1_000_000_000


def public_state(
    exceeding: Iterable[str],
    provisional: Iterable[str],
    newest_ns: int | None,
    now_ns: int,
    no_data_after_ns: int,
    shutdown: bool = False,
) -> tuple[str, tuple[str, ...]]:
    """(state, the parameters behind it) of one factory. ``exceeding``: parameters whose last
    closed legal period is above a limit; ``provisional``: parameters whose running hour is."""
    above = tuple(sorted(set(exceeding)))
    if above:
        return EXCEEDING, above
    running = tuple(sorted(set(provisional)))
    if running:
        return PROVISIONAL, running
    if shutdown:
        return SHUTDOWN, ()
    if newest_ns is None or now_ns - newest_ns > no_data_after_ns:
        return NO_DATA, ()
    return COMPLIANT, ()


def read_public_states(
    store: Store, factories: Sequence[str], now_ns: int, stale_after_ns: int, lookback_ns: int
) -> dict[str, tuple[str, tuple[str, ...], int | None]]:
    """The latest state the rules wrote for each factory: (state, parameters, written at). A
    factory with no point in ``lookback_ns``, or whose latest is older than ``stale_after_ns``
    (at least two republishing periods: the rules are not running), has no data."""
    stale_after_ns = max(stale_after_ns, 2 * REPUBLISH_NS)
    out: dict[str, tuple[str, tuple[str, ...], int | None]] = {f: (NO_DATA, (), None) for f in factories}
    wanted = set(factories)
    for p in store.query_points(PublicState.NAME, {}, now_ns - lookback_ns, now_ns + 1):
        factory = p.tags.get(FACTORY)
        if factory not in wanted:
            continue
        current = out[factory]
        if current[2] is not None and current[2] > p.ts_ns:
            continue
        state = str(p.fields.get(PublicState.STATE, NO_DATA))
        if state not in STATES or now_ns - p.ts_ns > stale_after_ns:
            state = NO_DATA
        text = str(p.fields.get(PublicState.PARAMETERS, ""))
        out[factory] = (state, tuple(x for x in text.split(",") if x) if state != NO_DATA else (), p.ts_ns)
    return out
