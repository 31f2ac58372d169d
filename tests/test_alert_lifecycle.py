"""The alert lifecycle store (with the operators' responses), run against the embedded SQLite and a
real PostgreSQL server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.model import (
    ACKNOWLEDGED,
    CLOSED,
    ENDED,
    ONGOING,
    OPEN,
    RESOLVED,
    Exceedance,
    LifecycleError,
    ResponseError,
)
from alerts.state import AlertStore, open_alert_store

S = 1_000_000_000
T0 = 1795752000 * S
KEY = ("kaeng-khoi-biomass", "boiler-1", "so2", "limit")


# A fixture that starts its service itself marks its param: conftest sees only requested fixtures.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    if request.param == "sqlite":
        s = open_alert_store(None, tmp_path / "state.db")
    else:
        s = open_alert_store(request.getfixturevalue("postgres_url"), tmp_path / "unused.db")
    assert s.kind == request.param
    yield s
    s.close()


def test_the_database_allows_one_ongoing_case_per_key(store: AlertStore) -> None:
    first = store.open_alert(KEY, "critical", "first", T0, 75.0, 60.0, "ppm")
    assert first is not None and (first.state, first.condition) == (OPEN, ONGOING)
    assert store.open_alert(KEY, "critical", "second", T0 + S) is None
    store.acknowledge(first.id, "duty-rayong", T0 + 2 * S)
    store.resolve_id(first.id, "duty-rayong", T0 + 3 * S, "plant called")
    # Resolved by an officer while the condition persists: still the key's ongoing case.
    assert store.open_alert(KEY, "critical", "third", T0 + 3 * S) is None
    ended = store.end_condition(KEY, T0 + 4 * S, "below the limit again")
    assert ended is not None and (ended.state, ended.condition, ended.resolution) == (
        RESOLVED,
        ENDED,
        "plant called",
    )
    again = store.open_alert(KEY, "critical", "after resolution", T0 + 5 * S, previous_id=first.id)
    assert again is not None and again.id != first.id and again.previous_id == first.id
    assert store.ongoing_keys() == {KEY}


def test_lifecycle_open_acknowledge_resolve_close_is_audited_with_who_when_what(
    store: AlertStore,
) -> None:
    alert = store.open_alert(
        KEY, "critical", "so2 75 ppm above the standard limit 60 ppm", T0, 75.0, 60.0, "ppm"
    )
    assert alert is not None
    store.assign(alert.id, "supervisor-rayong", "duty-rayong", T0 + 10 * S)
    acked = store.acknowledge(alert.id, "duty-rayong", T0 + 20 * S, "calling the plant")
    assert (acked.state, acked.acknowledged_by, acked.assignee) == (
        ACKNOWLEDGED,
        "duty-rayong",
        "duty-rayong",
    )
    store.add_note(alert.id, "duty-rayong", "plant says scrubber pump tripped", T0 + 30 * S)
    store.end_condition(KEY, T0 + 35 * S, "below the limit again")  # the rules' side: resolves it
    resolved = store.get(alert.id)
    assert resolved is not None and resolved.state == RESOLVED and resolved.resolved_ns == T0 + 35 * S
    assert resolved.resolution == "below the limit again"
    closed = store.close_alert(alert.id, "supervisor-rayong", T0 + 50 * S, "reviewed")
    assert closed.state == CLOSED and closed.closed_ns == T0 + 50 * S
    trail = (
        [(e.ts_ns - T0) // S for e in store.audit(alert.id)],
        [(e.actor, e.action, e.detail) for e in store.audit(alert.id)],
    )
    assert trail == (
        [0, 10, 20, 30, 35, 50],
        [
            ("engine", "opened", "so2 75 ppm above the standard limit 60 ppm"),
            ("supervisor-rayong", "assigned", "duty-rayong"),
            ("duty-rayong", "acknowledged", "calling the plant"),
            ("duty-rayong", "note", "plant says scrubber pump tripped"),
            ("engine", "resolved", "below the limit again"),
            ("supervisor-rayong", "closed", "reviewed"),
        ],
    )


def test_changes_the_lifecycle_forbids_are_refused_with_the_state_named(store: AlertStore) -> None:
    alert = store.open_alert(KEY, "critical", "m", T0)
    assert alert is not None
    with pytest.raises(LifecycleError, match="is open: resolve it before closing it"):
        store.close_alert(alert.id, "duty-rayong", T0 + S)
    with pytest.raises(LifecycleError, match="resolving a case needs a reason"):
        store.resolve_id(alert.id, "duty-rayong", T0 + S, "  ")
    store.resolve_id(alert.id, "duty-rayong", T0 + S, "stack test booked")
    with pytest.raises(LifecycleError, match="is resolved: only an open alert is acknowledged"):
        store.acknowledge(alert.id, "duty-rayong", T0 + 2 * S)
    with pytest.raises(LifecycleError, match="still ongoing: it closes once its condition ends"):
        store.close_alert(alert.id, "duty-rayong", T0 + 3 * S)
    store.end_condition(KEY, T0 + 3 * S, "below the limit")
    store.close_alert(alert.id, "duty-rayong", T0 + 3 * S)
    with pytest.raises(LifecycleError, match="no alert #999"):
        store.acknowledge(999, "duty-rayong", T0)


def test_a_condition_back_within_the_flap_window_continues_its_case_and_keeps_the_acknowledgement(
    store: AlertStore,
) -> None:
    started = store.start_condition(KEY, "critical", "m", T0, 70.0, 60.0, "ppm", flap_window_ns=3600 * S)
    assert started is not None and started[0] == "opened"
    case = started[1]
    store.acknowledge(case.id, "duty-rayong", T0 + S)
    store.end_condition(KEY, T0 + 2 * S, "below the limit")
    back = store.start_condition(KEY, "critical", "m", T0 + 3 * S, 71.0, 60.0, "ppm", flap_window_ns=3600 * S)
    assert back is not None and back[0] == "reopened"
    again = back[1]
    assert (again.id, again.state, again.flaps, again.condition) == (case.id, ACKNOWLEDGED, 1, ONGOING)
    assert again.acknowledged_by == "duty-rayong"
    assert [e.action for e in store.audit(case.id)] == ["opened", "acknowledged", "resolved", "reopened"]
    assert "back within the flap window" in store.audit(case.id)[-1].detail
    # Ongoing already: nothing more starts.
    assert store.start_condition(KEY, "critical", "m", T0 + 4 * S, 72.0, 60.0, "ppm") is None


def test_a_new_episode_after_the_flap_window_opens_a_new_case_naming_the_previous_one(
    store: AlertStore,
) -> None:
    first = store.start_condition(KEY, "critical", "m", T0, 70.0, 60.0, "ppm", flap_window_ns=60 * S)
    assert first is not None
    store.end_condition(KEY, T0 + S, "below the limit")
    second = store.start_condition(
        KEY, "critical", "m", T0 + 120 * S, 75.0, 60.0, "ppm", flap_window_ns=60 * S
    )
    assert second is not None and second[0] == "opened"
    assert second[1].id != first[1].id and second[1].previous_id == first[1].id
    assert "a new episode after case" in store.audit(second[1].id)[0].detail


def test_exceedances_are_records_written_once_and_a_provisional_one_is_decided_once(
    store: AlertStore,
) -> None:
    case = store.open_alert(KEY, "warning", "provisional", T0, 70.0, 60.0, "ppm", provisional=True)
    assert case is not None
    h = T0 - T0 % (3600 * S)

    def record(average: float, now: int, provisional: bool = False) -> Exceedance:
        basis, method = "corrected to 7 % O2", "minute_means/2"
        return store.record_exceedance(
            KEY,
            "1h",
            h,
            h + 3600 * S,
            average,
            60.0,
            "ppm",
            basis,
            method,
            "standard x",
            now,
            provisional=provisional,
        )

    provisional = record(70.0, T0, provisional=True)
    assert provisional.case_id == case.id and provisional.outcome is None
    assert store.decide_provisional(KEY, h, "confirmed", T0 + S) == 1
    assert store.decide_provisional(KEY, h, "withdrawn", T0 + 2 * S) == 0  # decided once
    confirmed = record(72.5, T0 + S)
    records = store.exceedances(case_id=case.id)
    assert [(r.id, r.provisional, r.outcome, r.average) for r in records] == [
        (confirmed.id, False, None, 72.5),
        (provisional.id, True, "confirmed", 70.0),
    ]
    assert records[0].to_json()["basis"] == "corrected to 7 % O2"
    with pytest.raises(ValueError, match="outcome"):
        store.decide_provisional(KEY, h, "maybe", T0)


def test_engine_updates_and_escalation_steps_are_recorded(store: AlertStore) -> None:
    alert = store.open_alert(
        KEY, "warning", "provisional", T0, 70.0, 60.0, "ppm", provisional=True, params={"a": "1"}
    )
    assert alert is not None and alert.provisional and alert.params == {"a": "1"}
    confirmed = store.update(
        alert.id, T0 + S, "confirmed", "hour valid", provisional=False, value=72.5, severity="critical"
    )
    assert (confirmed.provisional, confirmed.value, confirmed.severity) == (False, 72.5, "critical")
    escalated = store.escalate(alert.id, 1, T0 + 2 * S)
    assert escalated is not None and escalated.escalation_step == 1
    assert store.escalate(alert.id, 1, T0 + 3 * S) is None  # that step was taken
    store.acknowledge(alert.id, "duty-rayong", T0 + 4 * S)
    assert store.escalate(alert.id, 2, T0 + 5 * S) is None  # acknowledged alerts do not escalate
    with pytest.raises(ValueError, match="not engine fields: state"):
        store.update(alert.id, T0, "x", state="closed")


def test_a_notification_is_claimed_once_per_alert_step_notifier_and_recipient(store: AlertStore) -> None:
    alert = store.open_alert(KEY, "critical", "m", T0)
    assert alert is not None
    assert store.claim_notification(alert.id, 0, "email", "duty@example.org", T0)
    assert not store.claim_notification(alert.id, 0, "email", "duty@example.org", T0 + S)
    assert store.claim_notification(alert.id, 1, "email", "supervisor@example.org", T0 + S)
    assert store.claim_notification(alert.id, 0, "webhook", "*", T0)
    assert store.notifications(alert.id) == [
        (0, "email", "duty@example.org"),
        (0, "webhook", "*"),
        (1, "email", "supervisor@example.org"),
    ]


def test_operator_responses_are_kept_beside_their_alert_and_noted_in_its_trail(store: AlertStore) -> None:
    first = store.open_alert(KEY, "critical", "m", T0)
    other = store.open_alert((*KEY[:3], "other-rule"), "critical", "m", T0)
    assert first is not None and other is not None
    response = store.add_response(first.id, KEY[0], "kk-op", " filter torn ", "filter replaced", T0 + S)
    store.add_response(other.id, KEY[0], "kk-op", "other", "other", T0 + S)
    assert [(r.id, r.cause, r.corrective_action, r.actor) for r in store.responses(first.id)] == [
        (response.id, "filter torn", "filter replaced", "kk-op")
    ]
    assert (store.audit(first.id)[-1].actor, store.audit(first.id)[-1].detail) == (
        "kk-op",
        "operator response: cause: filter torn; corrective action: filter replaced",
    )
    with pytest.raises(ResponseError, match="both the cause and the corrective action"):
        store.add_response(first.id, KEY[0], "kk-op", "  ", "x", T0)
    with pytest.raises(ResponseError, match="limited to 4000 characters"):
        store.add_response(first.id, KEY[0], "kk-op", "x" * 4001, "x", T0)
    with pytest.raises(LifecycleError, match="no alert #999"):
        store.add_response(999, KEY[0], "kk-op", "cause", "action", T0)
    assert len(store.responses(first.id)) == 1


def test_concurrent_openers_of_one_key_get_exactly_one_alert(store: AlertStore) -> None:
    results: list[object] = []
    barrier = threading.Barrier(8)

    def opener(i: int) -> None:
        barrier.wait()
        results.append(store.open_alert(KEY, "critical", f"opener {i}", T0 + i))

    threads = [threading.Thread(target=opener, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert len(store.list(state="active")) == 1


def test_a_first_release_state_file_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    with sqlite3.connect(str(path)) as db:
        db.executescript(
            """
            CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, factory TEXT NOT NULL,
              device TEXT NOT NULL, parameter TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL,
              state TEXT NOT NULL, opened_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,
              message TEXT NOT NULL, value REAL, limit_value REAL, unit TEXT NOT NULL DEFAULT '',
              resolved_ns INTEGER);
            CREATE UNIQUE INDEX alerts_one_open ON alerts (factory, device, parameter, rule)
              WHERE state = 'open';
            INSERT INTO alerts
              (factory, device, parameter, rule, severity, state, opened_ns, updated_ns, message)
              VALUES ('kaeng-khoi-biomass', 'boiler-1', 'so2', 'limit', 'critical', 'open', 1, 1, 'old');
            """
        )
    store = open_alert_store(None, path)
    [old] = store.list()
    assert (old.message, old.state, old.provisional, old.flaps) == ("old", OPEN, False, 0)
    assert store.open_alert(KEY, "critical", "dup", T0) is None
    store.close()
