"""The duties inside `eit serve`: its duties stage runs beside the rules, and a shutdown window an
officer accepts through the API ends the silent device's no-data case and makes its factory's
public state `shutdown` (while a filed window alone changes nothing)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from eit.confread import load_yaml
from eit.timeutil import NS_PER_S, now_ns, ns_to_iso
from server.accounts import Accounts
from server.config import load_serve_config
from server.serve import Server
from testbed.services import Mosquitto, wait_for, write_serve_config

pytestmark = pytest.mark.integration
F, D = "kaeng-khoi-biomass", "boiler-1"


def publish(port: int) -> None:
    end = now_ns() // NS_PER_S * NS_PER_S
    scans = [
        {"seq": s, "ts": ns_to_iso(end - (5 - s) * NS_PER_S), "values": {"so2": 40.0, "o2": 9.0}}
        for s in range(5)
    ]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"agent-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(f"eit/{F}/{D}/data", json.dumps({"v": 1, "scans": scans}), qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def server(tmp_path: Path, broker: Mosquitto) -> Iterator[Server]:
    path = write_serve_config(
        tmp_path / "serve", broker.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}", stale_after_s=2
    )
    data = load_yaml(path)
    data["rules"]["public_no_data_after_s"] = 2
    path.write_text(yaml.safe_dump(data))
    s = Server(load_serve_config(path, environ={}))
    s.start()
    assert s.mqtt.wait_connected(10)
    yield s
    s.stop()


def test_an_accepted_shutdown_ends_the_no_data_case_and_shows_the_factory_shut_down(
    server: Server, broker: Mosquitto
) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    health = requests.get(f"{base}/healthz", timeout=5).json()
    assert "duties" in health["stages"]
    accounts = Accounts(server.state_db)
    for name, role, factory in (("olivia", "officer", None), ("kk-op", "operator", F)):
        accounts.add_user(name, role, f"{name}-pass-2026", now_ns(), factory)

    def headers(name: str) -> dict[str, str]:
        r = requests.post(
            f"{base}/api/v1/token", data={"username": name, "password": f"{name}-pass-2026"}, timeout=10
        )
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def stale_ongoing() -> bool:
        return any(
            a.rule == "stale" and a.device == D and a.ongoing for a in server.alert_store.list(limit=100)
        )

    def state() -> str:
        factories = requests.get(f"{base}/api/v1/factories", timeout=5).json()
        return str(next(f["state"] for f in factories if f["id"] == F))

    publish(broker.port)
    # The scans first (on a loaded machine the boiler may go stale from eit serve's start before
    # they arrive, and their arrival would end that case), then the silence after them.
    wait_for(lambda: server.store.count(factory=F, device=D) == 10, 30, "the boiler's five scans stored")
    stored_ns = now_ns()

    def silent_since_the_scans() -> bool:
        return any(
            a.rule == "stale"
            and a.device == D
            and a.ongoing
            and (a.condition_since_ns or a.opened_ns) > stored_ns
            for a in server.alert_store.list(limit=100)
        )

    wait_for(silent_since_the_scans, 30, "the silent boiler's no-data case, after its scans")
    now = now_ns()
    window = {
        "system": "cems",
        "kind": "shutdown",
        "factory": F,
        "device": D,
        "start": ns_to_iso(now - 3600 * NS_PER_S),
        "end": ns_to_iso(now + 86_400 * NS_PER_S),
        "cause": "boiler overhaul",
    }
    op, officer = headers("kk-op"), headers("olivia")
    notice = requests.post(f"{base}/api/v1/duties/notices", json=window, headers=op, timeout=10).json()
    # Filed, not accepted: the case goes on and the factory is not shown shut down.
    for _ in range(3):
        server.engine.tick()
    assert stale_ongoing() and state() != "shutdown"
    accepted = requests.post(
        f"{base}/api/v1/duties/notices/{notice['id']}/accept", headers=officer, timeout=10
    )
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"
    wait_for(lambda: not stale_ongoing(), 30, "the no-data case to end inside the accepted window")
    # The factory's monitors (its one stack) are all inside the window: its public state.
    wait_for(lambda: state() == "shutdown", 30, "the public state shutdown")
