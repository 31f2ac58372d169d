"""The edge agent's parts: the on-disk outbox, the simulated meter, the configuration."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import load_edge_config, parse_edge_config
from edge.drivers.base import DriverError
from edge.drivers.sim import SimChannel, SimDriver
from edge.outbox import Outbox, message_payload
from eit import wire
from eit.confread import load_yaml
from eit.errors import ConfigError
from testbed.services import REPO

EDGE_EXAMPLE = REPO / "examples" / "town" / "edge" / "kaeng-khoi-biomass.yaml"
T0 = 1_795_752_000 * 1_000_000_000  # 2026-11-27T04:00:00Z: scan times within the contract's bounds


def test_outbox_keeps_scans_in_order_with_increasing_seq_until_deleted(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    seqs = [
        box.append("d1", T0 + 1_000_000_000 * i, {"so2": float(i)}, {"so2": "C"} if i == 2 else {})
        for i in range(5)
    ]
    box.append("d2", 0, {"x": 1.0}, {})
    assert seqs == [1, 2, 3, 4, 5]
    pending = box.pending("d1", limit=3)
    assert [p.seq for p in pending] == [1, 2, 3]
    decoded = wire.decode(message_payload(pending))
    assert [s.seq for s in decoded.scans] == [1, 2, 3]
    assert decoded.scans[2].flags == {"so2": "C"}
    box.delete([p.id for p in pending])
    assert [p.seq for p in box.pending("d1")] == [4, 5]
    assert box.count() == 3
    box.close()


def test_outbox_seq_continues_after_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.append("d1", 0, {"a": 1.0}, {})
    box.delete([p.id for p in box.pending("d1")])
    box.close()
    box = Outbox(tmp_path / "o.db")
    assert box.append("d1", 1, {"a": 1.0}, {}) == 2
    box.close()


OUTBOX_WRITER = """
import sys
from pathlib import Path
from edge.outbox import Outbox
box = Outbox(Path(sys.argv[1]))
i = 0
while True:
    i += 1
    box.append("d1", i, {"a": float(i)}, {})
    print(i, flush=True)
"""


def test_outbox_scans_survive_sigkill_of_the_writing_process(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", OUTBOX_WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert writer.stdout is not None
    last_reported = 0
    deadline = time.monotonic() + 10
    while last_reported < 200 and time.monotonic() < deadline:
        last_reported = int(writer.stdout.readline())
    writer.kill()
    writer.wait()
    box = Outbox(path)
    seqs = [p.seq for p in box.pending("d1", limit=100000)]
    # Every append that returned (and was reported) is on disk, in order, without gaps.
    assert seqs[:last_reported] == list(range(1, last_reported + 1))
    assert seqs == list(range(1, len(seqs) + 1))
    box.close()


def _sim(profile: str, **kw: Any) -> SimDriver:
    d = SimDriver(
        "d1",
        [SimChannel("so2", 40.0, 1.0, 0.0, 500.0, 90.0), SimChannel("o2", 9.0, 0.1, 0.0, 21.0, None)],
        profile=profile,
        seed=7,
        **kw,
    )
    d.connect()
    return d


def test_sim_normal_stays_near_its_mean_within_range() -> None:
    d = _sim("normal")
    values = [d.read().values["so2"] for _ in range(200)]
    assert 35 < sum(values) / len(values) < 45
    assert all(0 <= v <= 500 for v in values)


def test_sim_exceeding_ramps_to_its_high_value() -> None:
    d = _sim("exceeding", ramp_s=0)
    values = [d.read().values for _ in range(50)]
    assert sum(v["so2"] for v in values) / 50 > 85
    assert sum(v["o2"] for v in values) / 50 < 10  # channels without 'high' stay normal


def test_sim_flatline_repeats_the_same_values() -> None:
    d = _sim("flatline", after_s=0)
    first = d.read().values
    assert [d.read().values for _ in range(5)] == [first] * 5


def test_sim_dropout_stops_answering() -> None:
    d = _sim("dropout", period_s=10, off_s=10)
    with pytest.raises(DriverError, match="not answering"):
        d.read()


def test_example_agent_config_loads() -> None:
    config = load_edge_config(EDGE_EXAMPLE, environ={})
    assert config.factory == "kaeng-khoi-biomass"
    assert [d.id for d in config.devices] == ["boiler-1", "meter-1"]
    assert config.outbox_path.name == "outbox-kaeng-khoi-biomass.db"


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (
            lambda d: d["devices"][0].update(driver="opcua"),
            "devices[boiler-1].driver",
            "'opcua' is not one of csv, modbus, sim",
        ),
        (
            lambda d: d["devices"][0]["sim"].update(profile="wobbly"),
            "devices[boiler-1].sim.profile",
            "'wobbly' is not one of normal, exceeding, flatline, dropout",
        ),
        (
            lambda d: d["devices"][0]["sim"]["channels"]["so2"].pop("mean"),
            "devices[boiler-1].sim.channels.so2.mean",
            "required key is missing",
        ),
        (lambda d: d["devices"][1].update(id="boiler-1"), "devices[1].id", "listed twice"),
        (lambda d: d["mqtt"].update(port="mqtt"), "mqtt.port", "expected a whole number"),
        (lambda d: d.update(scan_interval_s=0), "scan_interval_s", "must be greater than 0"),
        (lambda d: d.pop("factory"), "factory", "required key is missing"),
        (lambda d: d["mqtt"].update(hosts=["rmq1", "rmq2"]), "mqtt.hosts", "mqtt.host (one broker) or"),
        (lambda d: _hosts(d, []), "mqtt.hosts", "the list is empty"),
        (lambda d: _hosts(d, ["rmq1", "rmq2:70000"]), "mqtt.hosts[1]", "port '70000' is not a whole number"),
        (lambda d: _hosts(d, ["rmq1:x"]), "mqtt.hosts[0]", "port 'x' is not a whole number"),
        (
            lambda d: _hosts(d, ["rmq1", "rmq2", "RMQ1:1883"]),
            "mqtt.hosts[2]",
            "RMQ1:1883 is listed twice (entry 0 is rmq1:1883)",
        ),
        (lambda d: _hosts(d, [f"rmq{i}" for i in range(17)]), "mqtt.hosts", "17 brokers listed, at most 16"),
        (lambda d: _hosts(d, ["mqtts://rmq1:8883"]), "mqtt.hosts[0]", "no scheme"),
        (lambda d: _hosts(d, ["fd00::1"]), "mqtt.hosts[0]", "IPv6 address in brackets"),
        (lambda d: _hosts(d, {"rmq1": 1883}), "mqtt.hosts", "expected a list of text"),
    ],
)
def test_agent_config_errors_name_the_key_and_problem(
    tmp_path: Path, mutate: Any, key: str, problem: str
) -> None:
    data = load_yaml(EDGE_EXAMPLE)
    mutate(data)
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_edge_config(path, environ={})
    assert (err.value.source, err.value.key) == (str(path), key)
    assert problem in err.value.problem
    assert err.value.line is not None and str(err.value).startswith(f"{path}:{err.value.line}: {key}: ")


def _hosts(data: dict[str, Any], hosts: object) -> None:
    data["mqtt"].pop("host")
    data["mqtt"]["hosts"] = hosts


def test_agent_config_with_a_list_of_brokers_gives_each_its_port_or_mqtt_port(tmp_path: Path) -> None:
    data = load_yaml(EDGE_EXAMPLE)
    data["mqtt"] = {"hosts": ["rmq1:1884", "rmq2", "[fd00::3]", "[fd00::4]:1999"], "port": 1885}
    config = parse_edge_config(data, "edge.yaml", tmp_path)
    assert [str(b) for b in config.mqtt.brokers] == [
        "rmq1:1884",
        "rmq2:1885",
        "[fd00::3]:1885",
        "[fd00::4]:1999",
    ]
    assert (config.mqtt.host, config.mqtt.port) == ("rmq1", 1884)  # the first, for one-broker readers
    assert "rmq2:1885" in repr(config.mqtt)


def test_agent_config_with_one_host_works_as_before(tmp_path: Path) -> None:
    config = load_edge_config(EDGE_EXAMPLE, environ={})
    assert config.mqtt.hosts == ()
    assert [str(b) for b in config.mqtt.brokers] == ["localhost:1883"]


def test_agent_broker_list_from_the_environment_and_its_errors_name_the_variable(tmp_path: Path) -> None:
    data = load_yaml(EDGE_EXAMPLE)
    data["mqtt"].pop("host")
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_edge_config(path, environ={"EIT_MQTT__HOSTS": "[rmq1:1883, rmq2:1883]"})
    assert [str(b) for b in config.mqtt.brokers] == ["rmq1:1883", "rmq2:1883"]
    with pytest.raises(ConfigError) as err:
        load_edge_config(path, environ={"EIT_MQTT__HOSTS": "[rmq1:1883, rmq1:1883]"})
    assert (err.value.source, err.value.key) == ("environment variable EIT_MQTT__HOSTS", "mqtt.hosts[1]")
    assert "listed twice" in err.value.problem


def test_cli_reports_config_errors_without_a_traceback(tmp_path: Path) -> None:
    data = load_yaml(EDGE_EXAMPLE)
    data["devices"][0]["driver"] = "opcua"
    path = tmp_path / "edge.yaml"
    path.write_text(json.dumps(data))
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "edge", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"eit: configuration error: {path}:1: devices[boiler-1].driver:"
        " 'opcua' is not one of csv, modbus, sim"
    )


def test_status_payload_is_json_with_state_online(tmp_path: Path) -> None:
    data = load_yaml(EDGE_EXAMPLE)
    data["outbox"] = {"path": str(tmp_path / "o.db")}
    config = parse_edge_config(data, "edge.yaml", tmp_path)
    from edge.publisher import DevicePublisher

    pub = DevicePublisher(config.factory, "boiler-1", config.mqtt, Outbox(config.outbox_path))
    status = json.loads(pub.status_payload())
    assert status["state"] == "online" and status["outbox_pending"] == 0
