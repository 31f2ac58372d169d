"""Who may use each endpoint of the HTTP API, and who may not.

Every operation of the OpenAPI document is in ACCESS (a test fails when one is missing), with the
status each kind of caller gets: the public (no token), the factory's own operator, another
factory's operator, an officer, a supervisor and an admin. Each call that should succeed is made
on data of its own (a fresh alert in the right state), so it proves the caller may do it, and each
refusal is checked on the same request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from eit.timeutil import now_ns
from testbed.town import EXAMPLE_STORY, USERS, TownApp, build_town, password_of

FACTORY = "kaeng-khoi-biomass"  # kk-op's factory; sc-op operates another one
CHANNEL = f"/api/v1/factories/{FACTORY}/devices/boiler-1/channels/so2"
CALLERS = ("public", "kk-op", "sc-op", "olivia", "sam", "ada")
ROLE_OF = {"public": "public", **{n: r for n, (r, _) in USERS.items()}}


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    content: bytes | None = None


@pytest.fixture(scope="module")
def town_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    town = build_town(tmp_path_factory.mktemp("access"))
    app = TownApp(town)
    yield app
    app.close()


def fresh_alert(app: TownApp, state: str = "open", factory: str = FACTORY) -> int:
    now = now_ns()
    alert = app.alerts.open_alert(
        (factory, "boiler-1" if factory == FACTORY else "outfall-1", "so2", f"test-{uuid.uuid4().hex[:8]}"),
        "critical",
        "a test alert",
        now,
    )
    assert alert is not None
    if state == "resolved":  # the rules saw its condition end: resolved, and ready to close
        app.alerts.end_condition(alert.key, now, "below the limit")
    return alert.id


def fresh_user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def fresh_officer_account(app: TownApp) -> str:
    name = fresh_user()
    app.accounts.add_user(name, "officer", password_of("olivia"), now_ns())
    return name


def new_token(app: TownApp, who: str) -> str:
    r = app.client.post("/api/v1/token", data={"username": who, "password": password_of(who)})
    assert r.status_code == 200
    return str(r.json()["access_token"])


# (method, path template) -> (make the call, {caller: expected status})
Maker = Callable[[TownApp, str], Call]
OK_ALL = dict.fromkeys(CALLERS, 200)
PUBLISHED = {"public": 200, "kk-op": 200, "sc-op": 403, "olivia": 200, "sam": 200, "ada": 200}
OWN_FACTORY = {"public": 401, "kk-op": 200, "sc-op": 403, "olivia": 200, "sam": 200, "ada": 200}
LOGGED_IN = {"public": 401, "kk-op": 200, "sc-op": 200, "olivia": 200, "sam": 200, "ada": 200}
OFFICERS = {"public": 401, "kk-op": 403, "sc-op": 403, "olivia": 200, "sam": 200, "ada": 200}
SUPERVISORS = {"public": 401, "kk-op": 403, "sc-op": 403, "olivia": 403, "sam": 200, "ada": 200}
ADMINS = {"public": 401, "kk-op": 403, "sc-op": 403, "olivia": 403, "sam": 403, "ada": 200}

ACCESS: dict[tuple[str, str], tuple[Maker, dict[str, int]]] = {
    ("GET", "/healthz"): (lambda a, w: Call("GET", "/healthz"), OK_ALL),
    # Readiness for officers; metrics with the metrics token (tests/test_health.py) or from this
    # machine. The test client calls from elsewhere ("testclient").
    ("GET", "/readyz"): (lambda a, w: Call("GET", "/readyz"), OFFICERS),
    ("GET", "/metrics"): (
        lambda a, w: Call("GET", "/metrics"),
        {"public": 401, **{n: 403 for n in USERS}},
    ),
    ("GET", "/api/v1/town"): (lambda a, w: Call("GET", "/api/v1/town"), OK_ALL),
    ("GET", "/api/v1/factories"): (lambda a, w: Call("GET", "/api/v1/factories"), OK_ALL),
    ("GET", "/api/v1/aqi"): (lambda a, w: Call("GET", "/api/v1/aqi"), OK_ALL),
    ("GET", "/api/v1/factories/{factory}"): (
        lambda a, w: Call("GET", f"/api/v1/factories/{FACTORY}"),
        PUBLISHED,
    ),
    ("GET", "/api/v1/factories/{factory}/verification"): (
        lambda a, w: Call("GET", f"/api/v1/factories/{FACTORY}/verification"),
        PUBLISHED,
    ),
    ("GET", "/api/v1/latest"): (
        lambda a, w: Call("GET", "/api/v1/latest", params={"factory": FACTORY}),
        PUBLISHED,
    ),
    ("GET", "/api/v1/factories/{factory}/devices/{device}/channels/{channel}/hourly"): (
        lambda a, w: Call("GET", f"{CHANNEL}/hourly"),
        PUBLISHED,
    ),
    ("GET", "/api/v1/factories/{factory}/devices/{device}/channels/{channel}/rolling"): (
        lambda a, w: Call("GET", f"{CHANNEL}/rolling", params={"window": "8h"}),
        PUBLISHED,
    ),
    # The running hour (provisional) and the chart's view as a file: published, like the chart.
    ("GET", "/api/v1/factories/{factory}/devices/{device}/channels/{channel}/running"): (
        lambda a, w: Call("GET", f"{CHANNEL}/running"),
        PUBLISHED,
    ),
    ("GET", "/api/v1/factories/{factory}/devices/{device}/channels/{channel}/export"): (
        lambda a, w: Call("GET", f"{CHANNEL}/export", params={"format": "csv"}),
        PUBLISHED,
    ),
    ("GET", "/api/v1/factories/{factory}/devices/{device}/channels/{channel}/readings"): (
        lambda a, w: Call("GET", f"{CHANNEL}/readings", params={"every": 600}),
        OWN_FACTORY,
    ),
    ("GET", "/api/v1/alerts"): (
        lambda a, w: Call("GET", "/api/v1/alerts", params={"factory": FACTORY}),
        OWN_FACTORY,
    ),
    ("GET", "/api/v1/alerts/{alert_id}"): (
        lambda a, w: Call("GET", f"/api/v1/alerts/{fresh_alert(a)}"),
        OWN_FACTORY,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): (
        lambda a, w: Call("POST", f"/api/v1/alerts/{fresh_alert(a)}/acknowledge", json={"note": "seen"}),
        OFFICERS,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/assign"): (
        lambda a, w: Call("POST", f"/api/v1/alerts/{fresh_alert(a)}/assign", json={"assignee": "olivia"}),
        OFFICERS,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/comments"): (
        lambda a, w: Call(
            "POST", f"/api/v1/alerts/{fresh_alert(a)}/comments", json={"text": "on site at 10:00"}
        ),
        OFFICERS,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): (
        lambda a, w: Call("POST", f"/api/v1/alerts/{fresh_alert(a)}/resolve", json={"reason": "fixed"}),
        OFFICERS,
    ),
    ("GET", "/api/v1/alerts/{alert_id}/exceedances"): (
        lambda a, w: Call("GET", f"/api/v1/alerts/{fresh_alert(a)}/exceedances"),
        OWN_FACTORY,
    ),
    ("GET", "/api/v1/exceedances"): (
        lambda a, w: Call("GET", "/api/v1/exceedances", params={"factory": FACTORY}),
        OWN_FACTORY,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/close"): (
        lambda a, w: Call(
            "POST", f"/api/v1/alerts/{fresh_alert(a, 'resolved')}/close", json={"note": "done"}
        ),
        SUPERVISORS,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/response"): (
        lambda a, w: Call(
            "POST",
            f"/api/v1/alerts/{fresh_alert(a)}/response",
            json={"cause": "bag filter torn", "corrective_action": "filter replaced"},
        ),
        {"public": 401, "kk-op": 201, "sc-op": 403, "olivia": 403, "sam": 403, "ada": 403},
    ),
    ("GET", "/api/v1/alerts/{alert_id}/notifications"): (
        lambda a, w: Call("GET", f"/api/v1/alerts/{fresh_alert(a)}/notifications"),
        OFFICERS,
    ),
    ("GET", "/api/v1/notifications"): (lambda a, w: Call("GET", "/api/v1/notifications"), OFFICERS),
    ("GET", "/api/v1/officers"): (lambda a, w: Call("GET", "/api/v1/officers"), OFFICERS),
    ("POST", "/api/v1/token"): (
        lambda a, w: Call(
            "POST",
            "/api/v1/token",
            data={
                "username": "olivia" if w == "public" else w,
                "password": password_of("olivia" if w == "public" else w),
            },
        ),
        OK_ALL,
    ),
    ("POST", "/api/v1/logout"): (
        lambda a, w: Call("POST", "/api/v1/logout"),
        {"public": 401, **{n: 204 for n in USERS}},
    ),
    ("GET", "/api/v1/me"): (lambda a, w: Call("GET", "/api/v1/me"), LOGGED_IN),
    ("GET", "/api/v1/users"): (lambda a, w: Call("GET", "/api/v1/users"), ADMINS),
    ("POST", "/api/v1/users"): (
        lambda a, w: Call(
            "POST",
            "/api/v1/users",
            json={"name": fresh_user(), "role": "officer", "password": "long-enough-1"},
        ),
        {**ADMINS, "ada": 201},
    ),
    # Linking an account to a registry officer (here: unlinking a fresh account: a valid change
    # that leaves the registry's officers free for the other tests).
    ("PUT", "/api/v1/users/{name}/officer"): (
        lambda a, w: Call("PUT", f"/api/v1/users/{fresh_officer_account(a)}/officer", json={"officer": None}),
        ADMINS,
    ),
    ("POST", "/api/v1/users/{name}/{action}"): (
        lambda a, w: Call("POST", "/api/v1/users/sc-op/enable"),
        ADMINS,
    ),
    ("GET", "/api/v1/dead-letters"): (lambda a, w: Call("GET", "/api/v1/dead-letters"), OFFICERS),
    ("GET", "/api/v1/reports/compliance"): (
        lambda a, w: Call("GET", "/api/v1/reports/compliance", params={"factory": FACTORY}),
        OWN_FACTORY,
    ),
}


# -- duties of WPMS and CEMS monitors, and the officers' integrity findings ---------------------------
STARCH = "siam-cassava-starch"  # sc-op's factory, a WPMS one
PDF = b"%PDF-1.4\n%%EOF\n"
FILERS = {"public": 401, "kk-op": 201, "sc-op": 403, "olivia": 201, "sam": 201, "ada": 201}


def _duties(app: TownApp) -> Any:
    assert app.sources.duties is not None
    return app.sources.duties.duties


def fresh_notice(app: TownApp, kind: str = "malfunction") -> int:
    now = now_ns()
    end = now + 3600 * 10**9 if kind == "shutdown" else None
    return int(_duties(app).file_notice("cems", kind, FACTORY, "boiler-1", now, end, "", "kk-op", now).id)


def fresh_attachment(app: TownApp) -> int:
    return int(_duties(app).add_attachment(FACTORY, "report.pdf", PDF, "kk-op", now_ns()).id)


def fresh_finding(app: TownApp) -> str:
    finding_id = uuid.uuid4().hex[:16]
    item = {"id": finding_id, "factory": FACTORY, "device": "boiler-1", "kind": "replay", "month": "2026-11"}
    _duties(app).record_findings([item | {"score": 1.5}], now_ns())
    return finding_id


def _iso(ts_ns: int) -> str:
    from eit.timeutil import ns_to_iso

    return ns_to_iso(ts_ns)


ACCESS.update(
    {
        ("GET", "/api/v1/duties/notices"): (
            lambda a, w: Call("GET", "/api/v1/duties/notices", params={"factory": FACTORY}),
            OWN_FACTORY,
        ),
        ("POST", "/api/v1/duties/notices"): (
            lambda a, w: Call(
                "POST",
                "/api/v1/duties/notices",
                json={
                    "system": "cems",
                    "kind": "malfunction",
                    "factory": FACTORY,
                    "device": "boiler-1",
                    "start": _iso(now_ns()),
                },
            ),
            FILERS,
        ),
        ("GET", "/api/v1/duties/notices/{notice_id}"): (
            lambda a, w: Call("GET", f"/api/v1/duties/notices/{fresh_notice(a)}"),
            OWN_FACTORY,
        ),
        ("POST", "/api/v1/duties/notices/{notice_id}/accept"): (
            lambda a, w: Call("POST", f"/api/v1/duties/notices/{fresh_notice(a, 'shutdown')}/accept"),
            OFFICERS,
        ),
        ("POST", "/api/v1/duties/notices/{notice_id}/reject"): (
            lambda a, w: Call("POST", f"/api/v1/duties/notices/{fresh_notice(a, 'shutdown')}/reject"),
            OFFICERS,
        ),
        ("POST", "/api/v1/duties/notices/{notice_id}/fix"): (
            lambda a, w: Call(
                "POST",
                f"/api/v1/duties/notices/{fresh_notice(a)}/fix",
                json={"fixed_at": _iso(now_ns() + 10**9)},
            ),
            OWN_FACTORY,
        ),
        ("POST", "/api/v1/duties/lab-checks"): (
            lambda a, w: Call(
                "POST",
                "/api/v1/duties/lab-checks",
                json={
                    "factory": STARCH,
                    "device": "outfall-1",
                    "channel": "cod",
                    "sampled_at": _iso(now_ns() - 3 * 3600 * 10**9),
                    "lab_value": 100,
                },
            ),
            {"public": 401, "kk-op": 403, "sc-op": 201, "olivia": 201, "sam": 201, "ada": 201},
        ),
        ("GET", "/api/v1/duties/lab-checks"): (
            lambda a, w: Call("GET", "/api/v1/duties/lab-checks", params={"factory": FACTORY}),
            OWN_FACTORY,
        ),
        ("POST", "/api/v1/duties/stack-tests"): (
            lambda a, w: Call(
                "POST",
                "/api/v1/duties/stack-tests",
                json={"notice_id": fresh_notice(a), "tested_at": _iso(now_ns()), "results": {"so2": 40.0}},
            ),
            FILERS,
        ),
        ("POST", "/api/v1/duties/attachments"): (
            lambda a, w: Call("POST", "/api/v1/duties/attachments", params={"factory": FACTORY}, content=PDF),
            FILERS,
        ),
        ("GET", "/api/v1/duties/attachments/{attachment_id}"): (
            lambda a, w: Call("GET", f"/api/v1/duties/attachments/{fresh_attachment(a)}"),
            OWN_FACTORY,
        ),
        ("GET", "/api/v1/duties/reminders"): (
            lambda a, w: Call("GET", "/api/v1/duties/reminders"),
            LOGGED_IN,
        ),
        ("GET", "/api/v1/duties/report"): (
            lambda a, w: Call(
                "GET", "/api/v1/duties/report", params={"from": "2026-11-01", "to": "2026-11-30"}
            ),
            LOGGED_IN,
        ),
        ("GET", "/api/v1/factories/{factory_id}/shutdowns"): (
            lambda a, w: Call("GET", f"/api/v1/factories/{FACTORY}/shutdowns"),
            PUBLISHED,
        ),
        ("GET", "/api/v1/integrity/findings"): (
            lambda a, w: Call("GET", "/api/v1/integrity/findings"),
            OFFICERS,
        ),
        ("GET", "/api/v1/integrity/findings/{finding_id}"): (
            lambda a, w: Call("GET", f"/api/v1/integrity/findings/{fresh_finding(a)}"),
            OFFICERS,
        ),
        ("POST", "/api/v1/integrity/findings/{finding_id}/disposition"): (
            lambda a, w: Call(
                "POST",
                f"/api/v1/integrity/findings/{fresh_finding(a)}/disposition",
                json={"disposition": "inspect"},
            ),
            OFFICERS,
        ),
        ("POST", "/api/v1/integrity/run"): (
            lambda a, w: Call(
                "POST", "/api/v1/integrity/run", json={"from": "2026-11-01", "to": "2026-11-01"}
            ),
            OFFICERS,
        ),
    }
)


# The town indicators and the open-data package are public (public factories only); an account's
# notification preferences are its own (a channel id of none of its channels: 404).
ACCESS.update(
    {
        ("GET", "/api/v1/indicators"): (lambda a, w: Call("GET", "/api/v1/indicators"), OK_ALL),
        ("GET", "/api/v1/open-data.zip"): (lambda a, w: Call("GET", "/api/v1/open-data.zip"), OK_ALL),
        ("GET", "/api/v1/open-data/datapackage.json"): (
            lambda a, w: Call("GET", "/api/v1/open-data/datapackage.json"),
            OK_ALL,
        ),
        ("GET", "/api/v1/open-data/{resource}.csv"): (
            lambda a, w: Call("GET", "/api/v1/open-data/hourly-averages.csv"),
            OK_ALL,
        ),
        ("GET", "/api/v1/me/notifications"): (
            lambda a, w: Call("GET", "/api/v1/me/notifications"),
            LOGGED_IN,
        ),
        ("PUT", "/api/v1/me/notifications"): (
            lambda a, w: Call("PUT", "/api/v1/me/notifications", json={"mute_non_critical": False}),
            LOGGED_IN,
        ),
        ("POST", "/api/v1/me/notifications/channels"): (
            lambda a, w: Call(
                "POST",
                "/api/v1/me/notifications/channels",
                json={"kind": "email", "address": f"{w}@example.org"},
            ),
            {who: (401 if who == "public" else 201) for who in CALLERS},
        ),
        ("DELETE", "/api/v1/me/notifications/channels/{channel}"): (
            lambda a, w: Call("DELETE", "/api/v1/me/notifications/channels/00000000000000aa"),
            {who: (401 if who == "public" else 404) for who in CALLERS},
        ),
    }
)


def test_every_operation_of_the_openapi_document_has_an_access_rule(town_app: TownApp) -> None:
    spec = town_app.client.get("/openapi.json").json()
    operations = {(m.upper(), path) for path, item in spec["paths"].items() for m in item}
    assert operations == set(ACCESS)


@pytest.mark.parametrize("operation", sorted(ACCESS), ids=lambda op: f"{op[0]} {op[1]}")
def test_who_may_use_the_operation_and_who_may_not(town_app: TownApp, operation: tuple[str, str]) -> None:
    make, expected = ACCESS[operation]
    seen = {}
    for who in CALLERS:
        call = make(town_app, who)
        if operation == ("POST", "/api/v1/logout") and who != "public":
            headers = {"Authorization": f"Bearer {new_token(town_app, who)}"}  # a token of its own to revoke
        else:
            headers = town_app.headers(None if who == "public" else who)
        r = town_app.client.request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            data=call.data,
            content=call.content,
            headers=headers,
        )
        seen[who] = r.status_code
        if r.status_code in (401, 403):
            detail = r.json()["detail"]
            assert detail and ("log in" in detail or "only" in detail or "operator" in detail), detail
        if r.status_code == 401:
            assert r.headers["www-authenticate"] == "Bearer"
    assert seen == expected


def test_an_operator_sees_only_its_own_factory_in_lists(town_app: TownApp) -> None:
    c, h = town_app.client, town_app.headers("kk-op")
    assert [f["id"] for f in c.get("/api/v1/factories", headers=h).json()] == [FACTORY]
    assert {r["factory"] for r in c.get("/api/v1/latest", headers=h).json()} == {FACTORY}
    alerts = c.get("/api/v1/alerts", params={"limit": 1000}, headers=h).json()
    assert alerts and {a["factory"] for a in alerts} == {FACTORY}
    other = c.get("/api/v1/alerts", params={"factory": "siam-cassava-starch"}, headers=h)
    assert other.status_code == 403 and "own factory (kaeng-khoi-biomass)" in other.json()["detail"]
    other_alert = fresh_alert(town_app, factory="siam-cassava-starch")
    assert c.get(f"/api/v1/alerts/{other_alert}", headers=h).status_code == 403
    respond = c.post(
        f"/api/v1/alerts/{other_alert}/response", json={"cause": "x", "corrective_action": "y"}, headers=h
    )
    assert respond.status_code == 403
    report = c.get("/api/v1/reports/compliance", headers=h).json()
    assert [f["id"] for f in report["factories"]] == [FACTORY]
    town = c.get("/api/v1/town", headers=h).json()
    assert town["factories"] == 1 and town["aqi"] == []  # the ambient station is another factory's


def test_an_officer_sees_every_factory(town_app: TownApp) -> None:
    c, h = town_app.client, town_app.headers("olivia")
    ids = {f["id"] for f in c.get("/api/v1/factories", headers=h).json()}
    assert ids == {"kaeng-khoi-biomass", "siam-cassava-starch", "eastern-petrochem"}
    assert {a["factory"] for a in c.get("/api/v1/alerts", params={"limit": 1000}, headers=h).json()} >= {
        "kaeng-khoi-biomass",
        "siam-cassava-starch",
    }


def test_a_bad_expired_or_revoked_token_is_refused_even_on_public_data(town_app: TownApp) -> None:
    c = town_app.client
    r = c.get("/api/v1/town", headers={"Authorization": "Bearer eit_not-a-token"})
    assert r.status_code == 401 and "unknown or has expired" in r.json()["detail"]
    token = new_token(town_app, "olivia")
    assert c.post("/api/v1/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_disabled_account_loses_its_tokens_and_cannot_log_in(town_app: TownApp) -> None:
    c = town_app.client
    name = fresh_user()
    made = c.post(
        "/api/v1/users",
        json={"name": name, "role": "operator", "factory": FACTORY, "password": "operator-pass-1"},
        headers=town_app.headers("ada"),
    )
    assert made.status_code == 201
    token = c.post("/api/v1/token", data={"username": name, "password": "operator-pass-1"}).json()[
        "access_token"
    ]
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = c.post(f"/api/v1/users/{name}/disable", headers=town_app.headers("ada"))
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    refused = c.post("/api/v1/token", data={"username": name, "password": "operator-pass-1"})
    assert refused.status_code == 401


def test_wrong_passwords_are_refused_and_then_throttled(town_app: TownApp) -> None:
    c = town_app.client
    name = fresh_user()
    codes = [
        c.post("/api/v1/token", data={"username": name, "password": "guess-1234"}).status_code
        for _ in range(6)
    ]
    # http.login.per_account_address: five failures for one account from one address.
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
    r = c.post("/api/v1/token", data={"username": name, "password": "guess-1234"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "try again in" in r.json()["detail"]


def test_the_pages_and_the_api_document_are_open_to_everyone(town_app: TownApp) -> None:
    c = town_app.client
    for path in ("/", f"/factory/{FACTORY}", "/console", "/operator", "/login", "/docs", "/openapi.json"):
        r = c.get(path)
        assert r.status_code == 200, path


@pytest.fixture(scope="module")
def private_town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    """The town with the ambient station's factory not published."""
    workdir = tmp_path_factory.mktemp("private")
    app = TownApp(build_town(workdir, replace(EXAMPLE_STORY, private=("eastern-petrochem",))))
    yield app
    app.close()


def test_the_public_sees_only_published_factories(private_town: TownApp) -> None:
    c = private_town.client
    assert {f["id"] for f in c.get("/api/v1/factories").json()} == {
        "kaeng-khoi-biomass",
        "siam-cassava-starch",
    }
    town = c.get("/api/v1/town").json()
    assert town["factories"] == 2 and town["aqi"] == []
    assert c.get("/api/v1/aqi").json() == []
    assert "eastern-petrochem" not in {r["factory"] for r in c.get("/api/v1/latest").json()}
    hidden = "/api/v1/factories/eastern-petrochem"
    r = c.get(hidden)
    assert r.status_code == 404 and "is published" in r.json()["detail"]
    assert c.get(f"{hidden}/devices/fenceline-1/channels/pm25/hourly").status_code == 404
    assert c.get("/api/v1/latest", params={"factory": "eastern-petrochem"}).status_code == 404
    # An officer sees it, with its AQI.
    h = private_town.headers("olivia")
    assert c.get(hidden, headers=h).status_code == 200
    assert [a["factory"] for a in c.get("/api/v1/aqi", headers=h).json()] == ["eastern-petrochem"]


def test_the_public_never_gets_raw_readings_alerts_or_reports(private_town: TownApp, tmp_path: Path) -> None:
    c = private_town.client
    for path in (
        f"{CHANNEL}/readings",
        "/api/v1/alerts",
        "/api/v1/alerts/1",
        "/api/v1/reports/compliance",
        "/api/v1/dead-letters",
        "/api/v1/users",
    ):
        r = c.get(path)
        assert r.status_code == 401, path
