"""The outbox's size and age bounds with counted drops, the clock judgement and the flags it puts
on scans, the status message that reports both, and the CSV replay driver."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import edge.agent
from edge.agent import Agent
from edge.clock import ClockWatch, kernel_synchronised
from edge.config import parse_edge_config
from edge.drivers.base import SourceExhausted
from edge.drivers.csv_replay import CsvReplayDriver, from_config
from edge.metrics import render
from edge.outbox import Outbox, message_payload, within_message
from eit import wire
from eit.bounds import MAX_MESSAGE_BYTES
from eit.confread import Section, load_yaml
from eit.errors import ConfigError
from eit.timeutil import NS_PER_S, now_ns, parse_iso_ns
from ingest.store.sqlite import SqliteStore
from testbed.services import (
    EitProcess,
    Mosquitto,
    outbox_state,
    wait_for,
    write_serve_config,
)

TWELVE = {f"ch{i}": 1000.0 + i / 7 for i in range(12)}


def test_full_outbox_drops_the_oldest_scans_and_counts_every_one(
    tmp_path: Path, report: Callable[[str], None]
) -> None:
    bound = 300_000
    box = Outbox(tmp_path / "o.db", max_bytes=bound)
    appended = {"d1": 0, "d2": 0}
    for i in range(6000):
        device = "d1" if i % 3 else "d2"
        box.append(device, i * NS_PER_S, TWELVE, {})
        appended[device] += 1
    assert box.used_bytes() <= bound
    dropped = box.dropped_by_device()
    for device, n in appended.items():
        kept = [p.seq for p in box.pending(device, limit=100_000)]
        # What is kept is the newest scans, without a gap; what is missing is exactly what was counted.
        assert kept == list(range(n - len(kept) + 1, n + 1))
        assert len(kept) + dropped[(device, "size")] == n
    total_dropped = sum(dropped.values())
    assert total_dropped > 0
    box.close()
    reopened = Outbox(tmp_path / "o.db", max_bytes=bound)
    assert sum(reopened.dropped().values()) == total_dropped  # the count survives a restart
    reopened.close()
    size = (tmp_path / "o.db").stat().st_size
    report(
        f"outbox bound {bound / 1e3:g} kB: 6000 scans of 12 channels appended, {6000 - total_dropped} kept, "
        f"{total_dropped} dropped and counted (lost uncounted: 0); database file {size / 1e3:.0f} kB"
    )


def test_the_backlog_goes_out_in_messages_no_larger_than_the_contract_allows(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    wide = {f"ch{i}": 1000.0 + i / 7 for i in range(4000)}  # a scan of about 100 KB
    t0 = now_ns()
    for i in range(25):
        outbox.append("d1", t0 + i * NS_PER_S, wide, {})
    sent: list[int] = []
    after = 0
    while rows := within_message(outbox.pending("d1", after, 500)):
        payload = message_payload(rows)
        assert len(payload) <= MAX_MESSAGE_BYTES
        assert len(wire.decode(payload).scans) == len(rows)  # the server reads it whole
        sent.append(len(rows))
        after = rows[-1].id
    assert sum(sent) == 25 and len(sent) == 3 and sent[0] == 10  # 10 scans of ~100 KB fit in 1 MiB
    # A scan larger than a message on its own goes alone (the server dead-letters it, too_large).
    outbox.append("d2", t0, {f"ch{i}": 1000.0 + i / 7 for i in range(60_000)}, {})
    outbox.append("d2", t0 + NS_PER_S, {"ch0": 1.0}, {})
    [alone] = within_message(outbox.pending("d2", 0, 500))
    assert len(message_payload([alone])) > MAX_MESSAGE_BYTES
    outbox.close()


def test_outbox_drops_scans_past_the_age_bound_but_not_those_stamped_with_a_wrong_clock(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.db", max_age_s=86400, age_check_every_s=0)
    now = now_ns()
    old = now - 2 * 86400 * NS_PER_S
    for i in range(5):
        box.append("d1", old + i, {"a": 1.0}, {}, stored_ns=old + i)
    box.append(
        "d1", 946684800 * NS_PER_S, {"a": 2.0}, {"a": "D"}, clock_ok=False, stored_ns=946684800 * NS_PER_S
    )
    box.append("d1", now, {"a": 3.0}, {})
    assert [p.seq for p in box.pending("d1")] == [6, 7]
    assert box.dropped("d1") == {"age": 5}
    box.close()


def sim_config(tmp_path: Path, **top: Any) -> dict[str, Any]:
    return {
        "factory": "kaeng-khoi-biomass",
        "mqtt": {"host": "127.0.0.1", "port": 1},
        "outbox": {"path": str(tmp_path / "o.db")},
        "devices": [
            {
                "id": "boiler-1",
                "driver": "sim",
                "sim": {"seed": 1, "channels": {"so2": {"mean": 40}, "o2": {"mean": 9}}},
            }
        ],
    } | top


def test_clock_before_2020_flags_scans_d_and_is_reported_in_status_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = Agent(parse_edge_config(sim_config(tmp_path), "edge.yaml", tmp_path))
    scanner = agent.scanners["boiler-1"]
    scanner.device.driver.connect()
    scanner.scan_once()  # a right clock: not flagged
    year_2000 = 946684800 * NS_PER_S
    monkeypatch.setattr(edge.agent, "now_ns", lambda: year_2000 + 5 * NS_PER_S)  # the RTC lost power
    scanner.scan_once()
    bodies = [json.loads(p.body) for p in agent.outbox.pending("boiler-1")]
    assert "flags" not in bodies[0]
    assert bodies[1]["ts"] == "2000-01-01T00:00:05Z"
    assert bodies[1]["flags"] == {"so2": "D", "o2": "D"}
    assert scanner.counters.clock_flagged_scans == 1
    status = json.loads(agent.publishers["boiler-1"].status_payload())
    assert status["clock"] == "wrong"
    assert "before 2020" in status["clock_problem"]
    assert "eit_edge_clock_ok 0" in render(agent)
    assert 'eit_edge_scans_clock_flagged_total{device="boiler-1"} 1' in render(agent)
    agent.outbox.close()


def test_status_and_metrics_carry_the_outbox_drop_count(tmp_path: Path) -> None:
    config = sim_config(tmp_path, outbox={"path": str(tmp_path / "o.db"), "max_mb": 0.1})
    agent = Agent(parse_edge_config(config, "edge.yaml", tmp_path))
    for i in range(3000):
        agent.outbox.append("boiler-1", i * NS_PER_S, TWELVE, {})
    dropped = agent.outbox.dropped("boiler-1")["size"]
    status = json.loads(agent.publishers["boiler-1"].status_payload())
    assert status["state"] == "online"
    assert status["outbox_dropped"] == dropped > 0
    assert status["outbox_dropped_by"] == {"size": dropped}
    assert status["outbox_pending"] == 3000 - dropped
    assert f'eit_edge_outbox_dropped_scans_total{{device="boiler-1",reason="size"}} {dropped}' in render(
        agent
    )
    agent.outbox.close()


def test_clock_judgement() -> None:
    base = parse_iso_ns("2026-06-01T00:00:00Z")
    synced = ClockWatch(latest_stamped_ns=lambda: base, synchronised=lambda: True)
    assert synced.judge(parse_iso_ns("2000-01-01T00:00:00Z")).state == "wrong"
    assert synced.judge(base - 3600 * NS_PER_S).state == "ok"  # NTP says so: trusted
    unsynced = ClockWatch(latest_stamped_ns=lambda: base, synchronised=lambda: False)
    behind = unsynced.judge(base - 3600 * NS_PER_S)
    assert behind.state == "wrong" and "behind the newest scan already taken" in behind.problem
    assert unsynced.judge(base + NS_PER_S).state == "unsynchronised"
    unknown = ClockWatch(synchronised=lambda: None)
    assert unknown.judge(base).as_status() == {"clock": "ok", "clock_synchronised": None}
    # The real question to this machine's kernel gets an answer of the right kind.
    assert kernel_synchronised() in (True, False, None)


CSV = """time,SO2_ppm,O2_pct,SO2_flag
2026-10-01 07:00:00,41.5,9.1,N
2026-10-01 07:01:00,43.0,9.2,C
not a time,1,2,N
2026-10-01 07:02:00,,9.3,N
2026-10-01 07:03:00,abc,9.4,N
"""


def csv_driver(tmp_path: Path) -> CsvReplayDriver:
    path = tmp_path / "history.csv"
    path.write_text(CSV)
    sec = Section(
        {
            "path": str(path),
            "timezone": "Asia/Bangkok",
            "columns": {"so2": "SO2_ppm", "o2": "O2_pct"},
            "flag_columns": {"so2": "SO2_flag"},
        },
        "edge.yaml",
        "devices[0].csv",
    )
    return from_config(sec, tmp_path, "boiler-1")


def test_csv_replay_gives_each_row_its_recorded_time_in_utc_and_skips_bad_rows(tmp_path: Path) -> None:
    driver = csv_driver(tmp_path)
    driver.connect()
    scans = []
    with pytest.raises(SourceExhausted):
        while True:
            scans.append(driver.read())
    driver.close()
    assert [(s.ts_ns, s.values, s.flags) for s in scans] == [
        (parse_iso_ns("2026-10-01T00:00:00Z"), {"so2": 41.5, "o2": 9.1}, {}),
        (parse_iso_ns("2026-10-01T00:01:00Z"), {"so2": 43.0, "o2": 9.2}, {"so2": "C"}),
        (parse_iso_ns("2026-10-01T00:02:00Z"), {"o2": 9.3}, {}),
        (parse_iso_ns("2026-10-01T00:03:00Z"), {"o2": 9.4}, {}),
    ]
    assert (driver.rows_sent, driver.rows_skipped) == (4, 1)


def test_csv_replay_config_errors_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("when,so2\n2026-01-01T00:00:00Z,1\n")
    with pytest.raises(ConfigError) as err:
        from_config(Section({"path": "h.csv"}, "edge.yaml", "devices[0].csv"), tmp_path, "d")
    assert (
        err.value.key == "devices[0].csv.path"
        and "no column 'time' (columns: when, so2)" in err.value.problem
    )
    with pytest.raises(ConfigError) as err:
        from_config(Section({"path": "h.csv", "timezone": "Mars/Olympus"}, "edge.yaml", "c"), tmp_path, "d")
    assert err.value.key == "c.timezone"


@pytest.mark.integration
def test_csv_replay_uploads_history_through_the_broker_and_the_agent_exits_when_done(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    rows = ["time,so2,o2"] + [f"2026-10-01T00:{m:02d}:00Z,{40 + m / 10:.1f},9.0" for m in range(60)]
    (tmp_path / "history.csv").write_text("\n".join(rows) + "\n")
    serve_cfg = write_serve_config(
        tmp_path / "serve", mosquitto.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}"
    )
    edge_cfg = tmp_path / "replay.yaml"
    edge_cfg.write_text(
        json.dumps(
            {
                "factory": "kaeng-khoi-biomass",
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": mosquitto.port,
                    "client_id": f"replay-{uuid.uuid4().hex[:6]}",
                },
                "outbox": {"path": str(tmp_path / "outbox.db")},
                "devices": [
                    {
                        "id": "boiler-1",
                        "driver": "csv",
                        "scan_interval_s": 0.02,
                        "csv": {"path": "history.csv"},
                    }
                ],
            }
        )
    )
    serve = EitProcess(["serve", "--config", str(serve_cfg)], tmp_path / "serve.log").start()
    store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
    try:
        wait_for(lambda: "connected to broker" in serve.output(), 30, "eit serve to connect")
        agent = EitProcess(["edge", "run", "--config", str(edge_cfg)], tmp_path / "edge.log").start()
        assert agent.proc is not None
        assert agent.proc.wait(60) == 0, agent.output()  # it stops by itself once all is acknowledged
        wait_for(lambda: store.count(factory="kaeng-khoi-biomass") == 120, 20, "all 60 rows in the store")
        start, end = parse_iso_ns("2026-10-01T00:00:00Z"), parse_iso_ns("2026-10-01T01:00:00Z")
        readings = store.readings("kaeng-khoi-biomass", "boiler-1", "so2", start, end)
        assert [r.ts_ns for r in readings] == [start + m * 60 * NS_PER_S for m in range(60)]
        assert readings[-1].value == pytest.approx(45.9)
    finally:
        store.close()
        assert serve.terminate() == 0
    assert outbox_state(tmp_path / "outbox.db") == ({"boiler-1": 60}, 0)
    assert "replay of" in agent.output() and "60 row(s) sent" in agent.output()


def test_example_agent_configurations_load(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples" / "edge"
    for name in ("modbus-factory.yaml", "replay-history.yaml"):
        data = load_yaml(examples / name)
        data["mqtt"] = {"host": "127.0.0.1"}  # the example's password and CA files are the factory's
        data["outbox"] = {"path": str(tmp_path / f"{name}.db")}
        for device in data["devices"]:
            if device["driver"] == "csv":
                csv_path = tmp_path / "history.csv"
                csv_path.write_text("time,SO2,NOx,SO2_flag\n01/10/2026 07:00,41.5,120,N\n")
                device["csv"]["path"] = str(csv_path)
            if device["driver"] == "modbus" and device["modbus"]["transport"] == "rtu":
                device["modbus"]["serial"]["port"] = f"/dev/ttyEXAMPLE-{name}"
        config = parse_edge_config(data, name, tmp_path)
        agent = Agent(config)
        for device in config.devices:
            # A replaying device sends no status: it must not speak for the live agent's device.
            assert agent.publishers[device.id].sends_status == (device.driver_name != "csv")
        agent.outbox.close()


def test_agent_serves_prometheus_metrics_and_health_over_http(tmp_path: Path) -> None:
    import urllib.request

    from testbed.services import free_port

    port = free_port()
    config = sim_config(tmp_path, metrics={"host": "127.0.0.1", "port": port}, scan_interval_s=0.2)
    agent = Agent(parse_edge_config(config, "edge.yaml", tmp_path))
    agent.start()
    try:
        wait_for(lambda: agent.scans_taken() >= 2, 10, "two scans")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            health = json.loads(response.read())
    finally:
        agent.stop(drain_s=0)
    assert 'eit_edge_outbox_dropped_scans_total{device="boiler-1",reason="size"} 0' in text
    assert 'eit_edge_broker_connected{device="boiler-1"} 0' in text  # no broker at port 1
    assert "# TYPE eit_edge_scans_total counter" in text
    assert health["factory"] == "kaeng-khoi-biomass"
    assert health["status"] == "ok" and health["stages"] == {"scan-boiler-1": "ok", "publish-boiler-1": "ok"}
    assert 'eit_stage_alive{stage="scan-boiler-1"} 1' in text
    assert 'eit_edge_outbox_write_errors_total{device="boiler-1"} 0' in text
    assert health["devices"]["boiler-1"]["meter_answering"] is True
    assert health["outbox_pending"] >= 2
