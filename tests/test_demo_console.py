"""The demo's terminal (server/democonsole.py), driven through the sink the demo hands the
ingest and the rules: a summary line per interval instead of a line per reading, alerts set
apart with where to see them, a summary at stop; and the simulated energy register, which only
climbs, through a simulated history and the live meter after it."""

from __future__ import annotations

import io
import itertools
import logging

import pytest

from alerts.model import Alert, AlertEvent
from edge.agent import _ClockLog, _log_clock
from edge.clock import ClockState
from edge.drivers.sim import SimChannel, SimDriver
from eit.model import Reading
from eit.registry import load_registry
from server.democonsole import RULE, ConsoleSink
from server.history import edge_meters, take_scans
from tests.conftest import EXAMPLE_SITE

T0 = 1_794_999_960 * 10**9  # 2026-11-18, a whole minute


class FakeClock:
    """Seconds, set by the test (the sink reads intervals from it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scan(ts_ns: int, so2: float) -> list[Reading]:
    return [
        Reading("kaeng-khoi-biomass", "boiler-1", "so2", ts_ns, so2, "N", 1),
        Reading("kaeng-khoi-biomass", "boiler-1", "o2", ts_ns, 9.5, "N", 1),
        Reading("eastern-petrochem", "fenceline-1", "pm25", ts_ns, 22.0, "T", 1),
    ]


def alert(kind: str, state: str = "open") -> AlertEvent:
    a = Alert(
        id=7,
        factory="kaeng-khoi-biomass",
        device="boiler-1",
        parameter="so2",
        rule="limit",
        severity="critical",
        state=state,
        opened_ns=T0,
        updated_ns=T0,
        message="so2 99.52 ppm above the standard limit 60 ppm",
        unit="ppm",
    )
    return AlertEvent(kind, a)


def test_the_terminal_shows_a_line_per_interval_alerts_set_apart_and_a_summary_at_stop() -> None:
    registry = load_registry(EXAMPLE_SITE)
    out, clock = io.StringIO(), FakeClock()
    sink = ConsoleSink(
        registry, out, colour=False, interval_s=10, hints=lambda i: f"see it: eit alert show {i}", clock=clock
    )
    for second in range(10):  # ten scans a second for ten seconds: 300 readings
        for _ in range(10):
            sink.on_readings(scan(T0 + second * 10**9, 50.0 + second), T0)
    assert out.getvalue() == ""  # no line per reading
    clock.now += 10
    line = sink.summary_line()
    assert line.endswith(
        "  300 readings from 2 device(s) in 10 s (100 flagged); 300 since start; no alert open"
    )

    sink.on_alert(alert("opened"))
    block = out.getvalue().splitlines()
    assert block == [
        "",
        RULE,
        "ALERT OPENED #7 kaeng-khoi-biomass/boiler-1 so2 [limit]",
        "  so2 99.52 ppm above the standard limit 60 ppm",
        "  see it: eit alert show 7",
        RULE,
        "",
    ]
    sink.on_readings(scan(T0 + 11 * 10**9, 99.5), T0)
    clock.now += 5
    line = sink.summary_line()
    assert "  3 readings from 2 device(s) in 5 s (1 flagged); 303 since start;" in line
    assert line.endswith("1 alert(s) open: #7 kaeng-khoi-biomass/boiler-1 so2 latest 99.5 ppm")

    sink.on_alert(alert("acknowledged", "acknowledged"))  # one line, not a block
    assert out.getvalue().splitlines()[-1].startswith("ALERT ACKNOWLEDGED #7 kaeng-khoi-biomass/boiler-1")
    clock.now += 65
    summary = sink.final_summary(2_000, "demo-data/readings.db", "demo-data")
    assert summary[1:] == [
        RULE,
        "EIT Monitor demo stopped after 1 min 20 s",
        "  readings  303 received from 2 device(s); 2,000 kept in demo-data/readings.db",
        "  alerts    1 acknowledged, 1 opened",
        "            #7 kaeng-khoi-biomass/boiler-1 so2 [limit] is open",
        "  see them  eit alerts --data-dir demo-data",
        "            eit alert show 7 --data-dir demo-data",
        "  the data stays in demo-data; the next run goes on from it",
        RULE,
    ]
    sink.on_alert(alert("resolved", "resolved"))
    assert sink.summary_line().endswith("; no alert open")


def test_every_reading_is_printed_when_asked() -> None:
    out = io.StringIO()
    sink = ConsoleSink(load_registry(EXAMPLE_SITE), out, colour=False, every_reading=True)
    sink.on_readings(scan(T0, 41.5), T0)
    lines = out.getvalue().splitlines()
    assert any(line.endswith("kaeng-khoi-biomass/boiler-1  so2=41.5 ppm  o2=9.5 %") for line in lines)
    assert any(line.endswith("eastern-petrochem/fenceline-1  pm25=22 ug/m3[T]") for line in lines)


def test_the_simulated_energy_register_only_climbs_through_history_and_live() -> None:
    registry = load_registry(EXAMPLE_SITE)
    meters = [m for m in edge_meters(EXAMPLE_SITE.parent / "edge") if m.device == "meter-1"]
    end = T0 + 6 * 3600 * 10**9
    energy = [
        r.value
        for s in take_scans(registry, meters, T0, end, 60)
        for r in s.readings
        if r.channel == "energy"
    ]
    assert len(energy) == 6 * 60 and all(b > a for a, b in itertools.pairwise(energy))
    assert energy[-1] - energy[0] == pytest.approx(4200 * (6 - 1 / 60), rel=1e-6)  # counter_per_h 4200
    # The live meter after the history goes on from the same register.
    live = SimDriver(
        "meter-1", [SimChannel("energy", 1_250_000, 10, 0, 1e9, None, counter_per_h=4200)], seed=1
    )
    live.clock = lambda: end / 1e9
    live.connect()
    first = live.read().values["energy"]
    assert first >= energy[-1]
    live.clock = lambda: end / 1e9 - 3600  # the clock is set back an hour
    assert live.read().values["energy"] == first


def test_the_clock_state_is_logged_once_for_the_agents_of_one_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import edge.agent

    unsynchronised = ClockState("unsynchronised", False, "the operating system reports no NTP")
    caplog.set_level(logging.INFO, logger="eit.edge.agent")
    edge.agent._CLOCK_LOG = _ClockLog()  # a fresh process
    for _ in range(3):  # three agents start on the same machine
        _log_clock(unsynchronised, None)
    _log_clock(ClockState("ok", True), unsynchronised)
    _log_clock(ClockState("ok", True), unsynchronised)
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "eit.edge.agent"]
    assert records == [
        ("WARNING", "clock: unsynchronised: the operating system reports no NTP"),
        ("INFO", "clock: ok now (was unsynchronised)"),
    ]
