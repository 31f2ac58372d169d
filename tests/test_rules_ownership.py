"""The rules on a cluster worker (docs/scale-out.md): staleness is judged only for the factories
whose partitions the worker holds, and a factory it comes to own is silent from that moment on,
so a silent factory still goes stale under its new owner."""

from __future__ import annotations

from pathlib import Path

from alerts.settings import RuleSettings
from tests.test_rules import T0, Rig, S


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
