"""Upgrade in place: the state database of release 0.1, made by that release's own code
(tests/data/state-0.1/, see tests/data/README.md), opened by this one. A demo-data folder's
SQLite file and a PostgreSQL database restored from pg_dump keep every row: alerts with their
audit trails and notification claims, the operator's response by alert id, the users (an old
password still logs in), their tokens, and the dead letters."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.model import ACKNOWLEDGED, CLOSED, OPEN
from alerts.state import AlertStore
from ingest.deadletters import DeadLetter, DeadLetterStore
from server.accounts import Accounts
from statedb import StateDb, open_state_db
from statedb.migrations import known_migrations
from statedb.tables import schema_version
from testbed.services import EIT, REPO, _postgres_bin

DATA = Path(__file__).parent / "data" / "state-0.1"
T0 = 1_795_752_000 * 1_000_000_000  # the time make.py made them at
KK = "kaeng-khoi-biomass"
NOW = T0 + 3600 * 1_000_000_000


def made(kind: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DATA / f"made-{kind}.json").read_text())
    return result


# A fixture that starts its service itself marks its param: conftest sees only requested fixtures.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def upgraded(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, StateDb]:
    if request.param == "sqlite":
        folder = tmp_path / "demo-data"
        folder.mkdir()
        shutil.copy(DATA / "state.db", folder / "state.db")
        db = open_state_db(None, folder / "state.db")
    else:
        url = request.getfixturevalue("postgres_url")
        restored = subprocess.run(
            [
                _postgres_bin("psql"),
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-f",
                str(DATA / "postgresql.sql"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert restored.returncode == 0, restored.stderr
        db = open_state_db(url, tmp_path / "unused.db")
    request.addfinalizer(db.close)
    return request.param, db


def test_the_migrations_run_on_the_old_database_and_are_recorded(upgraded: tuple[str, StateDb]) -> None:
    _, db = upgraded
    with db.read() as conn:
        versions = list(
            conn.execute(sa.select(schema_version.c.version).order_by(schema_version.c.version)).scalars()
        )
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("api_tokens")}
    assert versions == [m.version for m in known_migrations()]
    assert "api_tokens_expires" in indexes  # migration 2 changed the old tables


def test_every_alert_keeps_its_state_audit_trail_claims_and_responses(upgraded: tuple[str, StateDb]) -> None:
    kind, db = upgraded
    ids = made(kind)["alerts"]
    alerts = AlertStore(db)
    so2, dust, cod = (alerts.get(ids[name]) for name in ("so2", "dust", "cod"))
    assert so2 is not None and dust is not None and cod is not None
    assert (so2.state, so2.assignee, so2.acknowledged_by, so2.value, so2.limit, so2.unit) == (
        ACKNOWLEDGED, "olivia", "olivia", 75.0, 60.0, "ppm",
    )  # fmt: skip
    assert so2.params == {"parameter": "so2", "value": "75"} and so2.template == "exceedance"
    assert (dust.state, dust.severity, dust.provisional, dust.escalation_step, dust.period_start_ns) == (
        CLOSED, "critical", False, 1, T0,
    )  # fmt: skip
    assert (cod.state, cod.flaps, cod.resolved_ns) == (OPEN, 1, None)
    # Alerts became cases: the open and acknowledged ones are ongoing, the others ended.
    assert (so2.condition, cod.condition, dust.condition) == ("ongoing", "ongoing", "ended")
    assert so2.condition_since_ns == so2.opened_ns and dust.ended_ns == dust.resolved_ns
    assert alerts.exceedances(case_id=so2.id) == []  # release 0.1 kept no exceedance records
    for alert_id, trail in made(kind)["audit"].items():
        assert [[e.actor, e.action, e.detail] for e in alerts.audit(int(alert_id))] == trail
    assert alerts.notifications(so2.id) == [(0, "email", "duty@example.org"), (0, "webhook", "*")]
    assert alerts.notifications(dust.id) == [(1, "email", "supervisor@example.org")]
    [response] = alerts.responses(so2.id)
    assert (response.id, response.factory, response.actor, response.cause, response.corrective_action) == (
        made(kind)["response"], KK, "kk-op", "filter bag torn", "bags replaced, stack tested",
    )  # fmt: skip
    assert alerts.responses(dust.id) == []
    # The database still keeps one ongoing case per key, and numbers go on after the old ones
    # (PostgreSQL's sequence also spends one on the refused insert).
    assert alerts.open_alert(so2.key, "critical", "again", NOW) is None
    new = alerts.open_alert((KK, "boiler-1", "nox", "limit"), "critical", "nox", NOW)
    assert new is not None and new.id > max(ids.values())
    assert alerts.add_response(new.id, KK, "kk-op", "c", "a", NOW).id == made(kind)["response"] + 1


def test_old_users_log_in_with_their_passwords_and_keep_their_tokens(upgraded: tuple[str, StateDb]) -> None:
    kind, db = upgraded
    accounts = Accounts(db)
    for name, password in made(kind)["passwords"].items():
        user = accounts.authenticate(name, password)
        assert user is not None and user.name == name
    assert accounts.authenticate("olivia", "not-her-password") is None
    assert accounts.authenticate("gone", "gone-old-pass") is None  # disabled in 0.1
    operator = accounts.get_user("kk-op")
    assert operator is not None and (operator.role, operator.factory) == ("operator", KK)
    assert [u.name for u in accounts.list_users()] == ["gone", "kk-op", "olivia", "sam"]
    assert {u.officer for u in accounts.list_users()} == {None}  # 0007: linked to no registry officer yet
    assert accounts.set_officer("olivia", "duty-rayong").officer == "duty-rayong"
    tokens = made(kind)["tokens"]
    seen = accounts.user_for_token(tokens["olivia"], NOW)
    assert seen is not None and seen.name == "olivia" and seen.role == "officer"
    seen = accounts.user_for_token(tokens["kk-op"], NOW)
    assert seen is not None and seen.factory == KK
    assert accounts.user_for_token(tokens["olivia-expired"], NOW) is None
    assert accounts.revoke_token(tokens["olivia"]) and accounts.user_for_token(tokens["olivia"], NOW) is None


def test_dead_letters_survive_and_new_ones_join_them(upgraded: tuple[str, StateDb]) -> None:
    kind, db = upgraded
    letters = DeadLetterStore(db)
    old = [[d.id, d.reason, d.location] for d in letters.recent()]
    # Release 0.1 kept dead letters in SQLite only: PostgreSQL starts without any.
    assert old == made(kind).get("dead_letters", [])
    letters.add([DeadLetter(NOW, f"eit/{KK}/boiler-1/data", "not_json", "x", "", "x")])
    newest = letters.recent(1)[0]
    assert newest.id == 1 + max((d.id or 0 for d in letters.recent()[1:]), default=0)
    expected = {"not_json": 2, "bad_value": 1} if kind == "sqlite" else {"not_json": 1}
    assert letters.counts() == expected


def test_the_old_file_is_made_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    shutil.copy(DATA / "state.db", path)
    path.chmod(0o644)
    open_state_db(None, path).close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_commands_read_an_old_demo_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    data.mkdir()
    shutil.copy(DATA / "state.db", data / "state.db")
    config = tmp_path / "serve.yaml"
    config.write_text(f"site: {REPO / 'examples' / 'town' / 'site.yaml'}\ndata_dir: {data}\n")

    def eit(*args: str) -> str:
        out = subprocess.run(
            [*EIT, *args, "--config", str(config)], capture_output=True, text=True, cwd=REPO, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert [a["id"] for a in json.loads(eit("alerts", "--json"))] == [3, 2, 1]
    assert [d["reason"] for d in json.loads(eit("dead-letters", "--json"))] == ["bad_value", "not_json"]
    assert eit("users", "list").split() == [
        "gone", "officer", "(disabled)", "kk-op", "operator", "factory", KK,
        "olivia", "officer", "sam", "supervisor",
    ]  # fmt: skip


def test_the_api_serves_the_old_alerts_as_cases(tmp_path: Path) -> None:
    """A town whose state database is release 0.1's: the API lists its alerts as cases (their
    condition from their state), an old officer logs in with the old password, and the lifecycle
    goes on with the new rules (a reason to resolve; no close while ongoing)."""
    from testbed.town import TownApp, TownSpec, build_town

    town = build_town(tmp_path / "town", TownSpec(hours=1))
    shutil.copy(DATA / "state.db", town.config.state_path)  # the 0.1 file, upgraded when opened
    app = TownApp(town)
    try:
        [(name, password)] = [(n, p) for n, p in made("sqlite")["passwords"].items() if n == "olivia"]
        token = app.client.post("/api/v1/token", data={"username": name, "password": password}).json()
        officer = {"Authorization": f"Bearer {token['access_token']}"}
        cases = {c["id"]: c for c in app.client.get("/api/v1/alerts", headers=officer).json()}
        ids = made("sqlite")["alerts"]
        so2, dust = cases[ids["so2"]], cases[ids["dust"]]
        # The inbox's search and filters read the old alerts too (0007's indexes on old rows).
        searched = app.client.get(
            "/api/v1/alerts", params={"q": "so2", "state": "active", "condition": "ongoing"}, headers=officer
        )
        assert ids["so2"] in [c["id"] for c in searched.json()]
        assert int(searched.headers["x-total-count"]) == len(searched.json())
        assert (so2["state"], so2["condition"], so2["previous_id"]) == ("acknowledged", "ongoing", None)
        assert (dust["state"], dust["condition"]) == ("closed", "ended")
        assert app.client.get(f"/api/v1/alerts/{so2['id']}/exceedances", headers=officer).json() == []
        resolved = app.client.post(
            f"/api/v1/alerts/{so2['id']}/resolve", json={"reason": "stack test booked"}, headers=officer
        ).json()
        assert (resolved["state"], resolved["condition"], resolved["resolution"]) == (
            "resolved",
            "ongoing",
            "stack test booked",
        )
    finally:
        app.close()
