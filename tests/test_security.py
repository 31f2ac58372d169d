"""Attacks on the platform, each run as an attacker would and refused (SECURITY.md):

- logins: guessing from one address, one guess against many names, a spread attack on one
  account (the owner still gets in from an address of their own), memory under made-up names;
- weak passwords through the API and `eit users`;
- request bodies: too large, or anonymous JSON that must not be read before the 401;
- framing and scripts: every answer forbids being framed, `/docs` and the HTML report included;
- operators answering a closed alert;
- `eit import` of hostile rows: the valid rows are imported, each bad one reported by line;
- spreadsheets: CSV cells that would run as formulas;
- files: the agent's outbox and the embedded store, with their -wal and -shm, owner-only;
- a private factory never named to the public.

The flood against a real `eit serve` is in test_security_flood.py; the redirect after logging in
runs in Chromium in test_browser.py; the broker's session takeover in test_broker_security.py.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from alerts.importer import import_csv
from eit.timeutil import now_ns
from server.api.loginguard import Attempt, LoginGuard, LoginLimits, Refusal
from server.passwords import generate_password, password_problem
from testbed.services import EIT
from testbed.town import EXAMPLE_STORY, TownApp, build_town, password_of

FACTORY = "kaeng-khoi-biomass"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(guard: LoginGuard, account: str, address: str) -> Attempt | Refusal:
    """An attempt whose password is wrong (admitted attempts count as failures until they
    succeed)."""
    return guard.admit(account, address)


# -- logins -------------------------------------------------------------------------------------


def test_one_guess_each_against_many_names_is_throttled_per_address() -> None:
    clock = Clock()
    guard = LoginGuard(LoginLimits(per_address=20, window_s=300), clock)
    answers = [fail(guard, f"name-{i}", "203.0.113.9") for i in range(25)]
    assert all(isinstance(a, Attempt) for a in answers[:20])
    refused = answers[20:]
    assert all(isinstance(a, Refusal) and a.reason == "address" for a in refused)
    assert isinstance(refused[0], Refusal) and refused[0].retry_after_s == 15  # 300 s / 20
    clock.now += 15
    assert isinstance(fail(guard, "name-25", "203.0.113.9"), Attempt)  # refilled, one at a time
    assert isinstance(fail(guard, "name-26", "203.0.113.9"), Refusal)


def test_failed_logins_from_one_address_do_not_lock_the_owner_out() -> None:
    clock = Clock()
    guard = LoginGuard(LoginLimits(per_account_address=5, window_s=300), clock)
    for _ in range(5):
        assert isinstance(fail(guard, "olivia", "203.0.113.9"), Attempt)
    refused = fail(guard, "olivia", "203.0.113.9")
    assert isinstance(refused, Refusal) and refused.reason == "account" and refused.retry_after_s == 300
    # The owner, elsewhere, logs in at once; the attacker's other names are not its business.
    owner = guard.admit("olivia", "198.51.100.7")
    assert isinstance(owner, Attempt)
    guard.succeeded(owner)
    clock.now += 301
    assert isinstance(fail(guard, "olivia", "203.0.113.9"), Attempt)


def test_an_attack_spread_over_many_addresses_gets_one_guess_each_and_the_owner_gets_in() -> None:
    clock = Clock()
    guard = LoginGuard(LoginLimits(per_account=50, per_account_address=5, window_s=300), clock)
    bots = [f"203.0.113.{i}" for i in range(1, 61)]
    for bot in bots:
        assert isinstance(fail(guard, "olivia", bot), Attempt)
    # The account has had 50 failures within the window: a bot that failed on it waits...
    again = [fail(guard, "olivia", bot) for bot in bots]
    assert all(isinstance(a, Refusal) and a.reason == "account" for a in again)
    # ...while the owner, from an address of their own, is let in, and their success counts.
    owner = guard.admit("olivia", "198.51.100.7")
    assert isinstance(owner, Attempt)
    guard.succeeded(owner)
    assert isinstance(guard.admit("olivia", "198.51.100.7"), Attempt)


def test_a_successful_login_gives_its_attempt_back() -> None:
    guard = LoginGuard(LoginLimits(per_address=3, window_s=300), Clock())
    for _ in range(10):  # ten good logins from one office address: never throttled
        attempt = guard.admit("olivia", "192.0.2.10")
        assert isinstance(attempt, Attempt)
        guard.succeeded(attempt)


def test_the_guard_remembers_a_bounded_number_of_addresses_and_names() -> None:
    guard = LoginGuard(LoginLimits(max_entries=1000), Clock())
    for i in range(20_000):
        guard.admit(f"ghost-{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert guard.remembered() <= 3 * 1000


@pytest.fixture(scope="module")
def town_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    app = TownApp(build_town(tmp_path_factory.mktemp("security")))
    yield app
    app.close()


def test_the_api_answers_429_with_retry_after_and_counts_it(town_app: TownApp) -> None:
    c = town_app.client
    name = f"u-{uuid.uuid4().hex[:8]}"
    codes = [c.post("/api/v1/token", data={"username": name, "password": "nope-nope-1"}) for _ in range(6)]
    assert [r.status_code for r in codes] == [401] * 5 + [429]
    assert int(codes[-1].headers["retry-after"]) > 0
    assert "try again in" in codes[-1].json()["detail"]
    refused = town_app.metrics.get_sample_value("eit_http_logins_refused_total", {"reason": "account"})
    assert refused is not None and refused >= 1


# -- passwords ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "role", "problem"),
    [
        ("password", "operator", "too easy to guess"),
        ("password1234", "admin", "too easy to guess"),
        ("qwertyuiop12", "officer", "too easy to guess"),
        ("Tr0ub4dor&3", "officer", "too short: at least 12"),
        ("kk-operator", "operator", "too easy to guess"),
    ],
)
def test_weak_passwords_are_refused(password: str, role: str, problem: str) -> None:
    found = password_problem(password, role=role, user="kk-op")
    assert found is not None and problem in found


def test_strong_passwords_pass_and_generated_ones_always_do() -> None:
    assert password_problem("correct horse battery staple", role="admin") is None
    for _ in range(20):
        assert password_problem(generate_password(), role="admin") is None


def test_a_weak_admin_password_is_refused_through_the_api(town_app: TownApp) -> None:
    r = town_app.client.post(
        "/api/v1/users",
        json={"name": f"u-{uuid.uuid4().hex[:8]}", "role": "admin", "password": "password"},
        headers=town_app.headers("ada"),
    )
    assert r.status_code == 422 and "too short: at least 12" in r.json()["detail"]
    r = town_app.client.post(
        "/api/v1/users",
        json={"name": f"u-{uuid.uuid4().hex[:8]}", "role": "admin", "password": "password12345678"},
        headers=town_app.headers("ada"),
    )
    assert r.status_code == 422 and "too easy to guess" in r.json()["detail"]


def test_a_weak_password_is_refused_by_eit_users(town_app: TownApp) -> None:
    config = str(town_app.town.config_path)
    env = {**os.environ, "WEAK": "password"}
    out = subprocess.run(
        [*EIT, "users", "add", "--config", config, "--role", "officer", "--password-env", "WEAK", "weak-one"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2 and "too short: at least 12" in out.stderr, out.stderr
    env["WEAK"] = "password12345"  # long enough, and a common password
    out = subprocess.run(
        [*EIT, "users", "passwd", "--config", config, "--password-env", "WEAK", "olivia"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2 and "too easy to guess" in out.stderr, out.stderr


# -- request bodies -----------------------------------------------------------------------------


def test_a_large_body_is_refused_before_it_is_read(town_app: TownApp) -> None:
    big = b'{"text": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = town_app.client.post(
        "/api/v1/alerts/1/comments",
        content=big,
        headers={**town_app.headers("olivia"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    # Sent in chunks, without a Content-Length: refused as it grows past the limit.
    r = town_app.client.post(
        "/api/v1/alerts/1/comments",
        content=(big[i : i + 65536] for i in range(0, len(big), 65536)),
        headers={**town_app.headers("olivia"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_an_anonymous_write_is_refused_before_its_json_is_read(town_app: TownApp) -> None:
    # Not even JSON: had the server read it, it would have answered 422.
    for headers in ({}, {"Authorization": "Bearer eit_not-a-token"}):
        r = town_app.client.post(
            "/api/v1/alerts/1/comments",
            content=b'{"text": ' + b"[" * 100_000,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
    refused = town_app.metrics.get_sample_value(
        "eit_http_requests_refused_total", {"reason": "unauthenticated"}
    )
    assert refused is not None and refused >= 2


# -- framing and scripts ------------------------------------------------------------------------


def test_every_answer_forbids_framing_the_docs_and_the_report_included(town_app: TownApp) -> None:
    c = town_app.client
    answers = {
        "/docs": c.get("/docs"),
        "/docs/oauth2-redirect": c.get("/docs/oauth2-redirect"),
        "/login": c.get("/login"),
        "/api/v1/town": c.get("/api/v1/town"),
        "report": c.get(
            "/api/v1/reports/compliance",
            params={"format": "html", "factory": FACTORY},
            headers=town_app.headers("olivia"),
        ),
        "404": c.get("/api/v1/nothing-here"),
    }
    for what, r in answers.items():
        assert r.headers.get("x-frame-options") == "DENY", what
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp, what
        assert "'unsafe-inline'" not in csp.split("script-src")[-1].split(";")[0], what
        assert r.headers.get("x-content-type-options") == "nosniff", what
    assert answers["report"].status_code == 200 and "text/html" in answers["report"].headers["content-type"]
    assert "script-src" not in answers["report"].headers["content-security-policy"]  # default-src 'none'
    docs = answers["/docs"].text
    assert "<script>" not in docs and '<script src="/static/docs.js">' in docs


# -- closed alerts ------------------------------------------------------------------------------


def test_a_closed_alert_takes_no_more_operator_answers(town_app: TownApp) -> None:
    now = now_ns()
    alert = town_app.alerts.open_alert(
        (FACTORY, "boiler-1", "so2", f"test-{uuid.uuid4().hex[:8]}"), "critical", "a test alert", now
    )
    assert alert is not None
    town_app.alerts.end_condition(alert.key, now, "below the limit")
    town_app.alerts.close_alert(alert.id, "sam", now + 1, "done")
    r = town_app.client.post(
        f"/api/v1/alerts/{alert.id}/response",
        json={"cause": "a late cause", "corrective_action": "a late action"},
        headers=town_app.headers("kk-op"),
    )
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    assert town_app.alerts.responses(alert.id) == []


# -- eit import ---------------------------------------------------------------------------------


def test_import_reports_each_hostile_row_by_line_and_imports_the_valid_ones(tmp_path: Path) -> None:
    from eit.registry import load_registry
    from ingest.store.sqlite import SqliteStore
    from testbed.services import REPO

    registry = load_registry(REPO / "examples" / "town" / "site.yaml")
    ok = "kaeng-khoi-biomass,boiler-1,so2"
    rows = [
        "time,factory,device,channel,value,flag",
        f"2026-11-01T00:00:00Z,{ok},40,",  # line 2: valid
        "2026-11-01T00:01:00Z,kaeng-khoi-biomass",  # 3: short
        f"2026-11-01T00:02:00Z,{ok},{'9' * (130 * 1024)},",  # 4: a field over 128 KB
        f"0001-01-01T00:00:00Z,{ok},40,",  # 5: year 1
        f"9999-12-31T00:00:00Z,{ok},40,",  # 6: year 9999
        f"1e15,{ok},40,",  # 7: epoch 1e15
        f"-5,{ok},40,",  # 8: negative
        f"2099-01-01T00:00:00Z,{ok},40,",  # 9: far future
        f"2026-11-01T00:03:00Z,{ok},40,,extra",  # 10: too many fields
        f"2026-11-01T00:04:00Z,{ok},41,",  # 11: valid
    ]
    path = tmp_path / "hostile.csv"
    path.write_text("\n".join(rows) + "\n")
    store = SqliteStore(tmp_path / "readings.db")
    try:
        result = import_csv(path, registry, store)
        assert result.imported == 2
        assert [r.value for r in store.readings(FACTORY, "boiler-1", "so2", 0, 2**62)] == [40.0, 41.0]
    finally:
        store.close()
    by_line = {int(e.split(": line ")[1].split(":")[0]): e for e in result.errors}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "2 fields, the header has 6" in by_line[3]
    assert "field larger than field limit" in by_line[4]
    assert "before 2000-01-01" in by_line[5] and "before 2000-01-01" in by_line[8]
    assert "after 2262" in by_line[6]
    assert "not a time this platform keeps" in by_line[7]
    assert "ahead of the server clock" in by_line[9]
    assert result.rejected == {
        "short_row": 1,
        "long_row": 1,
        "bad_csv": 1,
        "time_out_of_range": 4,
        "future_timestamp": 1,
    }


# -- spreadsheets -------------------------------------------------------------------------------


def test_the_compliance_csv_neutralises_cells_that_would_run_as_formulas() -> None:
    from alerts.report import to_csv

    report = {
        "period_start": "2026-11-01",
        "period_end": "2026-11-01",
        "factories": [
            {
                "id": '=HYPERLINK("http://evil.example")',
                "channels": [
                    {
                        "device": "+cmd",
                        "channel": "@sum",
                        "unit": "-mg",
                        "valid_hours": 24,
                        "expected_hours": 24,
                        "completeness": -0.5,
                        "exceedances": [],
                        "invalid_hours": [],
                    }
                ],
            }
        ],
    }
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert rows, "a summary row"
    for row in rows:
        for key, cell in row.items():
            if key == "completeness":
                assert cell == "-0.5"  # numbers stay numbers
            else:
                assert not cell.startswith(("=", "+", "-", "@")), (key, cell)


# -- files --------------------------------------------------------------------------------------


def test_the_outbox_and_the_embedded_store_are_owner_only_with_their_wal_and_shm(tmp_path: Path) -> None:
    from edge.outbox import Outbox
    from eit.model import Reading
    from ingest.store.sqlite import SqliteStore

    old = os.umask(0o022)  # a usual umask: files readable by everyone unless made otherwise
    try:
        store = SqliteStore(tmp_path / "readings.db")
        store.write([Reading(FACTORY, "boiler-1", "so2", now_ns(), 40.0, "N")])
        outbox = Outbox(tmp_path / "outbox.db")
        try:
            files = sorted(tmp_path.glob("*.db*"))
            names = {f.name for f in files}
            assert {"readings.db-wal", "outbox.db"} <= names, names
            for f in files:
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        finally:
            outbox.close()
            store.close()
    finally:
        os.umask(old)


def test_time_zones_come_with_the_package() -> None:
    import importlib.util
    from zoneinfo import ZoneInfo

    # A dependency: zoneinfo finds the zones in it where the system has none.
    assert importlib.util.find_spec("tzdata") is not None

    assert ZoneInfo("Asia/Bangkok").key == "Asia/Bangkok"


# -- private factories --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    workdir = tmp_path_factory.mktemp("private")
    app = TownApp(build_town(workdir, replace(EXAMPLE_STORY, private=("eastern-petrochem",))))
    yield app
    app.close()


def test_a_private_factory_is_never_named_to_the_public(private_town: TownApp) -> None:
    c = private_town.client
    for path in (
        "/api/v1/town",
        "/api/v1/factories",
        "/api/v1/latest",
        "/api/v1/aqi",
        "/healthz",
        "/metrics",
    ):
        r = c.get(path)
        assert "eastern-petrochem" not in r.text, path
        assert "Eastern Petrochem" not in r.text, path
    # An officer sees it.
    assert "eastern-petrochem" in c.get("/api/v1/factories", headers=private_town.headers("olivia")).text


def test_passwords_of_the_test_town_pass_the_rules() -> None:
    assert password_problem(password_of("olivia"), role="officer", user="olivia") is None


# -- the site registry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        # A repeated key would publish a hidden factory if the last one silently won.
        (("    district: Mueang Rayong\n", "    public: false\n    public: true\n"), "given twice"),
        (("  timezone: Asia/Bangkok\n", "  timezone: Mars/Olympus\n"), "not an IANA time zone"),
        (("range: [0, 500]", "range: [.nan, 500]"), "not a finite number"),
        (("range: [0, 500]", "range: [0, " + "9" * 5000 + "]"), "a number of 5000 digits"),
        (("district: Mueang Rayong", "district: " + "[" * 5000 + "]" * 5000), "nesting depth"),
    ],
)
def test_a_hostile_registry_is_refused_with_file_key_and_line(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    import shutil

    from eit.errors import ConfigError
    from eit.registry import load_registry
    from testbed.services import REPO

    town = tmp_path / "town"
    shutil.copytree(REPO / "examples" / "town", town)
    site = town / "site.yaml"
    text = site.read_text()
    assert change[0] in text
    site.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError) as caught:
        load_registry(site)
    said = str(caught.value)
    assert problem in said and f"{site}:" in said, said
