"""The HTTP API on the example town's data: what it answers, that it agrees with the stores and
the command line, and that bad parameters get a 4xx naming the parameter."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.testclient import TestClient

from eit.confread import load_yaml
from eit.timeutil import NS_PER_S, now_ns, ns_to_datetime, parse_iso_ns
from server.api.pages import LANGUAGES, choose_language, strings
from testbed.services import EIT, REPO, InfluxDB
from testbed.town import TownApp, TownSpec, build_town, event_kinds, town_site

FACTORY = "kaeng-khoi-biomass"
SO2 = f"/api/v1/factories/{FACTORY}/devices/boiler-1/channels/so2"


@pytest.fixture(scope="module")
def town_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    app = TownApp(build_town(tmp_path_factory.mktemp("api")))
    yield app
    app.close()


def test_the_example_town_data_tells_its_story(town_app: TownApp) -> None:
    # The fixture itself: the engine opened the SO2 exceedance and the stale-data warning.
    kinds = event_kinds(town_app.town.data.events)
    assert ("opened", "kaeng-khoi-biomass", "so2", "limit") in kinds
    assert ("confirmed", "kaeng-khoi-biomass", "so2", "limit") in kinds
    alerts = town_app.alerts.list(state="active")
    found = {(a.factory, a.parameter, a.rule, a.severity) for a in alerts}
    assert ("kaeng-khoi-biomass", "so2", "limit", "critical") in found
    assert ("siam-cassava-starch", "*", "stale", "warning") in found


def test_town_summary_counts_factories_by_compliance_state(town_app: TownApp) -> None:
    town = town_app.client.get("/api/v1/town").json()
    assert town["id"] == "map-ta-phut" and town["factories"] == 3
    # The public state (alerts/public_state.py) follows the conditions, not the alerts: the
    # starch plant silent for 20 minutes has no data (its stale-data warning is for officers).
    assert town["states"] == {"exceeding": 1, "provisional": 0, "shutdown": 0, "no_data": 1, "compliant": 1}
    states = {f["id"]: f["state"] for f in town_app.client.get("/api/v1/factories").json()}
    assert states == {
        "kaeng-khoi-biomass": "exceeding",
        "siam-cassava-starch": "no_data",
        "eastern-petrochem": "compliant",
    }
    assert abs(parse_iso_ns(town["last_update"]) - now_ns()) < 600 * NS_PER_S
    [aqi] = town["aqi"]
    assert aqi["factory"] == "eastern-petrochem" and aqi["band"] in ("very_good", "good", "moderate")
    assert aqi["value"] == max(aqi["sub_indices"].values())


def test_factory_lists_its_channels_with_the_limits_in_force(town_app: TownApp) -> None:
    f = town_app.client.get(f"/api/v1/factories/{FACTORY}").json()
    so2 = next(c for d in f["devices"] if d["id"] == "boiler-1" for c in d["channels"] if c["id"] == "so2")
    [limit] = [lim for lim in so2["limits"] if lim["averaging"] == "1h"]
    assert limit["max"] == 60 and limit["unit"] == "ppm" and limit["max_in_channel_unit"] == 60
    assert "th.stack.boiler.biomass" in limit["origin"]
    assert limit["source"].startswith("Notification of the Ministry of Industry B.E. 2549")
    assert limit["confirmed"] is True


def test_limits_are_converted_into_the_channel_unit(tmp_path: Path) -> None:
    # The same boiler measuring SO2 in mg/m3: the 60 ppm limit is 60 x 64.07 / 24.45 mg/m3 (25 C).
    site = load_yaml(REPO / "examples" / "town" / "site.yaml")
    channels = site["factories"][0]["devices"][0]["channels"]
    channels[0] = {"id": "so2", "unit": "mg/m3", "range": [0, 2000]}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site, allow_unicode=True))
    # Three hours of data: closed hours to judge, no more.
    app = TownApp(build_town(tmp_path / "town", TownSpec(hours=3), site=tmp_path / "site.yaml"))
    try:
        f = app.client.get(f"/api/v1/factories/{FACTORY}").json()
        so2 = f["devices"][0]["channels"][0]
        [limit] = [lim for lim in so2["limits"] if lim["averaging"] == "1h"]
        assert limit["max"] == 60 and limit["unit"] == "ppm"
        assert limit["max_in_channel_unit"] == pytest.approx(60 * 64.07 / 24.45, rel=1e-3)
        hours = app.client.get(f"{SO2}/hourly").json()["hours"]
        judged = [h for h in hours if h["limit"] is not None]
        assert judged and all(h["limit_in_channel_unit"] == pytest.approx(157.2, abs=0.1) for h in judged)
    finally:
        app.close()


def test_raw_and_aggregated_readings_agree_with_the_store(town_app: TownApp) -> None:
    h = town_app.headers("olivia")
    end = now_ns()
    start = end - 6 * 3600 * NS_PER_S
    params = {"start": _iso(start), "end": _iso(end)}
    raw = town_app.client.get(f"{SO2}/readings", params=params | {"limit": 10000}, headers=h).json()
    stored = town_app.store.readings(FACTORY, "boiler-1", "so2", start, end)
    assert len(raw["points"]) == len(stored) > 300 and raw["truncated"] is False
    assert raw["points"][0]["value"] == stored[0].value and raw["points"][0]["flag"] == stored[0].flag
    cut = town_app.client.get(f"{SO2}/readings", params=params | {"limit": 10}, headers=h).json()
    assert len(cut["points"]) == 10 and cut["truncated"] is True
    for fn in ("mean", "max", "count"):
        agg = town_app.client.get(
            f"{SO2}/readings", params=params | {"every": 3600, "fn": fn}, headers=h
        ).json()
        buckets = town_app.store.aggregate(FACTORY, "boiler-1", "so2", start, end, 3600, fn)
        assert [p["value"] for p in agg["points"]] == [b.value for b in buckets]
        assert agg["every"] == 3600 and agg["fn"] == fn and agg["unit"] == "ppm"


def test_hourly_averages_show_the_exceedance_against_the_limit(town_app: TownApp) -> None:
    hours = town_app.client.get(f"{SO2}/hourly").json()["hours"]
    assert len(hours) >= 29  # the town has 30 hours of data
    exceeded = [h for h in hours if h["exceeded"]]
    assert len(exceeded) >= 4
    for h in exceeded:
        assert h["valid"] and h["corrected"] > h["limit"] == 60 and h["limit_unit"] == "ppm"
        assert h["points"] == 60 and h["quadrants"] == 4
    # The exceedance is the end of the story: hours before it are within the limit.
    first = hours.index(exceeded[0])
    assert all(not h["exceeded"] for h in hours[:first]) and first > 20


def test_rolling_averages_of_the_ambient_station(town_app: TownApp) -> None:
    path = "/api/v1/factories/eastern-petrochem/devices/fenceline-1/channels/pm25/rolling"
    points = town_app.client.get(path, params={"window": "24h"}).json()["points"]
    assert points and points[-1]["limit"] == 37.5 and points[-1]["limit_in_channel_unit"] == 37.5
    assert all(15 < p["value"] < 35 for p in points)


def test_alerts_filter_by_state_factory_and_severity(town_app: TownApp) -> None:
    c, h = town_app.client, town_app.headers("olivia")
    every = c.get("/api/v1/alerts", params={"limit": 1000}, headers=h).json()
    critical = c.get("/api/v1/alerts", params={"severity": "critical", "limit": 1000}, headers=h).json()
    assert critical and {a["severity"] for a in critical} == {"critical"}
    assert len(critical) == sum(1 for a in every if a["severity"] == "critical")
    stale = c.get(
        "/api/v1/alerts", params={"factory": "siam-cassava-starch", "state": "open"}, headers=h
    ).json()
    assert [a["rule"] for a in stale] == ["stale"]
    resolved = c.get("/api/v1/alerts", params={"state": "resolved"}, headers=h).json()
    assert {a["state"] for a in resolved} <= {"resolved"}
    thai = c.get("/api/v1/alerts", params={"severity": "critical", "lang": "th"}, headers=h).json()
    assert "ค่าเฉลี่ยรายชั่วโมง" in thai[0]["text"] and "clock-hour average" in critical[0]["text"]


def _new_alert(app: TownApp, factory: str = FACTORY) -> int:
    a = app.alerts.open_alert(
        (factory, "boiler-1", "pm", f"t-{uuid.uuid4().hex[:6]}"), "critical", "pm high", now_ns()
    )
    assert a is not None
    return a.id


def test_an_officer_works_an_alert_through_its_lifecycle(town_app: TownApp) -> None:
    c = town_app.client
    officer, supervisor = town_app.headers("olivia"), town_app.headers("sam")
    aid = _new_alert(town_app)
    acked = c.post(f"/api/v1/alerts/{aid}/acknowledge", json={"note": "calling the factory"}, headers=officer)
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == "olivia" and acked.json()["assignee"] == "olivia"
    again = c.post(f"/api/v1/alerts/{aid}/acknowledge", headers=officer)
    assert again.status_code == 409 and "only an open alert is acknowledged" in again.json()["detail"]
    assigned = c.post(f"/api/v1/alerts/{aid}/assign", json={"assignee": "sam"}, headers=officer).json()
    assert assigned["assignee"] == "sam"
    c.post(f"/api/v1/alerts/{aid}/comments", json={"text": "inspector on site 10:30"}, headers=supervisor)
    early_close = c.post(f"/api/v1/alerts/{aid}/close", headers=supervisor)
    assert early_close.status_code == 409 and "resolve it before closing" in early_close.json()["detail"]
    no_reason = c.post(f"/api/v1/alerts/{aid}/resolve", json={"reason": ""}, headers=supervisor)
    assert no_reason.status_code == 422
    resolved = c.post(f"/api/v1/alerts/{aid}/resolve", json={"reason": "scrubber fixed"}, headers=supervisor)
    assert resolved.json()["state"] == "resolved" and resolved.json()["resolution"] == "scrubber fixed"
    # Resolved while the condition persists: the case stays ongoing, and cannot be closed yet.
    assert resolved.json()["condition"] == "ongoing"
    still = c.post(f"/api/v1/alerts/{aid}/close", headers=supervisor)
    assert still.status_code == 409 and "still ongoing" in still.json()["detail"]
    case = town_app.alerts.get(aid)
    assert case is not None
    town_app.alerts.end_condition(case.key, now_ns(), "below the limit")  # the rules see it end
    closed = c.post(f"/api/v1/alerts/{aid}/close", json={"note": "report filed"}, headers=supervisor).json()
    assert closed["state"] == "closed" and closed["closed_at"]
    detail = c.get(f"/api/v1/alerts/{aid}", headers=officer).json()
    trail = [(e["actor"], e["action"], e["detail"]) for e in detail["audit"]]
    assert trail == [
        ("engine", "opened", "pm high"),
        ("olivia", "acknowledged", "calling the factory"),
        ("olivia", "assigned", "sam"),
        ("sam", "note", "inspector on site 10:30"),
        ("sam", "resolved", "scrubber fixed (the condition is still ongoing)"),
        ("engine", "condition ended", "below the limit"),
        ("sam", "closed", "report filed"),
    ]


def test_assigning_to_someone_who_is_not_an_officer_is_refused(town_app: TownApp) -> None:
    aid = _new_alert(town_app)
    for who in ("kk-op", "nobody-here"):
        r = town_app.client.post(
            f"/api/v1/alerts/{aid}/assign", json={"assignee": who}, headers=town_app.headers("olivia")
        )
        assert r.status_code == 422 and f"'{who}' is not an officer account" in r.json()["detail"]


def test_the_operator_answers_an_alert_with_cause_and_corrective_action(town_app: TownApp) -> None:
    c = town_app.client
    aid = _new_alert(town_app)
    body = {
        "cause": "bag filter torn at 09:40",
        "corrective_action": "filter replaced, boiler load cut to 70 %",
    }
    r = c.post(f"/api/v1/alerts/{aid}/response", json=body, headers=town_app.headers("kk-op"))
    assert r.status_code == 201 and r.json()["by"] == "kk-op"
    detail = c.get(f"/api/v1/alerts/{aid}", headers=town_app.headers("olivia")).json()
    assert [(x["cause"], x["corrective_action"], x["by"]) for x in detail["responses"]] == [
        (body["cause"], body["corrective_action"], "kk-op")
    ]
    assert detail["audit"][-1]["actor"] == "kk-op" and body["cause"] in detail["audit"][-1]["detail"]
    blank = c.post(
        f"/api/v1/alerts/{aid}/response",
        json={"cause": " ", "corrective_action": "x"},
        headers=town_app.headers("kk-op"),
    )
    assert blank.status_code == 422 and "cause and the corrective action" in blank.json()["detail"]


def test_the_compliance_report_is_the_command_line_report(town_app: TownApp) -> None:
    day = ns_to_datetime(now_ns() - 86400 * NS_PER_S).date().isoformat()
    config = town_app.town.config_path
    cli = subprocess.run(
        [
            *EIT,
            "report",
            "compliance",
            "--site",
            str(REPO / "examples/town/site.yaml"),
            "--config",
            str(config),
            "--from",
            day,
            "--to",
            day,
            "--factory",
            FACTORY,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    from_cli = json.loads(cli.stdout)
    r = town_app.client.get(
        "/api/v1/reports/compliance",
        params={"from": day, "to": day, "factory": FACTORY},
        headers=town_app.headers("olivia"),
    )
    from_api = r.json()
    for report in (from_cli, from_api):
        report.pop("generated_at")
        report.pop("generated_at_local")
    assert from_api == from_cli
    assert from_api["factories"][0]["channels"][0]["valid_hours"] > 0
    csv = town_app.client.get(
        "/api/v1/reports/compliance",
        params={"from": day, "factory": FACTORY, "format": "csv"},
        headers=town_app.headers("kk-op"),
    )
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.startswith("row,factory,device")
    html = town_app.client.get(
        "/api/v1/reports/compliance", params={"format": "html"}, headers=town_app.headers("olivia")
    )
    assert html.headers["content-type"].startswith("text/html") and "<h1>Compliance report" in html.text
    # The files for people: an officer and the factory's operator download PDF and XLSX, Thai or English.
    for who, lang in (("olivia", "th"), ("kk-op", "en")):
        pdf = town_app.client.get(
            "/api/v1/reports/compliance",
            params={"from": day, "factory": FACTORY, "format": "pdf", "lang": lang},
            headers=town_app.headers(who),
        )
        assert pdf.status_code == 200, pdf.text
        assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
        assert f'filename="compliance-{FACTORY}-{day}-{day}-{lang}.pdf"' in pdf.headers["content-disposition"]
        xlsx = town_app.client.get(
            "/api/v1/reports/compliance",
            params={"from": day, "factory": FACTORY, "format": "xlsx", "lang": lang},
            headers=town_app.headers(who),
        )
        assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")  # a zip: the XLSX container
    thai = town_app.client.get(
        "/api/v1/reports/compliance",
        params={"format": "html", "lang": "th"},
        headers=town_app.headers("olivia"),
    )
    assert "<h1>รายงานการปฏิบัติตามมาตรฐาน" in thai.text and "เวลาประเทศไทย (UTC+7)" in thai.text
    assert town_app.client.get("/api/v1/reports/compliance", params={"format": "pdf"}).status_code == 401


def test_dead_letters_are_listed_with_their_reasons(town_app: TownApp) -> None:
    r = town_app.client.get("/api/v1/dead-letters", headers=town_app.headers("olivia")).json()
    assert r["counts"] == {"not_json": 1}
    [letter] = r["letters"]
    assert letter["reason"] == "not_json" and "not JSON" in letter["detail"] and letter["payload"] == "so2=41"


@pytest.mark.parametrize(
    ("path", "params", "status", "names"),
    [
        (f"{SO2}/hourly", {"start": "yesterday"}, 422, "query parameter 'start'"),
        (f"{SO2}/hourly", {"start": "2026-11-27T04:00:00"}, 422, "query parameter 'start': give a time zone"),
        (
            f"{SO2}/hourly",
            {"start": "2026-11-27T04:00:00Z", "end": "2026-11-26T04:00:00Z"},
            422,
            "'end': must be after start",
        ),
        (f"{SO2}/hourly", {"start": "1900-01-01T00:00:00Z"}, 422, "'start': out of range"),
        (f"{SO2}/hourly", {"start": "1999-12-31T23:00:00Z"}, 422, "'start': out of range: before 2000-01-01"),
        (f"{SO2}/hourly", {"end": "9999-12-31T23:59:59-01:00"}, 422, "'end': out of range: after 2262-04-11"),
        (
            f"{SO2}/hourly",
            {"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            422,
            "longer than 400 days",
        ),
        (f"{SO2}/rolling", {"window": "3h"}, 422, "query parameter 'window'"),
        (f"{SO2}/readings", {"every": "0"}, 422, "query parameter 'every'"),
        (
            f"{SO2}/readings",
            {"every": "1", "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
            422,
            "'every': 1 s makes",
        ),
        (f"{SO2}/readings", {"fn": "median"}, 422, "query parameter 'fn'"),
        (f"{SO2}/readings", {"limit": "100000"}, 422, "query parameter 'limit'"),
        (f"{SO2}/readings", {"valid_only": "perhaps"}, 422, "query parameter 'valid_only'"),
        ("/api/v1/alerts", {"state": "sleeping"}, 422, "query parameter 'state'"),
        ("/api/v1/alerts", {"severity": "huge"}, 422, "query parameter 'severity'"),
        (
            "/api/v1/alerts",
            {"factory": "no-such-factory"},
            422,
            "query parameter 'factory': no factory 'no-such-factory'",
        ),
        ("/api/v1/alerts", {"limit": "-1"}, 422, "query parameter 'limit'"),
        (
            "/api/v1/exceedances",
            {"end": "2263-01-01T00:00:00Z"},
            422,
            "'end': out of range: after 2262-04-11",
        ),
        ("/api/v1/exceedances", {"start": "2026-11-27T04:00:00"}, 422, "'start': give a time zone"),
        ("/api/v1/alerts/0", {}, 422, "path parameter 'alert_id'"),
        ("/api/v1/alerts/99999999", {}, 404, "no alert #99999999"),
        ("/api/v1/latest", {"factory": "Bad Name!"}, 422, "query parameter 'factory'"),
        ("/api/v1/factories/nope", {}, 404, "no factory 'nope'"),
        (
            f"/api/v1/factories/{FACTORY}/devices/boiler-9/channels/so2/hourly",
            {},
            404,
            "has no device 'boiler-9'",
        ),
        (f"/api/v1/factories/{FACTORY}/devices/boiler-1/channels/xx/hourly", {}, 404, "has no channel 'xx'"),
        ("/api/v1/reports/compliance", {"from": "2026-13-01"}, 422, "query parameter 'from'"),
        (
            "/api/v1/reports/compliance",
            {"from": "2026-11-02", "to": "2026-11-01"},
            422,
            "'to': 2026-11-01 is before",
        ),
        (
            "/api/v1/reports/compliance",
            {"from": "2024-01-01", "to": "2026-01-01"},
            422,
            "longer than 366 days",
        ),
        ("/api/v1/reports/compliance", {"format": "docx"}, 422, "query parameter 'format'"),
        ("/api/v1/reports/compliance", {"format": "pdf", "lang": "fr"}, 422, "query parameter 'lang'"),
        ("/api/v1/dead-letters", {"reason": "DROP TABLE"}, 422, "query parameter 'reason'"),
    ],
)
def test_bad_parameters_get_a_4xx_naming_the_parameter(
    town_app: TownApp, path: str, params: dict[str, str], status: int, names: str
) -> None:
    r = town_app.client.get(path, params=params, headers=town_app.headers("olivia"))
    assert r.status_code == status, r.text
    assert names in r.json()["detail"]


def test_bad_bodies_get_a_422_naming_the_field(town_app: TownApp) -> None:
    c, h = town_app.client, town_app.headers("olivia")
    aid = _new_alert(town_app)
    r = c.post(f"/api/v1/alerts/{aid}/assign", json={}, headers=h)
    assert r.status_code == 422 and "body field 'assignee'" in r.json()["detail"]
    r = c.post(
        f"/api/v1/alerts/{aid}/comments",
        content=b"{not json",
        headers=h | {"content-type": "application/json"},
    )
    assert r.status_code == 422
    r = c.post(
        "/api/v1/users",
        json={"name": "x", "role": "king", "password": "long-enough"},
        headers=town_app.headers("ada"),
    )
    assert r.status_code == 422 and "body field 'role'" in r.json()["detail"]
    r = c.post(
        "/api/v1/users",
        json={"name": "new-op", "role": "operator", "factory": "nowhere", "password": "long-enough"},
        headers=town_app.headers("ada"),
    )
    assert r.status_code == 422 and "no factory 'nowhere'" in r.json()["detail"]
    r = c.post(
        "/api/v1/users",
        json={"name": "Bad Name", "role": "officer", "password": "long-enough"},
        headers=town_app.headers("ada"),
    )
    assert r.status_code == 422 and "is not valid" in r.json()["detail"]
    r = c.post(
        "/api/v1/users",
        json={"name": "olivia", "role": "officer", "password": "long-enough"},
        headers=town_app.headers("ada"),
    )
    assert r.status_code == 409 and "exists already" in r.json()["detail"]


def test_metrics_count_requests_by_route_and_status(town_app: TownApp) -> None:
    town_app.client.get("/api/v1/factories/nope")
    with TestClient(town_app.app, client=("127.0.0.1", 50000)) as here:  # metrics: this machine
        text = here.get("/metrics").text
    assert 'eit_http_requests_total{method="GET",route="/api/v1/factories/{factory}",status="404"}' in text
    assert "eit_http_request_duration_seconds_bucket" in text


def test_words_exist_in_both_languages() -> None:
    words = strings()
    assert set(words["th"]) == set(words["en"]) and len(words["en"]) > 50
    differing = [k for k in words["en"] if words["en"][k] != words["th"][k]]
    assert len(differing) > 0.8 * len(words["en"])  # Thai is really Thai, not a copy


def test_every_word_the_pages_ask_for_is_in_the_glossary() -> None:
    import re

    web = REPO / "server" / "web"
    asked = {
        key
        for path in web.glob("static/*.js")
        for key in re.findall(r"\bt\(\"([a-z0-9_]+)\"", path.read_text())
    } | {
        key
        for path in web.glob("templates/*.html")
        for key in re.findall(r"\bt\.([a-z0-9_]+)", path.read_text())
    }
    words = set(strings()["en"])
    assert asked - words == {p for p in asked if p.endswith("_")}  # what is missing: prefixes only
    # Keys made at run time (t("state_" + state)): each prefix has its words.
    prefixes = {p for p in asked if p.endswith("_")}
    assert prefixes >= {"state_", "severity_", "condition_", "kind_", "exceedance_", "notification_"}
    assert all(any(k.startswith(p) for k in words) for p in prefixes)
    assert len(asked) > 100


def test_pages_speak_thai_or_english_by_query_or_browser_language(town_app: TownApp) -> None:
    c = town_app.client
    assert '<html lang="th">' in c.get("/").text  # the default: a Thai town
    assert '<html lang="en">' in c.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="th">' in c.get("/", headers={"Accept-Language": "en;q=0.4, th-TH"}).text
    page = c.get("/console", params={"lang": "en"}, headers={"Accept-Language": "th"})
    assert '<html lang="en">' in page.text and "Officer console" in page.text
    assert "คอนโซลเจ้าหน้าที่" in c.get("/console", params={"lang": "th"}).text
    assert set(LANGUAGES) == {"th", "en"}


def test_language_choice_follows_quality_values() -> None:
    class Req:
        def __init__(self, header: str, lang: str | None = None) -> None:
            self.headers = {"accept-language": header}
            self.query_params = {"lang": lang} if lang else {}

    assert choose_language(Req("fr, en;q=0.5, th;q=0.7")) == "th"  # type: ignore[arg-type]
    assert choose_language(Req("de")) == "th"  # type: ignore[arg-type]
    assert choose_language(Req("th", "en")) == "en"  # type: ignore[arg-type]
    assert choose_language(Req("en;q=0, th;q=bad")) == "th"  # type: ignore[arg-type]


def test_pages_load_nothing_from_another_origin(town_app: TownApp) -> None:
    web = REPO / "eit" / "web"
    for path in [*web.glob("templates/*.html"), *web.glob("static/*.js"), *web.glob("static/*.css")]:
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, (
            path
        )
    page = town_app.client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp


def test_the_page_configuration_cannot_close_its_script_element(tmp_path: Path) -> None:
    site = town_site(tmp_path / "site.yaml", TownSpec())
    data = load_yaml(site)
    data["town"]["name"] = "</script><script>alert(1)</script>"
    site.write_text(yaml.safe_dump(data, allow_unicode=True))
    app = TownApp(build_town(tmp_path / "town", TownSpec(hours=1), site=site))  # the page, not the data
    try:
        page = app.client.get("/").text
        assert "<script>alert(1)" not in page
        assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page  # the heading, escaped
    finally:
        app.close()


def test_dates_default_to_yesterday_in_the_town(town_app: TownApp) -> None:
    r = town_app.client.get("/api/v1/reports/compliance", headers=town_app.headers("olivia")).json()
    from zoneinfo import ZoneInfo

    yesterday = ns_to_datetime(now_ns()).astimezone(ZoneInfo("Asia/Bangkok")).date() - timedelta(days=1)
    assert r["from"] == r["to"] == yesterday.isoformat()
    assert date.fromisoformat(r["from"]) < date.today() + timedelta(days=1)


def _iso(ns: int) -> str:
    return ns_to_datetime(ns).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def production_town(
    tmp_path_factory: pytest.TempPathFactory, influxdb: InfluxDB, postgres_server: str
) -> Iterator[TownApp]:
    """The town on the production services: InfluxDB for the readings, PostgreSQL for the
    alerts and accounts."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    town = build_town(
        tmp_path_factory.mktemp("production"),
        state_url=urlsplit(postgres_server)._replace(path=f"/{name}").geturl(),
        store_config={"kind": "influxdb", "url": influxdb.url, "database": name},
    )
    app = TownApp(town)
    yield app
    app.close()
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.integration
def test_the_api_answers_the_same_on_influxdb_and_postgresql(
    production_town: TownApp, town_app: TownApp
) -> None:
    """The same town on the embedded stores and on the production services: the same answers."""
    for app in (production_town, town_app):
        assert app.client.get("/api/v1/town").json()["states"] == {
            "exceeding": 1,
            "provisional": 0,
            "shutdown": 0,
            "no_data": 1,
            "compliant": 1,
        }
    assert production_town.store.kind == "influxdb" and production_town.alerts.kind == "postgresql"
    hours = production_town.client.get(f"{SO2}/hourly").json()["hours"]
    embedded = town_app.client.get(f"{SO2}/hourly").json()["hours"]
    assert [(h["exceeded"], h["valid"], h["limit"]) for h in hours][-20:] == [
        (h["exceeded"], h["valid"], h["limit"]) for h in embedded
    ][-20:]
    h = production_town.headers("olivia")
    raw = production_town.client.get(f"{SO2}/readings", params={"every": 3600}, headers=h).json()["points"]
    assert len(raw) >= 24
    aqi = production_town.client.get("/api/v1/aqi").json()
    assert [a["band"] for a in aqi] == [a["band"] for a in town_app.client.get("/api/v1/aqi").json()]
    aid = next(
        a["id"]
        for a in production_town.client.get(
            "/api/v1/alerts", params={"severity": "critical"}, headers=h
        ).json()
    )
    acked = production_town.client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=h)
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    r = production_town.client.post(
        f"/api/v1/alerts/{aid}/response",
        json={"cause": "fuel change", "corrective_action": "back to the usual fuel"},
        headers=production_town.headers("kk-op"),
    )
    assert r.status_code == 201
    detail = production_town.client.get(f"/api/v1/alerts/{aid}", headers=h).json()
    assert detail["responses"][0]["cause"] == "fuel change"


def test_kept_alive_connections_send_each_answer_at_once() -> None:
    """The HTTP thread's connections have TCP_NODELAY: without it, every answer after the first on
    a kept-alive connection (the console's requests) waits about 40 ms for the client's delayed
    ACK."""
    import http.client
    import socket

    from server.serve import HttpThread

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    server = HttpThread(app, "127.0.0.1", 0)
    server.start()
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(2):  # one connection, kept alive
            client.request("GET", "/")
            assert client.getresponse().read() == b"ok"
        [connection] = server._server.server_state.connections
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.close()
        server.should_exit()
        server.join(10)
