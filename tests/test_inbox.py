"""The officers' inbox: search, filters and keyset paging of cases, on SQLite and PostgreSQL; the
inbox API (its Link and X-Total-Count headers, days of the town, operators kept to their factory);
the officers an alert can be assigned to (accounts linked to the site registry's officers, duty
officers of the factory first), linked by `eit users` and the admin API."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from alerts.inbox import ACTIVE, InboxFilter
from alerts.model import ACKNOWLEDGED, CLOSED, ENDED, ONGOING, OPEN, RESOLVED, Alert
from alerts.state import AlertStore
from eit.confread import load_yaml
from eit.timeutil import NS_PER_S, now_ns, ns_to_datetime
from server.accounts import AccountError, Accounts
from statedb import open_state_db
from testbed.services import EIT, REPO
from testbed.town import EXAMPLE_DIR, TownApp, TownSpec, build_town, cheap_hashing

T0 = 1_795_752_000 * NS_PER_S  # 2026-11-27T04:00:00Z
MIN = 60 * NS_PER_S
FACTORIES = ("kaeng-khoi-biomass", "siam-cassava-starch", "eastern-petrochem")
PARAMETERS = ("so2", "nox", "pm", "cod", "pm25")
RULES = ("limit", "stale", "spike")


# A fixture that starts its service itself marks its param: conftest sees only requested fixtures.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def book(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    db = open_state_db(url, tmp_path / "state.db")
    yield AlertStore(db)
    db.close()


def fill(book: AlertStore, n: int) -> list[Alert]:
    """``n`` cases a minute apart over the town's factories, parameters and rules, in every state:
    each fifth open, then acknowledged, resolved while ongoing, resolved as the condition ended,
    closed."""
    made = []
    for i in range(n):
        key = (FACTORIES[i % 3], f"dev-{i % 4}", PARAMETERS[i % 5], f"{RULES[i % 3]}-{i}")
        severity = "critical" if i % 2 else "warning"
        at = T0 + i * MIN
        case = book.open_alert(key, severity, f"{PARAMETERS[i % 5]} above the limit, run {i}", at, 70.0, 60.0)
        assert case is not None
        match i % 5:
            case 1:
                case = book.acknowledge(case.id, "olivia", at + 1)
            case 2:
                case = book.resolve_id(case.id, "olivia", at + 1, "called the plant")
            case 3:
                ended = book.end_condition(key, at + 1, "below the limit")
                assert ended is not None
                case = ended
            case 4:
                book.end_condition(key, at + 1, "below the limit")
                case = book.close_alert(case.id, "sam", at + 2)
        made.append(case)
    return made


def walk(book: AlertStore, where: InboxFilter, limit: int) -> tuple[list[int], int]:
    """Every page of ``where``: the ids in the order shown, and how many pages it took."""
    ids: list[int] = []
    before = None
    pages = 0
    while True:
        found, before = book.page(where, limit, before)
        pages += 1
        ids += [a.id for a in found]
        if before is None:
            return ids, pages


def test_pages_show_every_selected_case_once_newest_first(book: AlertStore) -> None:
    made = fill(book, 60)
    everything, pages = walk(book, InboxFilter(), 7)
    assert everything == sorted((a.id for a in made), reverse=True) and pages == 9
    assert book.count(InboxFilter()) == 60
    for where, selected in (
        (InboxFilter(state=ACTIVE), lambda a: a.state in (OPEN, ACKNOWLEDGED)),
        (InboxFilter(state=RESOLVED), lambda a: a.state == RESOLVED),
        (InboxFilter(condition=ONGOING), lambda a: a.condition == ONGOING),
        (InboxFilter(state=RESOLVED, condition=ONGOING), lambda a: a.state == RESOLVED and a.ongoing),
        (
            InboxFilter(severity="critical", factory=FACTORIES[1]),
            lambda a: a.severity == "critical" and a.factory == FACTORIES[1],
        ),
        (InboxFilter(rule="limit-9"), lambda a: a.rule == "limit-9"),
        (
            InboxFilter(opened_from_ns=T0 + 10 * MIN, opened_to_ns=T0 + 20 * MIN),
            lambda a: T0 + 10 * MIN <= a.opened_ns < T0 + 20 * MIN,
        ),
    ):  # fmt: skip
        expected = sorted((a.id for a in made if selected(a)), reverse=True)
        assert expected, where
        assert walk(book, where, 4)[0] == expected, where
        assert book.count(where) == len(expected), where
    assert {a.state for a in made} == {OPEN, ACKNOWLEDGED, RESOLVED, CLOSED}
    assert {a.condition for a in made} == {ONGOING, ENDED}


def test_a_case_opened_while_paging_does_not_shift_the_later_pages(book: AlertStore) -> None:
    made = fill(book, 20)
    first, before = book.page(InboxFilter(), 8)
    assert before == first[-1].id
    newer = book.open_alert(("eastern-petrochem", "x", "so2", "limit"), "critical", "new", T0 + 99 * MIN)
    assert newer is not None
    second, before = book.page(InboxFilter(), 8, before)
    third, before = book.page(InboxFilter(), 8, before)
    assert before is None
    assert [a.id for a in first + second + third] == sorted((a.id for a in made), reverse=True)
    assert book.page(InboxFilter(), 8)[0][0].id == newer.id  # the first page, read again, has it


def test_search_needs_every_word_in_the_message_factory_device_or_parameter(book: AlertStore) -> None:
    made = fill(book, 30)

    def found(text: str, **named: tuple[str, ...]) -> list[int]:
        return walk(book, InboxFilter(text=text, text_factories=named or None), 10)[0]

    def ids(selected: Any) -> list[int]:
        return sorted((a.id for a in made if selected(a)), reverse=True)

    assert found("NOX") == ids(lambda a: a.parameter == "nox")
    assert found("cassava") == ids(lambda a: a.factory == "siam-cassava-starch")
    assert found("dev-3 run") == ids(lambda a: a.device == "dev-3")
    assert found("run SO2") == found("so2 run") == ids(lambda a: a.parameter == "so2")
    assert found("so2 nox") == []  # every word must match
    assert found(f"#{made[4].id}") == [made[4].id]
    # A word may name the factory (the caller looks names up in the site registry).
    assert found("แก่งคอย", **{"แก่งคอย": ("kaeng-khoi-biomass",)}) == ids(lambda a: a.factory == FACTORIES[0])
    # LIKE's wildcards are plain characters in a search.
    assert found("%") == [] and found("_") == [] and found("run_1") == []
    assert found("nothing-like-this") == []


def test_operator_responses_of_a_page_come_in_one_query(book: AlertStore) -> None:
    made = fill(book, 6)
    book.add_response(made[0].id, made[0].factory, "kk-op", "bag filter torn", "replaced", T0 + 10 * MIN)
    book.add_response(made[0].id, made[0].factory, "kk-op", "again", "second filter", T0 + 11 * MIN)
    found = book.responses_for([a.id for a in made])
    assert [r.cause for r in found[made[0].id]] == ["bag filter torn", "again"]
    assert all(found[a.id] == [] for a in made[1:])


# -- the API ------------------------------------------------------------------------------------------


def town_with_officers(site: Path) -> Path:
    """The example town with a second duty officer, for Ban Chang alone."""
    data = load_yaml(EXAMPLE_DIR / "site.yaml")
    data["officers"].append(
        {
            "id": "duty-banchang",
            "name": "Ban Chang duty officer",
            "email": "duty.banchang@example.org",
            "districts": ["Ban Chang"],
        }
    )
    site.write_text(yaml.safe_dump(data, allow_unicode=True))
    return site


@pytest.fixture(scope="module")
def town_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    workdir = tmp_path_factory.mktemp("inbox")
    site = town_with_officers(workdir / "site.yaml")
    app = TownApp(build_town(workdir / "town", TownSpec(hours=2), site=site))
    yield app
    app.close()


def new_cases(app: TownApp, n: int, rule: str, factory: str = "kaeng-khoi-biomass") -> list[int]:
    now = now_ns()
    ids = []
    for i in range(n):
        case = app.alerts.open_alert(
            (factory, "boiler-1", "so2", rule), "critical", f"so2 {rule} {i}", now + i
        )
        assert case is not None
        app.alerts.end_condition(case.key, now + i, "below the limit")
        ids.append(case.id)
    return sorted(ids, reverse=True)


def test_the_inbox_api_pages_with_a_link_and_counts_the_selection(town_app: TownApp) -> None:
    c, h = town_app.client, town_app.headers("olivia")
    made = new_cases(town_app, 23, "paged")
    r = c.get("/api/v1/alerts", params={"rule": "paged", "limit": 10, "lang": "th"}, headers=h)
    assert r.status_code == 200 and r.headers["x-total-count"] == "23"
    seen = [a["id"] for a in r.json()]
    assert isinstance(r.json(), list) and all(a["responses"] == [] for a in r.json())
    pages = 1
    while "link" in r.headers:
        target, rel = r.headers["link"].split(";")
        assert rel.strip() == 'rel="next"' and target.startswith("</api/v1/alerts?")
        r = c.get(target.strip()[1:-1], headers=h)
        assert r.status_code == 200 and r.headers["x-total-count"] == "23"
        assert all(a["text"] for a in r.json())
        seen += [a["id"] for a in r.json()]
        pages += 1
    assert seen == made and pages == 3
    assert "lang=th" in target and "rule=paged" in target  # the next page keeps the query


def test_the_inbox_api_searches_factory_names_in_either_language(town_app: TownApp) -> None:
    c, h = town_app.client, town_app.headers("olivia")
    mine = new_cases(town_app, 2, "named") + new_cases(town_app, 1, "named", "siam-cassava-starch")
    for q in ("แก่งคอย named", "Kaeng named", "kaeng-khoi named"):
        found = c.get("/api/v1/alerts", params={"q": q}, headers=h).json()
        assert [a["id"] for a in found] == mine[:2], q
    found = c.get("/api/v1/alerts", params={"q": "named"}, headers=h).json()
    assert sorted(a["id"] for a in found) == sorted(mine)
    # An operator searching for another factory still sees only its own.
    kk = c.get("/api/v1/alerts", params={"q": "cassava named"}, headers=town_app.headers("kk-op"))
    assert kk.status_code == 200 and kk.json() == [] and kk.headers["x-total-count"] == "0"
    mine_op = c.get("/api/v1/alerts", params={"q": "named"}, headers=town_app.headers("kk-op")).json()
    assert [a["id"] for a in mine_op] == mine[:2]


def test_the_inbox_api_takes_days_of_the_town_or_times(town_app: TownApp) -> None:
    c, h = town_app.client, town_app.headers("olivia")
    made = new_cases(town_app, 1, "dated")
    case = town_app.alerts.get(made[0])
    assert case is not None
    bangkok = ZoneInfo("Asia/Bangkok")
    day = datetime.fromtimestamp(case.opened_ns / NS_PER_S, bangkok).date()
    opened = ns_to_datetime(case.opened_ns).astimezone(bangkok)  # to the microsecond, never after it

    def ids(**params: str) -> list[int]:
        r = c.get("/api/v1/alerts", params={"rule": "dated", **params}, headers=h)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()]

    assert ids(opened_from=day.isoformat(), opened_to=day.isoformat()) == made  # that day included
    assert ids(opened_to=(day - timedelta(days=1)).isoformat()) == []  # the day before
    assert ids(opened_from=(day + timedelta(days=1)).isoformat()) == []
    assert ids(opened_from=opened.isoformat()) == made
    assert ids(opened_to=opened.isoformat()) == []  # opened before: not at
    for params, problem in (
        ({"opened_from": "27/11/2026"}, "query parameter 'opened_from': '27/11/2026' is neither a day"),
        ({"opened_from": "2026-02-30"}, "query parameter 'opened_from': '2026-02-30' is not a day"),
        ({"opened_to": "2026-11-27T04:00:00"}, "query parameter 'opened_to': give a time zone"),
        ({"opened_from": "1999-12-31"}, "query parameter 'opened_from': out of range"),
        ({"opened_to": "9999-12-31"}, "query parameter 'opened_to': out of range"),
        ({"opened_to": "2262-04-11T23:47:17Z"}, "query parameter 'opened_to': out of range"),
        ({"opened_from": "2026-11-28", "opened_to": "2026-11-27"}, "'opened_to': must be after opened_from"),
        ({"q": "x" * 201}, "query parameter 'q'"),
        ({"before_id": "0"}, "query parameter 'before_id'"),
        ({"condition": "maybe"}, "query parameter 'condition'"),
        ({"rule": "Not A Rule"}, "query parameter 'rule'"),
    ):
        r = c.get("/api/v1/alerts", params=params, headers=h)
        assert r.status_code == 422 and problem in r.json()["detail"], (params, r.text)


def test_the_officers_to_assign_to_are_the_factorys_duty_officers_first(town_app: TownApp) -> None:
    c, admin = town_app.client, town_app.headers("ada")
    for name, officer in (("olivia", "duty-rayong"), ("sam", "duty-banchang")):
        r = c.put(f"/api/v1/users/{name}/officer", json={"officer": officer}, headers=admin)
        assert r.status_code == 200 and r.json()["officer"] == officer, r.text
    h = town_app.headers("olivia")
    # Kaeng Khoi (Mueang Rayong): duty-rayong's account first; Ban Chang's officer is another's.
    people = {"olivia", "sam", "ada"}  # the town's officers (other tests add accounts of their own)
    kk = c.get("/api/v1/officers", params={"factory": "kaeng-khoi-biomass"}, headers=h).json()
    assert [(o["name"], o["officer"], o["on_duty"]) for o in kk if o["name"] in people] == [
        ("olivia", "duty-rayong", True),
        ("sam", "duty-banchang", False),
        ("ada", None, False),
    ]
    assert kk[0]["officer_name"] == "DIW Rayong duty officer"
    # Eastern Petrochemical (Ban Chang): both registry officers are on duty there.
    ep = c.get("/api/v1/officers", params={"factory": "eastern-petrochem"}, headers=h).json()
    assert [(o["name"], o["on_duty"]) for o in ep if o["name"] in people] == [
        ("olivia", True),
        ("sam", True),
        ("ada", False),
    ]
    assert [o["on_duty"] for o in ep][:2] == [True, True]  # nobody else is on duty there
    every = c.get("/api/v1/officers", headers=h).json()
    assert {o["name"]: o["on_duty"] for o in every if o["name"] in people} == dict.fromkeys(people)
    assert "kk-op" not in {o["name"] for o in every}  # operators are not assigned cases
    unknown = c.get("/api/v1/officers", params={"factory": "nowhere"}, headers=h)
    assert unknown.status_code == 422 and "no factory 'nowhere'" in unknown.json()["detail"]


def test_linking_an_account_to_a_registry_officer_is_checked(town_app: TownApp) -> None:
    c, admin = town_app.client, town_app.headers("ada")
    first, second = (f"sup-{uuid.uuid4().hex[:8]}" for _ in range(2))
    made = c.post(
        "/api/v1/users",
        json={
            "name": first,
            "role": "supervisor",
            "password": "long-enough-1",
            "officer": "supervisor-rayong",
        },
        headers=admin,
    )
    assert made.status_code == 201 and made.json()["officer"] == "supervisor-rayong"
    made = c.post(
        "/api/v1/users",
        json={"name": second, "role": "supervisor", "password": "long-enough-1"},
        headers=admin,
    )
    assert made.status_code == 201 and made.json()["officer"] is None

    def link(name: str, officer: str | None) -> Any:
        return c.put(f"/api/v1/users/{name}/officer", json={"officer": officer}, headers=admin)

    unknown = link(second, "nobody")
    known = "duty-rayong, supervisor-rayong, duty-banchang"
    assert unknown.status_code == 422
    assert f"no officer 'nobody' in the site registry (it has: {known})" in unknown.json()["detail"]
    operator = link("kk-op", "supervisor-rayong")
    assert operator.status_code == 409 and "operator account cannot be a registry officer" in operator.text
    taken = link(second, "supervisor-rayong")
    assert taken.status_code == 409
    assert f"registry officer 'supervisor-rayong' is the account '{first}' already" in taken.json()["detail"]
    unlinked = link(first, None)
    assert unlinked.status_code == 200 and unlinked.json()["officer"] is None
    moved = link(second, "supervisor-rayong")
    assert moved.status_code == 200 and moved.json()["officer"] == "supervisor-rayong"
    assert link(second, None).json()["officer"] is None  # free again for the other tests
    assert link("nobody-here", None).status_code == 404


def test_the_accounts_keep_one_account_per_registry_officer(tmp_path: Path) -> None:
    db = open_state_db(None, tmp_path / "state.db")
    accounts = cheap_hashing(Accounts(db))
    try:
        accounts.add_user("olivia", "officer", "olivia-pass-1", T0, officer="duty-rayong")
        with pytest.raises(AccountError, match="is the account 'olivia' already"):
            accounts.add_user("otto", "officer", "otto-pass-123", T0, officer="duty-rayong")
        with pytest.raises(AccountError, match="cannot be a registry officer"):
            accounts.add_user("op", "operator", "op-pass-1234", T0, "kaeng-khoi-biomass", "duty-rayong")
        assert accounts.get_user("otto") is None and accounts.get_user("op") is None
        assert accounts.account_of_officer("duty-rayong") == accounts.get_user("olivia")
        assert accounts.set_officer("olivia", None).officer is None
        assert accounts.account_of_officer("duty-rayong") is None
    finally:
        db.close()


def test_users_add_and_link_name_the_registry_officer(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {"site": str(REPO / "examples" / "town" / "site.yaml"), "data_dir": str(tmp_path / "data")}
        )
    )

    def eit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*EIT, "users", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            env={**os.environ, "PW": "long-enough-pass"},
        )

    added = eit("add", "--role", "officer", "--officer", "duty-rayong", "--password-env", "PW", "olivia")
    assert added.returncode == 0 and added.stdout == "olivia: officer, registry officer duty-rayong added\n"
    listed = eit("list")
    assert listed.stdout.split() == ["olivia", "officer", "registry", "officer", "duty-rayong"]
    assert eit("add", "--role", "supervisor", "--password-env", "PW", "sam").returncode == 0
    taken = eit("link", "--officer", "duty-rayong", "sam")
    assert (
        taken.returncode == 2
        and "registry officer 'duty-rayong' is the account 'olivia' already" in taken.stderr
    )
    assert eit("link", "--none", "olivia").stdout == "olivia: no registry officer\n"
    assert eit("link", "--officer", "duty-rayong", "sam").stdout == "sam: registry officer duty-rayong\n"
    for args, problem in (
        (["link", "--officer", "nobody", "sam"], "--officer: no officer 'nobody' in"),
        (["link", "--officer", "duty-rayong", "nobody-here"], "no user 'nobody-here'"),
        (["add", "--role", "operator", "--factory", "kaeng-khoi-biomass", "--officer", "supervisor-rayong",
          "--password-env", "PW", "op"], "cannot be a registry officer"),
    ):  # fmt: skip
        out = eit(*args)
        assert out.returncode == 2 and problem in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_the_inbox_bench_times_the_consoles_requests_on_both_databases(
    postgres_server: str, tmp_path: Path
) -> None:
    import json

    from bench.inbox import main

    out = tmp_path / "inbox.json"
    assert (
        main(["--cases", "600", "--requests", "3", "--postgres-url", postgres_server, "--json", str(out)])
        == 0
    )
    runs = json.loads(out.read_text())["runs"]
    assert [r["kind"] for r in runs] == ["sqlite", "postgresql"]
    for run in runs:
        q = run["queries"]
        assert list(q) == ["first page", "filter", "date range", "search", "search, no match", "later page"]
        assert q["later page"]["total"] == 600 and q["later page"]["rows"] == 25
        assert q["search, no match"]["total"] == 0 and 0 < q["first page"]["total"] < 600
        assert all(0 < r["median_ms"] <= r["p95_ms"] <= r["max_ms"] for r in q.values())
    assert (
        runs[0]["queries"]["first page"]["total"] == runs[1]["queries"]["first page"]["total"]
    )  # one data set
