"""The first-cut rules: instantaneous limit and stale device; one open alert per key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.engine import AlertEngine
from alerts.model import AlertEvent
from alerts.notifiers.dispatch import Dispatcher
from alerts.notifiers.webhook import WebhookNotifier
from alerts.state import AlertStore
from eit.model import Reading
from eit.registry import load_registry
from tests.conftest import EXAMPLE_SITE
from tests.webhook_receiver import WebhookReceiver

S = 1_000_000_000
T0 = 1795752000 * S
F, D = "kaeng-khoi-biomass", "boiler-1"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[AlertEngine, list[AlertEvent], Clock]]:
    events: list[AlertEvent] = []
    clock = Clock()
    store = AlertStore(tmp_path / "state.db")
    engine = AlertEngine(
        load_registry(EXAMPLE_SITE),
        store,
        Dispatcher([]),
        stale_after_s=60,
        clock=clock,
        on_event=events.append,
    )
    yield engine, events, clock
    store.close()


def so2(t_s: int, value: float, flag: str = "N") -> Reading:
    return Reading(F, D, "so2", T0 + t_s * S, value, flag)


def test_a_steady_exceedance_opens_one_alert_and_recovery_resolves_it(
    setup: tuple[AlertEngine, list[AlertEvent], Clock],
) -> None:
    engine, events, _ = setup
    for t in range(30):
        engine.on_readings([so2(t, 75.0)], T0 + t * S)
    assert [e.kind for e in events] == ["opened"]
    alert = events[0].alert
    assert (alert.factory, alert.device, alert.parameter, alert.rule) == (F, D, "so2", "limit")
    assert (alert.value, alert.limit, alert.unit) == (75.0, 60.0, "ppm")
    assert "above the standard limit 60 ppm" in alert.message
    engine.on_readings([so2(31, 50.0)], T0 + 31 * S)
    assert [e.kind for e in events] == ["opened", "resolved"]
    assert engine.alerts.list(state="open") == []


def test_calibration_and_fault_flagged_values_never_raise_an_exceedance(
    setup: tuple[AlertEngine, list[AlertEvent], Clock],
) -> None:
    engine, events, _ = setup
    engine.on_readings([so2(t, 450.0, flag) for t, flag in enumerate("CMDFTB")], T0)
    assert events == []


def test_a_flagged_value_does_not_resolve_an_open_exceedance(
    setup: tuple[AlertEngine, list[AlertEvent], Clock],
) -> None:
    engine, events, _ = setup
    engine.on_readings([so2(0, 80.0), so2(1, 10.0, "C")], T0)
    assert [e.kind for e in events] == ["opened"]


def test_ph_range_limit_catches_values_below_the_minimum(
    setup: tuple[AlertEngine, list[AlertEvent], Clock],
) -> None:
    engine, events, _ = setup
    engine.on_readings([Reading("siam-cassava-starch", "outfall-1", "ph", T0, 4.9)], T0)
    assert [(e.kind, e.alert.limit) for e in events] == [("opened", 5.5)]
    assert "below the standard limit 5.5 pH" in events[0].alert.message


def test_annual_standards_are_not_applied_to_one_reading(
    setup: tuple[AlertEngine, list[AlertEvent], Clock],
) -> None:
    engine, events, _ = setup
    # PM10: 120 ug/m3 over 24 h, 50 over a year; 60 is above the annual figure only.
    engine.on_readings([Reading("eastern-petrochem", "fenceline-1", "pm10", T0, 60.0)], T0)
    assert events == []
    engine.on_readings([Reading("eastern-petrochem", "fenceline-1", "pm10", T0 + S, 130.0)], T0 + S)
    assert [e.alert.limit for e in events] == [120.0]


def test_a_silent_device_goes_stale_and_data_resolves_it(
    setup: tuple[AlertEngine, list[AlertEvent], Clock],
) -> None:
    engine, events, clock = setup
    for device in ("boiler-1", "meter-1"):
        engine.on_readings([Reading(F, device, "o2" if device == "boiler-1" else "power", T0, 9.0)], T0)
    clock.now = T0 + 30 * S
    engine.on_readings([Reading(F, "meter-1", "power", clock.now, 10.0)], clock.now)
    engine.tick()
    assert events == []
    clock.now = T0 + 61 * S
    engine.tick()
    engine.tick()  # still stale: no second alert
    stale = [e for e in events if e.alert.rule == "stale" and e.alert.factory == F]
    assert [(e.kind, e.alert.device) for e in stale] == [("opened", "boiler-1")]
    assert "no data from kaeng-khoi-biomass/boiler-1 for 61 s" in stale[0].alert.message
    engine.on_readings([Reading(F, D, "o2", clock.now, 9.0)], clock.now)
    assert [e.kind for e in events if e.alert.device == "boiler-1"] == ["opened", "resolved"]


def test_offline_status_opens_a_stale_alert_at_once(
    setup: tuple[AlertEngine, list[AlertEvent], Clock],
) -> None:
    engine, events, _ = setup
    engine.on_status(F, D, "offline", T0)
    engine.on_status(F, D, "offline", T0 + S)
    assert [(e.kind, e.alert.rule) for e in events] == [("opened", "stale")]
    assert "reports offline" in events[0].alert.message


def test_open_alerts_survive_a_restart_without_a_second_notification(tmp_path: Path) -> None:
    registry = load_registry(EXAMPLE_SITE)
    events: list[AlertEvent] = []
    store = AlertStore(tmp_path / "state.db")
    AlertEngine(registry, store, Dispatcher([]), on_event=events.append).on_readings([so2(0, 90.0)], T0)
    store.close()
    store = AlertStore(tmp_path / "state.db")
    engine = AlertEngine(registry, store, Dispatcher([]), on_event=events.append)
    engine.on_readings([so2(1, 91.0)], T0 + S)
    assert [e.kind for e in events] == ["opened"]
    engine.on_readings([so2(2, 10.0)], T0 + 2 * S)
    assert [e.kind for e in events] == ["opened", "resolved"]
    store.close()


def test_the_database_allows_one_open_alert_per_key(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "state.db")
    key = (F, D, "so2", "limit")
    assert store.open_alert(key, "critical", "first", T0) is not None
    assert store.open_alert(key, "critical", "second", T0 + S) is None
    assert len(store.list(state="open")) == 1
    store.close()


def test_webhook_receives_the_alert_as_json_after_retries(
    setup: tuple[AlertEngine, list[AlertEvent], Clock],
) -> None:
    engine, _, _ = setup
    with WebhookReceiver(fail_first=2) as hook:
        dispatcher = Dispatcher([WebhookNotifier(hook.url, retries=3, backoff_s=0.05)])
        dispatcher.start()
        engine.dispatcher = dispatcher
        engine.on_readings([so2(0, 99.0)], T0)
        body = hook.wait_for(lambda b: b["event"] == "opened", 10, "the webhook call")
        dispatcher.stop()
    assert hook.attempts == 3
    assert body["alert"]["factory"] == F and body["alert"]["parameter"] == "so2"
    assert body["alert"]["value"] == 99.0 and body["alert"]["limit"] == 60.0
    assert body["alert"]["opened_at"] == "2026-11-27T04:00:00Z"
