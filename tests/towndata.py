"""The example town's data for the API and browser tests: its own simulated meters (the edge
agents' sim drivers and settings from examples/town/edge/*.yaml), run on a virtual clock over the
last hours, stored through the store interface and judged by the real compliance engine, so the
hourly averages, rolling averages, AQI and alerts are the ones `eit serve` would have made.

The story: the biomass boiler runs normally, then its SO2 climbs past the 60 ppm limit
``exceed_hours`` before the end (a critical clock-hour exceedance opens); the starch factory's
effluent analyzer goes silent ``silent_minutes`` before the end (a stale-data warning); the
fence-line ambient station reports throughout (AQI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alerts.settings import RuleSettings
from alerts.state import AlertStore
from eit.registry import Registry
from eit.store import Store
from eit.timeutil import NS_PER_S, now_ns
from server.demo import History, simulate_history
from testbed.services import REPO

EDGE_DIR = REPO / "examples" / "town" / "edge"
HOUR_NS = 3600 * NS_PER_S
TownData = History


def load_example_town(
    registry: Registry,
    store: Store,
    alerts: AlertStore,
    *,
    hours: float = 30,
    end_ns: int | None = None,
    scan_s: int = 60,
    exceed_hours: float = 5.5,
    silent_minutes: float = 20,
    settings: RuleSettings | None = None,
) -> History:
    end_ns = end_ns if end_ns is not None else now_ns()
    return simulate_history(
        registry,
        store,
        alerts,
        EDGE_DIR,
        end_ns - int(hours * HOUR_NS),
        end_ns,
        scan_s=scan_s,
        exceed_from_ns=end_ns - int(exceed_hours * HOUR_NS),
        silent_from_ns={"siam-cassava-starch": end_ns - int(silent_minutes * 60 * NS_PER_S)},
        settings=settings,
    )


def event_kinds(events: Sequence[Any]) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.alert.factory, e.alert.parameter, e.alert.rule) for e in events]


def write_site_variant(path: Path, private: Sequence[str]) -> Path:
    """The example site with the factories ``private`` marked ``public: false``."""
    import yaml

    from eit.confread import load_yaml

    data = load_yaml(REPO / "examples" / "town" / "site.yaml")
    for f in data["factories"]:
        if f["id"] in private:
            f["public"] = False
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path
