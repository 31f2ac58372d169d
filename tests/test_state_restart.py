"""The state database restarted under a running `eit serve`: a real PostgreSQL, stopped and
started again (as an operator's restart or a fail-over does) while `eit serve` keeps running.
Alert actions through the API and new alerts from readings keep working afterwards, without
restarting `eit serve`; while the database is down, the API says so (503) instead of failing,
and the ingest holds a batch whose dead letters it cannot keep until the database is back."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from eit.registry import load_registry
from ingest.deadletters import open_dead_letters
from ingest.metrics import IngestMetrics
from ingest.service import Incoming, Ingest
from ingest.store.sqlite import SqliteStore
from server.accounts import open_accounts
from testbed.services import EitProcess, Mosquitto, PostgreSQL, free_port, wait_for, write_serve_config
from tests.conftest import EXAMPLE_SITE

pytestmark = pytest.mark.integration

FACTORY = "kaeng-khoi-biomass"
DEVICE = "boiler-1"
PASSWORD = "olivia-restart-pass"


@pytest.fixture
def postgres() -> Iterator[PostgreSQL]:
    """A PostgreSQL of this test's own: it is stopped and started again."""
    server = PostgreSQL().start()
    yield server
    server.stop()


def publish_exceeding_scans(broker: Mosquitto, first_seq: int, values: dict[str, float]) -> None:
    """Twelve scans of the boiler in the running hour (enough points for a provisional verdict),
    in one message as an agent sends them, through Mosquitto."""
    now = time.time()
    hour_start = now - now % 3600
    step = (now - hour_start) / 13
    scans = [
        {"seq": first_seq + i, "ts": round(hour_start + step * (i + 1), 6), "values": {**values, "o2": 7.0}}
        for i in range(12)
    ]
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
         "-t", f"eit/{FACTORY}/{DEVICE}/data", "-m", json.dumps({"v": 1, "scans": scans})],
        check=True, timeout=10,
    )  # fmt: skip


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.headers: dict[str, str] = {}

    def login(self) -> None:
        r = requests.post(f"{self.base}/token", data={"username": "olivia", "password": PASSWORD}, timeout=10)
        assert r.status_code == 200, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base}{path}", headers=self.headers, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=30)

    def alert_of(self, parameter: str) -> dict[str, Any] | None:
        r = self.get(f"/alerts?factory={FACTORY}&state=active")
        if r.status_code != 200:
            return None
        found = [a for a in r.json() if a["device"] == DEVICE and a["parameter"] == parameter]
        return found[0] if found else None


def test_alert_actions_and_new_alerts_work_after_postgresql_restarts_under_eit_serve(
    tmp_path: Path, broker: Mosquitto, postgres: PostgreSQL
) -> None:
    url = postgres.url
    accounts = open_accounts(url, tmp_path / "unused.db")
    try:
        accounts.add_user("olivia", "officer", PASSWORD, time.time_ns())
    finally:
        accounts.close()
    http_port = free_port()
    config = write_serve_config(
        tmp_path / "serve", broker.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}", http_port=http_port,
        state_url=url,
    )  # fmt: skip
    serve = EitProcess(["serve", "--config", str(config)], tmp_path / "serve.log").start()
    try:
        wait_for(lambda: "connected to broker" in serve.output(), 30, "eit serve to connect")
        api = Api(http_port)
        api.login()
        publish_exceeding_scans(broker, 1, {"so2": 300.0, "nox": 50.0})
        # Each alert kept as seen: asking again could meet a request that fails meanwhile.
        seen: dict[str, dict[str, Any]] = {}

        def alert_seen(parameter: str) -> bool:
            found = api.alert_of(parameter)
            if found is not None:
                seen[parameter] = found
            return found is not None

        wait_for(lambda: alert_seen("so2"), 30, "the SO2 alert through the API")
        so2 = seen["so2"]

        postgres.halt()
        postgres.resume()

        # The same eit serve, the same token (kept in the database), new connections.
        acked = api.post(f"/alerts/{so2['id']}/acknowledge", {"note": "calling the plant"})
        assert acked.status_code == 200, acked.text
        assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged", "olivia")
        noted = api.post(f"/alerts/{so2['id']}/comments", {"text": "scrubber pump tripped"})
        assert noted.status_code == 200, noted.text
        detail = api.get(f"/alerts/{so2['id']}").json()
        assert [(e["actor"], e["action"], e["detail"]) for e in detail["audit"]][-2:] == [
            ("olivia", "acknowledged", "calling the plant"),
            ("olivia", "note", "scrubber pump tripped"),
        ]

        # A new exceedance, read from the broker, opens a new alert in the restarted database.
        publish_exceeding_scans(broker, 100, {"nox": 900.0})
        wait_for(lambda: alert_seen("nox"), 30, "the NOx alert through the API")
        nox = seen["nox"]
        assert nox["id"] != so2["id"] and nox["state"] == "open"
        api.login()  # a new login after the restart too

        # While the database is down the API says so; once it is back, it answers again.
        postgres.halt()
        down = api.get(f"/alerts/{so2['id']}")
        assert down.status_code == 503 and "state database" in down.json()["detail"], down.text
        postgres.resume()
        assert api.get(f"/alerts/{so2['id']}").status_code == 200
        assert serve.alive(), serve.output()
    finally:
        assert serve.terminate() == 0, serve.output()


def test_a_dead_letter_waits_while_postgresql_is_down_and_is_kept_after(
    tmp_path: Path, postgres: PostgreSQL
) -> None:
    """The state database down is an outage, like the store's: the batch with a dead letter is
    held (unacknowledged) and retried, never dropped."""
    letters = open_dead_letters(postgres.url, tmp_path / "unused.db")
    ingest = Ingest(load_registry(EXAMPLE_SITE), SqliteStore(tmp_path / "r.db"), letters, IngestMetrics(), [])
    result = ingest.decode_batch([Incoming(1, 1, f"eit/{FACTORY}/{DEVICE}/data", b"so2=41")], time.time_ns())
    assert [d.reason for d in result.dead] == ["not_json"]
    postgres.halt()
    stored = threading.Event()

    def store() -> None:
        ingest.store_batch(result)
        stored.set()

    writer = threading.Thread(target=store)
    writer.start()

    def retried() -> bool:
        value = ingest.metrics.registry.get_sample_value(
            "eit_store_errors_total", {"kind": "dead_letters_unavailable"}
        )
        return value is not None and value >= 1

    try:
        wait_for(retried, 15, "the ingest to find the state database down")
        assert not stored.is_set()
        outage = ingest.store_outage
        assert outage is not None and outage.what == "state database", outage
    finally:
        postgres.resume()
    assert stored.wait(30), "the batch was not stored after the database came back"
    writer.join()
    assert ingest.store_outage is None
    assert [(d.reason, d.payload) for d in letters.recent()] == [("not_json", "so2=41")]
    ingest.store.close()
    letters.close()
