"""Upgrade in place: the state database of the release before the duties (tests/data/state-0.2/,
made by that release's own code, see tests/data/README.md), opened by this one. The duties'
migration runs once, every case keeps its state, audit trail and operator response, the account
still logs in, and the new tables take notices, lab checks and integrity findings."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from alerts.duties.model import MALFUNCTION, WPMS
from alerts.duties.rules import load_duty_rules
from alerts.duties.store import DutyStore
from alerts.model import ACKNOWLEDGED, OPEN
from alerts.state import AlertStore
from server.accounts import Accounts
from statedb import StateDb, open_state_db
from statedb.migrations import known_migrations
from statedb.tables import schema_version
from testbed.services import _postgres_bin

DATA = Path(__file__).parent / "data" / "state-0.2"
T0 = 1_795_752_000 * 1_000_000_000


# A fixture that starts its service itself marks its param: conftest sees only requested fixtures.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def old(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None, Path]:
    """The previous release's database: (kind, PostgreSQL URL or None, SQLite path)."""
    if request.param == "sqlite":
        shutil.copy(DATA / "state.db", tmp_path / "state.db")
        return "sqlite", None, tmp_path / "state.db"
    url = request.getfixturevalue("postgres_url")
    restored = subprocess.run(
        [_postgres_bin("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(DATA / "postgresql.sql")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert restored.returncode == 0, restored.stderr
    return "postgresql", url, tmp_path / "unused.db"


def test_the_duties_migration_upgrades_the_previous_release_and_keeps_every_case(
    old: tuple[str, str | None, Path],
) -> None:
    kind, url, path = old
    made = json.loads((DATA / f"made-{kind}.json").read_text())
    assert made["versions"] == [1, 2, 3, 4, 5, 6, 7]  # the file is the old release's
    db: StateDb = open_state_db(url, path)
    try:
        with db.read() as conn:
            versions = list(
                conn.execute(sa.select(schema_version.c.version).order_by(schema_version.c.version)).scalars()
            )
            tables = set(sa.inspect(conn).get_table_names())
        assert versions == [m.version for m in known_migrations()] and 9 in versions
        assert {
            "duty_notices",
            "lab_checks",
            "stack_tests",
            "duty_attachments",
            "integrity_findings",
            "duty_audit",
        } <= tables

        alerts = AlertStore(db)
        so2, stale = alerts.get(made["so2_case"]), alerts.get(made["stale_case"])
        assert so2 is not None and stale is not None
        assert (so2.state, so2.acknowledged_by, so2.value) == (ACKNOWLEDGED, "olivia", 72.0)
        assert stale.state == OPEN and stale.rule == "stale"
        assert [e.action for e in alerts.audit(so2.id)] == ["opened", "acknowledged", "note"]
        assert [r.cause for r in alerts.responses(so2.id)] == ["soot blowing"]
        assert Accounts(db).authenticate("olivia", "olivia-pass-2026") is not None

        duties = DutyStore(db, load_duty_rules(), ZoneInfo("Asia/Bangkok"))
        n = duties.file_notice(
            WPMS, MALFUNCTION, "siam-cassava-starch", "outfall-1", T0, None, "probe", "sc-op", T0
        )
        assert duties.notice(n.id).report_due_ns == n.report_due_ns is not None
        finding = {
            "id": "0123456789abcdef",
            "factory": "f",
            "device": "d",
            "kind": "replay",
            "month": "2026-11",
            "score": 2.0,
        }
        assert duties.record_findings([finding], T0) == 1
        assert duties.dispose("0123456789abcdef", "confirmed", "olivia", T0 + 1).disposition == "confirmed"
    finally:
        db.close()
    # Opened again: nothing more to migrate.
    again = open_state_db(url, path)
    try:
        with again.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar_one() == len(
                known_migrations()
            )
    finally:
        again.close()
