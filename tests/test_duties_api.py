"""The duties and the integrity findings through the HTTP API and the command line, on the example
town (its starch plant is a WPMS factory, its biomass plant a CEMS one): who may file, read,
accept and dispose; lab checks against the stored minute; attachments; the compliance report's
duties section for everyone who sees the factory and its integrity section for officers only."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from alerts.duties import DutiesJob
from alerts.duties.store import round_half_up
from alerts.integrity.findings import EvidenceValue, finding
from eit.timeutil import NS_PER_S, now_ns, ns_to_iso
from testbed.services import EIT, REPO
from testbed.town import TownApp, TownSpec, build_town

STARCH, OUTFALL = "siam-cassava-starch", "outfall-1"
BIOMASS, BOILER = "kaeng-khoi-biomass", "boiler-1"
REPLAY_EVIDENCE: dict[str, EvidenceValue] = {
    "minutes": 1440,
    "copy_start": "2026-11-06T00:00:00Z",
    "source_start": "2026-11-03T00:00:00Z",
    "lag_hours": 72,
}
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n"


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    app = TownApp(build_town(tmp_path_factory.mktemp("duties"), TownSpec(hours=6)))
    yield app
    app.close()


def duties(town: TownApp) -> DutiesJob:
    assert town.sources.duties is not None
    return town.sources.duties


def iso(ts_ns: int) -> str:
    return ns_to_iso(ts_ns)


def test_an_operator_files_notices_of_its_own_monitors_only(town: TownApp) -> None:
    c = town.client
    start = now_ns() - 3 * 3600 * NS_PER_S
    body = {
        "system": "wpms",
        "kind": "malfunction",
        "factory": STARCH,
        "device": OUTFALL,
        "start": iso(start),
    }
    assert c.post("/api/v1/duties/notices", json=body).status_code == 401
    assert c.post("/api/v1/duties/notices", json=body, headers=town.headers("kk-op")).status_code == 403
    wrong = c.post("/api/v1/duties/notices", json=body | {"system": "cems"}, headers=town.headers("sc-op"))
    assert wrong.status_code == 422 and "outfall-1 is no CEMS" in wrong.json()["detail"]
    r = c.post("/api/v1/duties/notices", json=body | {"cause": "pump failed"}, headers=town.headers("sc-op"))
    assert r.status_code == 201, r.text
    n = r.json()
    assert n["origin"] == "filed" and n["state"] == "open" and n["reported_late"] is False
    assert n["report_due"] is not None and n["fix_due"] is not None
    # The operator of the other factory sees none of it; an officer sees it with its audit trail.
    mine = c.get("/api/v1/duties/notices", headers=town.headers("kk-op")).json()
    assert all(x["factory"] == BIOMASS for x in mine)
    assert c.get(f"/api/v1/duties/notices/{n['id']}", headers=town.headers("kk-op")).status_code == 403
    detail = c.get(f"/api/v1/duties/notices/{n['id']}", headers=town.headers("olivia")).json()
    assert [(a["actor"], a["action"]) for a in detail["audit"]] == [("sc-op", "filed")]
    fixed = c.post(
        f"/api/v1/duties/notices/{n['id']}/fix",
        json={"fixed_at": iso(start + 3600 * NS_PER_S)},
        headers=town.headers("sc-op"),
    )
    assert fixed.status_code == 200 and fixed.json()["state"] == "fixed"


def test_an_officer_accepts_a_shutdown_window_and_an_operator_may_not(town: TownApp) -> None:
    c = town.client
    now = now_ns()
    body = {
        "system": "cems",
        "kind": "shutdown",
        "factory": BIOMASS,
        "device": BOILER,
        "start": iso(now + 86_400 * NS_PER_S),
        "end": iso(now + 3 * 86_400 * NS_PER_S),
        "cause": "annual boiler inspection",
    }
    no_end = c.post("/api/v1/duties/notices", json=body | {"end": None}, headers=town.headers("kk-op"))
    assert no_end.status_code == 422 and "end" in no_end.json()["detail"]
    n = c.post("/api/v1/duties/notices", json=body, headers=town.headers("kk-op")).json()
    assert n["state"] == "filed"
    assert (
        c.post(f"/api/v1/duties/notices/{n['id']}/accept", headers=town.headers("kk-op")).status_code == 403
    )
    ok = c.post(
        f"/api/v1/duties/notices/{n['id']}/accept", json={"note": "planned"}, headers=town.headers("olivia")
    )
    assert ok.status_code == 200 and ok.json()["state"] == "accepted" and ok.json()["decided_by"] == "olivia"
    again = c.post(f"/api/v1/duties/notices/{n['id']}/reject", headers=town.headers("olivia"))
    assert again.status_code == 422 and "accepted already" in again.json()["detail"]
    # Its factory's page lists the accepted window, for the public too (a published factory).
    windows = c.get(f"/api/v1/factories/{BIOMASS}/shutdowns").json()
    assert windows == [{"device": BOILER, "system": "cems", "start": body["start"], "end": body["end"]}]
    assert c.get("/api/v1/factories/no-such/shutdowns").status_code == 404
    # The rules' calendar has the accepted window at once.
    assert duties(town).calendar.covers(BIOMASS, BOILER, now + 2 * 86_400 * NS_PER_S)


def test_a_lab_check_takes_the_online_value_of_its_minute_and_reports_e(town: TownApp) -> None:
    end = now_ns() - 3600 * NS_PER_S
    stored = [r for r in town.store.readings(STARCH, OUTFALL, "bod", end - 1800 * NS_PER_S, end) if r.valid]
    sampled = stored[len(stored) // 2].ts_ns
    minute = sampled - sampled % (60 * NS_PER_S)
    same_minute = [r.value for r in stored if minute <= r.ts_ns < minute + 60 * NS_PER_S]
    m = round_half_up(sum(same_minute) / len(same_minute), 1)
    body = {
        "factory": STARCH,
        "device": OUTFALL,
        "channel": "bod",
        "sampled_at": iso(sampled),
        "lab_value": 12.34,
        "laboratory": "Rayong lab",
    }
    r = town.client.post("/api/v1/duties/lab-checks", json=body, headers=town.headers("sc-op"))
    assert r.status_code == 201, r.text
    check = r.json()
    assert check["online_value"] == m and check["lab_value"] == 12.3
    assert check["deviation"] == round_half_up(m - 12.3, 1)
    bad = town.client.post(
        "/api/v1/duties/lab-checks", json=body | {"channel": "ph"}, headers=town.headers("sc-op")
    )
    assert bad.status_code == 422 and "'ph' is not checked against a lab" in bad.json()["detail"]
    negative = town.client.post(
        "/api/v1/duties/lab-checks", json=body | {"lab_value": -1}, headers=town.headers("sc-op")
    )
    assert negative.status_code == 422 and "lab_value" in negative.json()["detail"]


def test_reports_are_attached_as_size_limited_pdfs_seen_by_their_factory(town: TownApp) -> None:
    c = town.client
    url = f"/api/v1/duties/attachments?factory={STARCH}&filename=lab.pdf"
    r = c.post(url, content=PDF, headers=town.headers("sc-op") | {"Content-Type": "application/pdf"})
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["size"] == len(PDF) and a["factory"] == STARCH
    got = c.get(f"/api/v1/duties/attachments/{a['id']}", headers=town.headers("olivia"))
    assert got.status_code == 200, got.text
    assert got.content == PDF and got.headers["content-type"] == "application/pdf"
    assert c.get(f"/api/v1/duties/attachments/{a['id']}", headers=town.headers("kk-op")).status_code == 403
    thai = c.post(
        f"/api/v1/duties/attachments?factory={STARCH}&filename=รายงานผล.pdf",
        content=PDF,
        headers=town.headers("sc-op"),
    ).json()
    named = c.get(f"/api/v1/duties/attachments/{thai['id']}", headers=town.headers("sc-op"))
    assert named.status_code == 200 and "filename*=UTF-8''%E0%B8%A3" in named.headers["content-disposition"]
    not_pdf = c.post(url, content=b"<html>", headers=town.headers("sc-op"))
    assert not_pdf.status_code == 422 and "not a PDF" in not_pdf.json()["detail"]
    limit = duties(town).rules.attachment_max_bytes
    big = c.post(url, content=PDF + b"0" * limit, headers=town.headers("sc-op"))
    # Refused by its declared length before a byte is read (server/api/guards.py), at the
    # attachments' own limit rather than the API's 1 MiB.
    assert big.status_code == 413 and f"larger than {limit} bytes" in big.json()["detail"]


def test_integrity_findings_are_for_officers_with_dispositions_and_an_audit_trail(town: TownApp) -> None:
    c = town.client
    month = datetime.now(UTC).strftime("%Y-%m")
    f = finding(
        "o2_manipulation",
        "o2_floor",
        BIOMASS,
        BOILER,
        "o2",
        month,
        1.7,
        {"floor": 4.0, "hours_below": 90, "running_hours": 300, "share": 0.3, "preset": "boiler"},
        [],
    )
    duties(town).duties.record_findings([f.to_json()], now_ns())
    assert c.get("/api/v1/integrity/findings").status_code == 401
    assert c.get("/api/v1/integrity/findings", headers=town.headers("kk-op")).status_code == 403
    listed = c.get(
        "/api/v1/integrity/findings", params={"month": month}, headers=town.headers("olivia")
    ).json()
    assert [x["id"] for x in listed] == [f.id] and listed[0]["disposition"] is None
    r = c.post(
        f"/api/v1/integrity/findings/{f.id}/disposition",
        json={"disposition": "inspect", "note": "visit next week"},
        headers=town.headers("olivia"),
    )
    assert r.status_code == 200 and r.json()["disposition"] == "inspect"
    bad = c.post(
        f"/api/v1/integrity/findings/{f.id}/disposition",
        json={"disposition": "ignore"},
        headers=town.headers("olivia"),
    )
    assert bad.status_code == 422
    # A rerun of the analytics keeps the officer's disposition.
    duties(town).duties.record_findings([f.to_json()], now_ns())
    detail = c.get(f"/api/v1/integrity/findings/{f.id}", headers=town.headers("olivia")).json()
    assert detail["disposition"] == "inspect" and detail["note"] == "visit next week"
    assert [(a["actor"], a["action"]) for a in detail["audit"]] == [
        ("integrity", "found"),
        ("olivia", "inspect"),
    ]

    today = datetime.now(UTC).date().isoformat()
    params = {"from": today, "to": today}
    officer = c.get("/api/v1/reports/compliance", params=params, headers=town.headers("olivia")).json()
    assert [x["id"] for x in officer["integrity"]["findings"]] == [f.id]
    assert officer["integrity"]["dispositions"] == {"inspect": 1}
    assert {d["device"] for d in officer["duties"]["devices"]} == {OUTFALL, BOILER}
    operator = c.get("/api/v1/reports/compliance", params=params, headers=town.headers("kk-op")).json()
    assert "integrity" not in operator and [d["factory"] for d in operator["duties"]["devices"]] == [BIOMASS]
    html = c.get(
        "/api/v1/reports/compliance", params=params | {"format": "html"}, headers=town.headers("olivia")
    ).text
    assert "Data integrity (officers only)" in html and "Duties of WPMS and CEMS monitors" in html
    html_op = c.get(
        "/api/v1/reports/compliance", params=params | {"format": "html"}, headers=town.headers("kk-op")
    ).text
    assert "Data integrity" not in html_op and "o2_manipulation" not in html_op


def test_the_command_line_files_lists_and_disposes(town: TownApp) -> None:
    config = str(town.town.config_path)

    def eit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*EIT, *args], capture_output=True, text=True, timeout=60, cwd=REPO)

    start = iso(now_ns() - 7200 * NS_PER_S)
    filed = eit(
        "duties", "file", "--config", config, "--actor", "sc-op", "--system", "wpms", "--kind",
        "malfunction", "--factory", STARCH, "--device", OUTFALL, "--start", start, "--cause", "sensor",
    )  # fmt: skip
    assert filed.returncode == 0, filed.stderr
    notice = json.loads(filed.stdout)
    listed = json.loads(eit("duties", "notices", "--config", config, "--factory", STARCH).stdout)
    assert notice["id"] in [n["id"] for n in listed]
    wrong = eit(
        "duties", "file", "--config", config, "--system", "cems", "--kind", "malfunction",
        "--factory", STARCH, "--device", OUTFALL, "--start", start,
    )  # fmt: skip
    assert wrong.returncode == 2 and "--device 'outfall-1': no CEMS" in wrong.stderr
    bad_time = eit("duties", "fix", str(notice["id"]), "--config", config, "--fixed-at", "yesterday")
    assert bad_time.returncode == 2 and "--fixed-at 'yesterday'" in bad_time.stderr
    report = json.loads(
        eit("duties", "report", "--config", config, "--from", "2026-01-01", "--to", "2026-12-31").stdout
    )
    assert any(n["id"] == notice["id"] for d in report["devices"] for n in d["notices"])
    assert report["sources"]["values"]["wpms.malfunction.fix_within_days"]["value"] == 7
    # A lab check with its report, and an officer's disposition of a finding, from the command line.
    pdf = town.town.workdir / "lab.pdf"
    pdf.write_bytes(PDF)
    sampled = iso(now_ns() - 2 * 3600 * NS_PER_S)
    lab = eit(
        "duties", "lab-check", "--config", config, "--actor", "sc-op", "--factory", STARCH, "--device",
        OUTFALL, "--channel", "cod", "--sampled-at", sampled, "--lab-value", "117.6", "--attach", str(pdf),
    )  # fmt: skip
    assert lab.returncode == 0, lab.stderr
    check = json.loads(lab.stdout)
    assert check["lab_value"] == 118.0 and check["attachment_id"] is not None
    assert check["online_value"] is not None and check["deviation"] == check["online_value"] - 118.0
    not_pdf = eit(
        "duties", "lab-check", "--config", config, "--factory", STARCH, "--device", OUTFALL, "--channel",
        "cod", "--sampled-at", sampled, "--lab-value", "1", "--attach", config,
    )  # fmt: skip
    assert not_pdf.returncode == 2 and "not a PDF" in not_pdf.stderr
    f = finding("replay", "replay", BIOMASS, BOILER, None, "2026-11", 2.0, REPLAY_EVIDENCE, [])
    duties(town).duties.record_findings([f.to_json()], now_ns())
    disposed = eit(
        "integrity-findings",
        "dispose",
        f.id,
        "--config",
        config,
        "--actor",
        "olivia",
        "--disposition",
        "dismissed",
    )
    assert disposed.returncode == 0, disposed.stderr
    assert [a["action"] for a in json.loads(disposed.stdout)["audit"]] == ["found", "dismissed"]
    listed = json.loads(
        eit("integrity-findings", "list", "--config", config, "--disposition", "dismissed").stdout
    )
    assert [x["id"] for x in listed] == [f.id]

    site = str(town.town.config.site)
    day = datetime.now(UTC).date().isoformat()
    common = ["report", "compliance", "--site", site, "--config", config, "--from", day, "--to", day]
    officers = json.loads(eit(*common).stdout)
    assert "integrity" in officers and officers["duties"]["devices"]
    plain = json.loads(eit(*common, "--without-integrity").stdout)
    assert "integrity" not in plain and plain["duties"]["devices"]
