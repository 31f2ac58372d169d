"""The rules on a cluster worker (docs/scale-out.md): staleness is judged only for the factories
whose partitions the worker holds, and a factory it comes to own is silent from that moment on,
so a silent factory still goes stale under its new owner; an hour a worker judges after taking a
factory over mid-hour is the whole hour the store holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.settings import RuleSettings
from tests.test_rules import T0, H, Rig, S, stack_hour

MIN = 60 * S


def _stale_factories(rig: Rig) -> set[str]:
    return {e.alert.factory for e in rig.events if e.alert.rule == "stale" and e.kind == "opened"}


def test_only_owned_factories_go_stale_a_newly_owned_one_from_its_hand_over(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, RuleSettings(stale_after_s=60))
    factories = set(rig.registry.factories)
    assert {"biomass", "starch"} <= factories
    owned = {"biomass"}
    rig.engine.ownership = lambda: owned
    rig.tick(T0 + 30 * S)  # biomass changes hands now: silent from here
    rig.tick(T0 + 80 * S)
    assert _stale_factories(rig) == set(), "stale 50 s after the hand-over, with a 60 s limit"
    rig.tick(T0 + 95 * S)
    assert _stale_factories(rig) == {"biomass"}, "only the owned factory is judged"
    owned.add("starch")
    rig.tick(T0 + 120 * S)  # starch changes hands: it was silent since T0, but not under this owner
    assert _stale_factories(rig) == {"biomass"}
    rig.tick(T0 + 181 * S)
    assert _stale_factories(rig) == {"biomass", "starch"}
    rig.close()


def test_without_ownership_every_factory_is_judged(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RuleSettings(stale_after_s=60))
    rig.tick(T0 + 61 * S)
    assert _stale_factories(rig) == set(rig.registry.factories)
    rig.close()


def test_a_factory_taken_over_mid_hour_is_judged_on_the_whole_hour_in_the_store(tmp_path: Path) -> None:
    """Worker a processes the first half of an hour, worker b (running all along, a standby) the
    second half after it took the partition over: b's clock-hour average is the whole hour's, as
    the store gives it (the replay invariant across a fail-over), not its half."""
    a, b = Rig(tmp_path), Rig(tmp_path)  # one store, one state database: two workers of a cluster
    hour = stack_hour(T0, 40.0, 7.0, minutes=range(30)) + stack_hour(T0, 80.0, 7.0, minutes=range(30, 60))
    first, second = hour[:60], hour[60:]
    assert max(r.ts_ns for r in first) < T0 + 30 * MIN <= min(r.ts_ns for r in second)
    a.feed(first)
    b.engine.owned_from({"biomass"}, T0 + 30 * MIN)  # b takes biomass's lease as a's lapsed
    b.feed(second)
    b.tick(T0 + H + 150 * S)
    [judged] = b.hourly("so2")
    assert judged.fields["points"] == 60 and judged.fields["minutes"] == 60
    assert judged.fields["value"] == pytest.approx(60.0), "the mean of all 60 minute means"
    a.close()
    b.close()


def test_minutes_read_back_after_a_takeover_include_those_the_new_holder_had_seen(tmp_path: Path) -> None:
    """b held the factory before a did (b's memory has the hour's first minutes), a processed
    minutes 20-39, b took it back at minute 40: b's hour is the store's, every minute once."""
    a, b = Rig(tmp_path), Rig(tmp_path)
    hour = stack_hour(T0, 50.0, 7.0)  # so2 and o2 per minute: 120 readings
    b.feed(hour[:40])  # minutes 0-19
    a.engine.owned_from({"biomass"}, T0 + 20 * MIN)
    a.feed(hour[40:80])  # minutes 20-39
    b.engine.owned_from({"biomass"}, T0 + 40 * MIN)
    b.feed(hour[80:])  # minutes 40-59
    b.tick(T0 + H + 150 * S)
    [judged] = b.hourly("so2")
    assert (judged.fields["points"], judged.fields["minutes"]) == (60, 60)
    assert judged.fields["value"] == pytest.approx(50.0)
    a.close()
    b.close()
