"""A storage replica's derived points (alerts/replica_derived.py): recomputed from the replica's
own readings once their hour is closed, they equal what the primary set's live rules write for
the same readings; only the worker's own factories, each touched hour again after late data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts.replica_derived import ReplicaDerivedJob, TouchedHours
from alerts.settings import RuleSettings
from eit.storeschema import Hourly
from ingest.store.sqlite import SqliteStore
from tests.test_rules import T0, H, Rig, S, stack_hour

CLOSE = 150 * S  # past the rules' close delay (120 s)


def _fields(store: SqliteStore, channel: str) -> list[dict[str, Any]]:
    points = store.query_points(
        Hourly.NAME, {"factory": "biomass", "device": "boiler", "channel": channel}, 0, 2**62
    )
    return [{k: v for k, v in p.fields.items() if k != Hourly.RETROACTIVE} for p in points]


class Replica:
    def __init__(self, tmp: Path, owned: set[str]) -> None:
        self.now = T0
        self.store = SqliteStore(tmp / "replica.db")
        self.touched = TouchedHours()
        self.job = ReplicaDerivedJob(
            Rig(tmp / "registry").registry,
            self.store,
            self.touched,
            RuleSettings(),
            lambda: owned,
            clock=lambda: self.now,
        )

    def store_batch(self, readings: list[Any]) -> None:
        self.store.write(readings)
        self.touched.on_readings(readings, self.now)


def test_the_replicas_hourly_points_equal_the_live_rules_and_follow_late_data(tmp_path: Path) -> None:
    primary = Rig(tmp_path)
    replica = Replica(tmp_path, {"biomass"})
    hour = stack_hour(T0, 50.0, 11.0, minutes=range(50))
    for batch in (hour[:40], hour[40:]):
        primary.feed(batch)
        replica.store_batch(batch)
    replica.now = T0 + H + 60 * S
    assert replica.job.run_once() == 0, "the hour is not closed yet"
    primary.tick(T0 + H + CLOSE)
    replica.now = T0 + H + CLOSE
    assert replica.job.run_once() == 1
    assert _fields(replica.store, "so2") == _fields(primary.store, "so2") != []
    assert replica.job.run_once() == 0, "nothing touched since"
    # Late data for the last ten minutes: both recompute the hour, to the same numbers again.
    late = stack_hour(T0, 90.0, 11.0, minutes=range(50, 60))
    primary.feed(late, now=T0 + H + 600 * S)
    replica.store_batch(late)
    primary.tick(T0 + H + 700 * S)
    replica.now = T0 + H + 700 * S
    assert replica.job.run_once() == 1
    assert _fields(replica.store, "so2") == _fields(primary.store, "so2")
    assert _fields(replica.store, "so2")[0][Hourly.POINTS] == 60
    primary.close()
    replica.store.close()


def test_a_factory_the_worker_does_not_hold_is_left_to_its_holder(tmp_path: Path) -> None:
    replica = Replica(tmp_path, set())
    replica.store_batch(stack_hour(T0, 50.0, 11.0))
    replica.now = T0 + H + CLOSE
    assert replica.job.run_once() == 0
    assert _fields(replica.store, "so2") == []
    replica.store.close()


def test_a_failed_run_keeps_its_hours_for_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replica = Replica(tmp_path, {"biomass"})
    replica.store_batch(stack_hour(T0, 50.0, 11.0))
    replica.now = T0 + H + CLOSE

    def down(*args: object) -> None:
        raise OSError("store unreachable")

    monkeypatch.setattr("alerts.replica_derived.recompute", down)
    with pytest.raises(OSError):
        replica.job.run_once()
    monkeypatch.undo()
    assert replica.job.run_once() == 1
    assert _fields(replica.store, "so2") != []
    replica.store.close()
