"""The rules' pending work in the state database (alerts/pending.py), on SQLite and PostgreSQL:
a record made again keeps the higher number; settling removes records up to the number the
decision saw, so work recorded again after the decision survives; thousands of items at once
(an hour's start for every series) in one statement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.pending import DAY, HOUR, LATE, StatePendingWork
from statedb import open_state_db

S1 = ("f", "d", "so2")
S2 = ("f", "d", "nox")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def pending(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StatePendingWork]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    db = open_state_db(url, tmp_path / "state.db")
    work = StatePendingWork(db)
    yield work
    db.close()


def test_records_keep_the_highest_number_and_settling_spares_later_records(pending: StatePendingWork) -> None:
    pending.record([((HOUR, S1, 100), 1), ((LATE, S1, 100), 2), ((DAY, S2, 0), 3)])
    pending.record([((LATE, S1, 100), 7)])  # more late data after the first decision
    pending.record([((HOUR, S1, 100), 0)])  # an older number never lowers a record
    assert sorted(pending.items()) == [
        ((DAY, S2, 0), 3),
        ((HOUR, S1, 100), 1),
        ((LATE, S1, 100), 7),
    ]
    # The decision that saw number 2 settles the late hour: the record made again (7) stays.
    pending.settle([((LATE, S1, 100), 2), ((HOUR, S1, 100), 1)])
    assert sorted(pending.items()) == [((DAY, S2, 0), 3), ((LATE, S1, 100), 7)]
    pending.settle([((LATE, S1, 100), 7), ((DAY, S2, 0), 3)])
    assert pending.items() == []


def test_an_hour_start_for_thousands_of_series_is_one_batch(pending: StatePendingWork) -> None:
    items = [((HOUR, ("f", f"d{i // 12}", f"c{i % 12}"), 3600), i + 1) for i in range(7200)]
    pending.record(items)
    pending.record(items)  # again: the same rows, no duplicates
    assert len(pending.items()) == 7200
    pending.settle(items)
    assert pending.items() == []
