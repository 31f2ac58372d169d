"""Cases and exceedances: what officers work on, and what the public sees, kept apart.

The rules run on the embedded stores with a clock the test moves. An officer resolving a case
whose condition persists changes neither the condition nor the public state; the exceedances are
immutable records, a provisional one decided once; a new episode after the flap window opens a
new case naming the previous one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.engine import AlertEngine
from alerts.model import ENDED, ONGOING, RESOLVED
from alerts.notifiers.dispatch import Dispatcher
from alerts.public_state import read_public_states
from alerts.settings import RuleSettings
from eit.model import Reading
from tests.test_rules import T0, B, H, Rig, S, stack_hour

KEY = ("biomass", "boiler", "so2", "limit")
MIN = 60 * S


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(
        tmp_path, RuleSettings(stale_after_s=10 * 24 * 3600, provisional_min_points=5, flap_window_s=1800)
    )
    yield r
    r.close()


def public(rig: Rig, now: int) -> str:
    return read_public_states(rig.store, ["biomass"], now, 3600 * S, 3 * H)["biomass"][0]


def feed_minutes(rig: Rig, start: int, minutes: range, so2: float) -> None:
    """One scan a minute at 7 % O2 (no correction), each minute delivered as it happens, the
    rules ticking every 5 minutes."""
    for m in minutes:
        ts = start + m * MIN
        rig.feed([Reading(*B, "so2", ts, so2), Reading(*B, "o2", ts, 7.0)], ts)
        if m % 5 == 4:
            rig.tick(ts)


def test_resolving_a_case_during_an_ongoing_exceedance_leaves_it_ongoing_and_the_public_state_exceeding(
    rig: Rig,
) -> None:
    # The stack runs at 99 ppm (limit 60 ppm) for two hours.
    feed_minutes(rig, T0, range(12), 99.0)
    case = rig.alerts.active(KEY)
    assert case is not None and case.provisional and case.condition == ONGOING
    assert public(rig, rig.now) == "provisional"  # only the running hour is above: never red
    # The officer resolves it while it is going on: nothing reopens, nothing is withdrawn.
    rig.alerts.resolve_id(case.id, "duty-rayong", rig.now, "called the plant: fuel change at 11:00")
    feed_minutes(rig, T0, range(12, 60), 99.0)
    feed_minutes(rig, T0 + H, range(0, 60), 99.0)
    rig.tick(T0 + 2 * H + 150 * S)
    after = rig.alerts.get(case.id)
    assert after is not None
    assert (after.state, after.condition, after.resolution) == (
        RESOLVED,
        ONGOING,
        "called the plant: fuel change at 11:00",
    )
    assert after.provisional is False  # the first hour confirmed it
    assert [e.kind for e in rig.events if e.alert.rule == "limit"] == ["opened", "confirmed", "updated"]
    assert [a.id for a in rig.alerts.list(limit=100) if a.rule == "limit"] == [case.id]  # no new case
    assert public(rig, rig.now) == "exceeding"
    # Its records: the running hour's provisional exceedance (confirmed once) and the two hours.
    records = rig.alerts.exceedances(case_id=case.id)
    assert [(r.period_start_ns - T0) // H for r in records] == [1, 0, 0]
    assert [(r.provisional, r.outcome) for r in records] == [
        (False, None),
        (False, None),
        (True, "confirmed"),
    ]
    assert all(r.average == pytest.approx(99.0) for r in records if not r.provisional)
    assert {(r.limit, r.unit, r.basis, r.method) for r in records if not r.provisional} == {
        (60.0, "ppm", "corrected to 7 % O2", "minute_means/2")
    }
    # The stack comes back under the limit: the condition ends, the officer's resolution stays.
    feed_minutes(rig, T0 + 2 * H, range(60), 30.0)
    rig.tick(T0 + 3 * H + 150 * S)
    ended = rig.alerts.get(case.id)
    assert ended is not None and (ended.state, ended.condition) == (RESOLVED, ENDED)
    assert ended.resolution == "called the plant: fuel change at 11:00"
    assert rig.alerts.audit(case.id)[-1].action == "condition ended"
    assert public(rig, rig.now) == "compliant"


def test_a_provisional_exceedance_the_hour_does_not_confirm_is_withdrawn_once(rig: Rig) -> None:
    # 99 ppm for 10 minutes, then 30 ppm: the running hour is above for a while, the hour is not.
    feed_minutes(rig, T0, range(10), 99.0)
    assert public(rig, rig.now) == "provisional"
    feed_minutes(rig, T0, range(10, 60), 30.0)
    rig.tick(T0 + H + 150 * S)
    [record] = rig.alerts.exceedances(factory="biomass")
    assert (record.provisional, record.outcome) == (True, "withdrawn")
    case = rig.alerts.get(record.case_id or 0)
    assert case is not None and (case.state, case.condition) == (RESOLVED, ENDED)
    assert [e.kind for e in rig.events if e.alert.rule == "limit"] == ["opened", "withdrawn"]
    assert public(rig, rig.now) == "compliant"


def test_a_new_episode_after_the_flap_window_opens_a_new_case_naming_the_previous_one(rig: Rig) -> None:
    rig.feed(stack_hour(T0, 99.0, 7.0))
    rig.tick(T0 + H + 150 * S)
    first = rig.alerts.active(KEY)
    assert first is not None
    rig.feed(stack_hour(T0 + H, 30.0, 7.0))
    rig.tick(T0 + 2 * H + 150 * S)
    assert rig.alerts.active(KEY) is None
    # Three hours later (past the 30-minute flap window) it exceeds again.
    rig.feed(stack_hour(T0 + 5 * H, 99.0, 7.0))
    rig.tick(T0 + 6 * H + 150 * S)
    second = rig.alerts.active(KEY)
    assert second is not None and second.id != first.id and second.previous_id == first.id
    kinds = [e.kind for e in rig.events if e.alert.rule == "limit"]
    assert kinds == ["opened", "confirmed", "resolved", "opened", "confirmed"]


def test_the_current_value_follows_the_running_average(rig: Rig) -> None:
    # The running average climbs: 70, then 90 ppm; the card shows the latest, not the first.
    feed_minutes(rig, T0, range(10), 70.0)
    opened = rig.alerts.active(KEY)
    assert opened is not None and opened.current_value == pytest.approx(70.0)
    feed_minutes(rig, T0, range(10, 40), 100.0)
    now = rig.alerts.active(KEY)
    assert now is not None and now.current_value is not None and now.current_value > 90.0
    assert now.value == pytest.approx(70.0)  # what the provisional exceedance opened with


def test_a_restarted_engine_keeps_the_public_state_of_the_hour_that_exceeded(rig: Rig) -> None:
    # An hour at 99 ppm closes as an exceedance; the process restarts and the stack goes quiet
    # (no data yet in the new hour): the public state stays exceeding, read back from the store.
    rig.feed(stack_hour(T0, 99.0, 7.0))
    rig.tick(T0 + H + 150 * S)
    assert public(rig, rig.now) == "exceeding"
    restarted = AlertEngine(
        rig.registry,
        rig.alerts,
        Dispatcher([]),
        clock=lambda: rig.now,
        settings=rig.engine.settings,
        store=rig.store,
    )
    rig.now = T0 + H + 300 * S
    restarted.tick(rig.now)
    assert public(rig, rig.now) == "exceeding"


def test_a_state_that_holds_for_hours_stays_current_for_a_reader_of_the_default_no_data_period(
    rig: Rig,
) -> None:
    # A clean stack for three hours, the rules ticking every 5 minutes: the state never changes,
    # and a reader whose no-data period is eit serve's default (http.no_data_after_s, 900 s)
    # sees it compliant at every minute, never "no data" between two writes.
    no_data_ns = 900 * S
    start = T0 + H
    for m in range(3 * 60):
        ts = start + m * MIN
        rig.feed([Reading(*B, "so2", ts, 20.0), Reading(*B, "o2", ts, 7.0)], ts)
        if m % 5 == 4:
            rig.tick(ts)
        if m >= 10:
            state = read_public_states(rig.store, ["biomass"], ts, no_data_ns, 3 * H)["biomass"][0]
            assert state == "compliant", f"minute {m}: {state}"
    # Rules that stop writing are seen: two republishing periods and more later, no data.
    late = start + 3 * H + 900 * S + 11 * MIN
    assert read_public_states(rig.store, ["biomass"], late, no_data_ns, 3 * H)["biomass"][0] == "no_data"
