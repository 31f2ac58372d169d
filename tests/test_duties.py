"""The duties of WPMS and CEMS monitors on the embedded store and state database, with a clock
the test moves: malfunctions inferred from the data and filed by the factory, the cases the
duties job opens for missed deadlines (once per episode) and ends when the duty is done, lab
checks (E = M - T against the minute's mean), substitute stack tests, attachments, and accepted
shutdown windows that silence the no-data case of that device only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.duties import DutiesJob, DutyStore, ShutdownCalendar
from alerts.duties.job import RULE_FIX, RULE_LAB, RULE_LAB_DUE, RULE_NOTICE, RULE_STACK_TEST
from alerts.duties.model import ACCEPTED, CEMS, INFERRED, MALFUNCTION, SHUTDOWN, WPMS, DutyError
from alerts.duties.rules import load_duty_rules
from alerts.duties.store import round_half_up
from alerts.engine import AlertEngine
from alerts.model import Alert, AlertEvent
from alerts.notifiers.dispatch import Dispatcher
from alerts.public_state import SHUTDOWN as PUBLIC_SHUTDOWN
from alerts.settings import RuleSettings
from alerts.state import AlertStore, open_alert_store
from eit.model import Reading
from eit.registry import load_registry
from eit.storeschema import PublicState
from eit.timeutil import parse_iso_ns
from ingest.store.sqlite import SqliteStore
from testbed.services import REPO

S = 1_000_000_000
MIN = 60 * S
SITE = REPO / "examples" / "town" / "site.yaml"
STARCH, OUTFALL = "siam-cassava-starch", "outfall-1"
BIOMASS, BOILER = "kaeng-khoi-biomass", "boiler-1"
RULES = load_duty_rules()
BKK = ZoneInfo("Asia/Bangkok")


def t(text: str) -> int:
    return parse_iso_ns(text)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.registry = load_registry(SITE)
        self.store = SqliteStore(tmp / "readings.db")
        self.alerts: AlertStore = open_alert_store(None, tmp / "state.db")
        self.duties = DutyStore(self.alerts.db, RULES, BKK)
        self.events: list[AlertEvent] = []
        self.job = DutiesJob(
            self.registry,
            self.store,
            self.duties,
            self.alerts,
            ShutdownCalendar(self.registry),
            RULES,
            emit=self.events.append,
            lookback_days=2,
            integrity_monthly=False,
        )

    def minutes(
        self, factory: str, device: str, channels: tuple[str, ...], start: int, end: int, flag: str = "N"
    ) -> None:
        rows = [
            Reading(factory, device, ch, ts + 7 * S, 50.0 + (ts // MIN) % 7, flag)
            for ts in range(start, end, MIN)
            for ch in channels
        ]
        self.store.write(rows)

    def cases(self, rule: str) -> list[Alert]:
        return [a for a in self.alerts.list(limit=1000) if a.rule == rule]


def ongoing(rig: Rig, case_id: int) -> bool:
    case = rig.alerts.get(case_id)
    assert case is not None
    return case.ongoing


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.store.close()
    r.alerts.close()


def test_a_wpms_outage_is_inferred_its_missed_report_and_repair_open_one_case_each_and_end_when_done(
    rig: Rig,
) -> None:
    # 10 Nov fully reported; 11 Nov only until 12:00 local (50 %: below the 80 % of a working day).
    rig.minutes(
        STARCH, OUTFALL, ("cod", "bod"), t("2026-11-10T00:00:00+07:00"), t("2026-11-11T12:00:00+07:00")
    )
    first = rig.job.run_once(t("2026-11-12T00:30:00+07:00"))
    wpms = [n for n in rig.duties.notices(STARCH, OUTFALL, MALFUNCTION)]
    assert len(wpms) == 1 and first.inferred >= 1
    n = wpms[0]
    assert (n.system, n.origin, n.filed_ns) == (WPMS, INFERRED, None)
    assert n.started_ns == t("2026-11-11T12:00:00+07:00")  # its first minute without valid data
    assert n.report_due_ns == t("2026-11-13T00:00:00+07:00")
    assert n.fix_due_ns == t("2026-11-19T00:00:00+07:00")
    assert [a for a in rig.cases(RULE_NOTICE) if a.factory == STARCH] == []  # not due yet

    rig.job.run_once(t("2026-11-13T00:30:00+07:00"))
    rig.job.run_once(t("2026-11-13T01:30:00+07:00"))  # the same missed deadline: no second case
    late = [a for a in rig.cases(RULE_NOTICE) if a.factory == STARCH]
    assert len(late) == 1 and late[0].ongoing and late[0].device == OUTFALL
    assert "was not reported by 2026-11-13 00:00" in late[0].message
    assert ("opened", RULE_NOTICE) in [
        (e.kind, e.alert.rule) for e in rig.events if e.alert.factory == STARCH
    ]

    # The factory files its notice late: it completes the inferred one, which keeps its start.
    filed = rig.duties.file_notice(
        WPMS,
        MALFUNCTION,
        STARCH,
        OUTFALL,
        t("2026-11-11T13:00:00+07:00"),
        None,
        "probe fouled",
        "op",
        t("2026-11-13T09:00:00+07:00"),
    )
    assert filed.id == n.id and filed.started_ns == n.started_ns and filed.reported_late is True
    rig.job.run_once(t("2026-11-13T10:00:00+07:00"))
    assert not ongoing(rig, late[0].id)

    # Not fixed by the end of 18 Nov: one case; fixed: the case ends.
    assert [a for a in rig.cases(RULE_FIX) if a.factory == STARCH] == []
    rig.job.run_once(t("2026-11-18T23:59:00+07:00"))
    assert [a for a in rig.cases(RULE_FIX) if a.factory == STARCH] == []
    rig.job.run_once(t("2026-11-19T00:00:00+07:00"))
    overdue = [a for a in rig.cases(RULE_FIX) if a.factory == STARCH]
    assert len(overdue) == 1 and overdue[0].ongoing
    assert "not fixed by 2026-11-19 00:00 (fix within 7 days" in overdue[0].message
    rig.duties.fix(n.id, t("2026-11-19T08:00:00+07:00"), "op", t("2026-11-19T09:00:00+07:00"))
    rig.job.run_once(t("2026-11-19T10:00:00+07:00"))
    assert not ongoing(rig, overdue[0].id)
    trail = [(e.actor, e.action) for e in rig.duties.audit(f"notice/{n.id}")]
    assert trail == [("duties", "inferred"), ("op", "filed"), ("op", "fixed")]


def test_fault_and_communication_flags_are_no_data_for_the_inference(rig: Rig) -> None:
    day = t("2026-11-10T00:00:00+07:00")
    rig.minutes(STARCH, OUTFALL, ("cod",), day - 1440 * MIN, day + 12 * 60 * MIN)
    rig.minutes(STARCH, OUTFALL, ("cod",), day + 12 * 60 * MIN, day + 18 * 60 * MIN, flag="D")
    rig.minutes(STARCH, OUTFALL, ("cod",), day + 18 * 60 * MIN, day + 24 * 60 * MIN, flag="B")
    rig.job.run_once(t("2026-11-11T00:30:00+07:00"))
    [n] = rig.duties.notices(STARCH, OUTFALL, MALFUNCTION)
    assert n.started_ns == day + 12 * 60 * MIN


def test_a_day_with_enough_data_is_no_malfunction_and_fixes_an_inferred_one(rig: Rig) -> None:
    day = t("2026-11-10T00:00:00+07:00")
    # 10 Nov: 85 % of the minutes (a working day); 11 Nov: none; 12 Nov: all.
    rig.minutes(STARCH, OUTFALL, ("cod",), day, day + int(0.85 * 1440) * MIN)
    rig.minutes(STARCH, OUTFALL, ("cod",), day + 2 * 1440 * MIN, day + 3 * 1440 * MIN)
    rig.job.run_once(t("2026-11-12T00:30:00+07:00"))
    [n] = rig.duties.notices(STARCH, OUTFALL, MALFUNCTION)
    assert n.started_ns == day + 1440 * MIN
    rig.job.run_once(t("2026-11-13T00:30:00+07:00"))
    fixed = rig.duties.notice(n.id)
    assert fixed.state == "fixed" and fixed.fixed_ns == day + 2 * 1440 * MIN
    # Fixed, never reported: the report is still owed, its case goes on, named for the notice.
    [owed] = [a for a in rig.cases(RULE_NOTICE) if a.factory == STARCH]
    assert owed.ongoing and owed.parameter == f"notice {n.id}"
    assert [a for a in rig.cases(RULE_FIX) if a.factory == STARCH] == []  # fixed in time


def test_a_cems_down_fifteen_days_needs_a_substitute_stack_test_by_its_deadline(rig: Rig) -> None:
    down = t("2026-11-01T08:00:00+07:00")
    n = rig.duties.file_notice(CEMS, MALFUNCTION, BIOMASS, BOILER, down, None, "analyser failed", "op", down)
    assert n.report_due_ns == t("2026-11-03T00:00:00+07:00") and n.fix_due_ns is None
    rig.job.run_once(t("2026-11-23T23:59:00+07:00"))
    assert rig.cases(RULE_STACK_TEST) == []
    rig.job.run_once(t("2026-11-24T00:00:00+07:00"))
    [case] = rig.cases(RULE_STACK_TEST)
    assert case.ongoing and (case.factory, case.device) == (BIOMASS, BOILER)
    pdf = b"%PDF-1.4\n% stack test\n%%EOF\n"
    report = rig.duties.add_attachment(BIOMASS, "stack-test.pdf", pdf, "op", t("2026-11-24T09:00:00+07:00"))
    test = rig.duties.add_stack_test(
        n.id,
        t("2026-11-22T10:00:00+07:00"),
        {"so2": 41.0, "nox": 120.0},
        "Lab A",
        "op",
        t("2026-11-24T09:00:00+07:00"),
        report.id,
    )
    assert test.results == {"nox": 120.0, "so2": 41.0}
    rig.job.run_once(t("2026-11-24T10:00:00+07:00"))
    assert not ongoing(rig, case.id)
    meta, content = rig.duties.attachment(report.id)
    assert content == pdf and meta.size == len(pdf)


def test_attachments_must_be_pdfs_within_the_size_limit(rig: Rig) -> None:
    with pytest.raises(DutyError, match="not a PDF"):
        rig.duties.add_attachment(STARCH, "lab.docx", b"PK\x03\x04", "op", 0)
    big = b"%PDF-" + b"0" * RULES.attachment_max_bytes
    with pytest.raises(DutyError, match=f"more than the limit of {RULES.attachment_max_bytes} bytes"):
        rig.duties.add_attachment(STARCH, "lab.pdf", big, "op", 0)


def test_lab_checks_round_as_reported_and_a_month_without_one_opens_a_case_per_channel(rig: Rig) -> None:
    sampled = t("2026-06-15T10:00:00+07:00")
    check = rig.duties.add_lab_check(
        STARCH, OUTFALL, "bod", sampled, 18.14, 20.25, "mg/L", "Lab A", "op", t("2026-07-20T09:00:00+07:00")
    )
    # T 18.1, M 20.3 (BOD to 1 decimal, half up), E = M - T = 2.2; reported within 30 days.
    assert (check.lab_value, check.online_value, check.deviation) == (18.1, 20.3, 2.2)
    assert check.report_due_ns == t("2026-07-16T00:00:00+07:00") and check.reported_late is True
    with pytest.raises(DutyError, match="channel: 'ph' is not checked against a lab"):
        rig.duties.add_lab_check(STARCH, OUTFALL, "ph", sampled, 7.0, 7.1, "pH", "", "op", sampled)
    # A monitor with no data in June (not running yet) owes no June check.
    rig.job.run_once(t("2026-07-01T00:10:00+07:00"))
    assert rig.cases(RULE_LAB) == []
    # It ran in June: June's COD was never checked, so after 30 Jun a case for COD only.
    rig.minutes(
        STARCH, OUTFALL, ("cod", "bod"), t("2026-06-02T00:00:00+07:00"), t("2026-06-02T01:00:00+07:00")
    )
    rig.job.run_once(t("2026-07-01T00:30:00+07:00"))
    cases = [a for a in rig.cases(RULE_LAB) if a.factory == STARCH]
    assert [(a.parameter, a.ongoing) for a in cases] == [("cod 2026-06", True)]
    assert "no lab check of online COD against a grab sample in 2026-06" in cases[0].message


def enter_december_cod_check(rig: Rig) -> None:
    """The starch factory's December COD check, sampled on the 2nd, entered on the 3rd."""
    rig.duties.add_lab_check(
        STARCH,
        OUTFALL,
        "cod",
        t("2026-12-02T10:00:00+07:00"),
        118,
        120.5,
        "mg/L",
        "",
        "op",
        t("2026-12-03T10:00:00+07:00"),
    )


def test_reminders_list_the_checks_of_the_month_not_yet_entered(rig: Rig) -> None:
    assert rig.job.reminders(t("2026-11-30T12:00:00+07:00")) == []
    due = rig.job.reminders(t("2026-12-01T00:00:00+07:00"))
    assert {(r["factory"], r["channel"], r["period"]) for r in due} == {
        (STARCH, "bod", "2026-12"),
        (STARCH, "cod", "2026-12"),
    }
    enter_december_cod_check(rig)
    assert [r["channel"] for r in rig.job.reminders(t("2026-12-03T12:00:00+07:00"))] == ["bod"]


def test_a_due_lab_check_is_reminded_once_and_the_reminder_ends_when_entered_or_when_the_month_ends(
    rig: Rig,
) -> None:
    def reminders() -> list[Alert]:
        return sorted((a for a in rig.cases(RULE_LAB_DUE) if a.factory == STARCH), key=lambda a: a.parameter)

    rig.job.run_once(t("2026-11-30T12:00:00+07:00"))
    assert reminders() == [], "November owes no check"
    rig.job.run_once(t("2026-12-01T00:30:00+07:00"))
    assert reminders() == [], "a monitor without data a week old is not reminded yet"
    rig.minutes(
        STARCH, OUTFALL, ("cod", "bod"), t("2026-11-20T00:00:00+07:00"), t("2026-11-20T01:00:00+07:00")
    )
    rig.job.run_once(t("2026-12-01T00:40:00+07:00"))
    rig.job.run_once(t("2026-12-01T08:00:00+07:00"))  # the same reminder: not sent twice
    sent = reminders()
    assert [(a.parameter, a.severity, a.ongoing) for a in sent] == [
        ("bod 2026-12", "info", True),
        ("cod 2026-12", "info", True),
    ]
    assert "the lab check of online COD against a grab sample is due in 2026-12" in sent[1].message
    assert "sampled by 2027-01-01 00:00" in sent[1].message
    opened = [e.alert.parameter for e in rig.events if e.kind == "opened" and e.alert.rule == RULE_LAB_DUE]
    assert sorted(p for p in opened if p.endswith("2026-12")) == ["bod 2026-12", "cod 2026-12"]
    # COD is entered: its reminder ends (and is notified as ended); BOD's goes on.
    enter_december_cod_check(rig)
    rig.job.run_once(t("2026-12-03T12:00:00+07:00"))
    assert [(a.parameter, a.ongoing) for a in reminders()] == [("bod 2026-12", True), ("cod 2026-12", False)]
    assert ("resolved", "cod 2026-12") in [(e.kind, e.alert.parameter) for e in rig.events]
    # December ends without BOD: its reminder ends, the missed check's case takes over.
    rig.minutes(
        STARCH, OUTFALL, ("cod", "bod"), t("2026-12-02T00:00:00+07:00"), t("2026-12-02T01:00:00+07:00")
    )
    rig.job.run_once(t("2027-01-01T00:30:00+07:00"))
    assert [(a.parameter, a.ongoing) for a in reminders()] == [("bod 2026-12", False), ("cod 2026-12", False)]
    assert [(a.parameter, a.ongoing) for a in rig.cases(RULE_LAB) if a.factory == STARCH] == [
        ("bod 2026-12", True)
    ]


def test_an_accepted_shutdown_silences_the_no_data_case_of_that_device_only(rig: Rig) -> None:
    now = t("2026-11-20T10:00:00+07:00")
    engine = AlertEngine(
        rig.registry,
        rig.alerts,
        Dispatcher([]),
        clock=lambda: now,
        settings=RuleSettings(stale_after_s=120),
        store=rig.store,
    )
    engine.shutdowns = rig.job.calendar
    seen = now - 600 * S
    engine.on_readings(
        [Reading(BIOMASS, BOILER, "so2", seen, 10.0), Reading(STARCH, OUTFALL, "cod", seen, 50.0)], seen
    )
    window = rig.duties.file_notice(
        CEMS,
        SHUTDOWN,
        BIOMASS,
        BOILER,
        now - 3600 * S,
        now + 86_400 * S,
        "planned maintenance",
        "op",
        now - 7200 * S,
    )
    rig.job.refresh_calendar()
    engine.tick(now)  # filed, not accepted: the no-data case opens
    stale = [a for a in rig.alerts.list(limit=100) if a.rule == "stale"]
    assert {(a.factory, a.ongoing) for a in stale} == {(BIOMASS, True), (STARCH, True)}

    accepted = rig.duties.decide_shutdown(window.id, True, "duty-rayong", now)
    assert accepted.state == ACCEPTED
    rig.job.refresh_calendar()
    engine.tick(now + 60 * S)
    stale = [a for a in rig.alerts.list(limit=100) if a.rule == "stale"]
    assert {(a.factory, a.ongoing) for a in stale} == {(BIOMASS, False), (STARCH, True)}
    # Its public state is shutdown (all its monitors are inside the window); the other's is not.
    states = {
        p.tags["factory"]: p.fields[PublicState.STATE]
        for p in rig.store.query_points(PublicState.NAME, {}, 0, 2**62)
    }
    assert states[BIOMASS] == PUBLIC_SHUTDOWN and states[STARCH] != PUBLIC_SHUTDOWN
    # The window's hours leave the expected minutes: a shut day is no malfunction.
    assert rig.job.calendar.shut_ns(BIOMASS, BOILER, now - 3600 * S, now) == 3600 * S
    with pytest.raises(DutyError, match="accepted already"):
        rig.duties.decide_shutdown(window.id, False, "duty-rayong", now)


def test_round_half_up_is_the_rounding_of_stored_checks() -> None:
    assert round_half_up(120.5, 0) == 121.0


def test_an_accepted_shutdown_leaves_the_expected_hours_of_the_compliance_report(rig: Rig) -> None:
    from datetime import date

    from alerts.duties.report import add_duty_sections
    from alerts.report import compliance_report, to_csv

    day = date(2026, 11, 20)
    start = t("2026-11-20T10:00:00+07:00")
    window = rig.duties.file_notice(
        CEMS, SHUTDOWN, BIOMASS, BOILER, start, start + 4 * 3600 * S, "maintenance", "op", start - 86_400 * S
    )

    def so2(officers: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        report = compliance_report(rig.registry, rig.store, day, day, BIOMASS)
        add_duty_sections(report, rig.job, day, day, BIOMASS, start + 86_400 * S, officers=officers)
        [row] = [c for c in report["factories"][0]["channels"] if c["channel"] == "so2"]
        return row, report

    filed, _ = so2(False)
    assert filed["expected_hours"] == 24 and len(filed["invalid_hours"]) == 24
    rig.duties.decide_shutdown(window.id, True, "duty-rayong", start)
    row, report = so2(False)
    assert row["expected_hours"] == 20 and row["shutdown_hours"] == 4
    assert len(row["invalid_hours"]) == 20
    [dev] = [d for d in report["duties"]["devices"] if d["device"] == BOILER]
    assert dev["accepted_shutdown_hours"] == 4.0 and dev["expected_hours"] == 20.0
    assert [n["kind"] for n in dev["notices"]] == ["shutdown"]
    assert "integrity" not in report
    csv_text = to_csv(report)
    assert "duty_notice,kaeng-khoi-biomass,boiler-1" in csv_text and "accepted_shutdown" in csv_text


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_every_duty_record_round_trips_on_both_state_databases(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from statedb import open_state_db

    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else None
    db = open_state_db(url, tmp_path / "state.db")
    try:
        d = DutyStore(db, RULES, BKK)
        at = t("2026-11-10T15:00:00+07:00")
        n = d.file_notice(CEMS, MALFUNCTION, BIOMASS, BOILER, at, None, "analyser", "op", at)
        assert n.report_due_ns == t("2026-11-12T00:00:00+07:00")
        pdf = b"%PDF-1.7\n" + bytes(range(256)) * 4  # binary content survives as it was
        a = d.add_attachment(BIOMASS, "stack/test.pdf", pdf, "op", at)
        assert a.filename == "stack_test.pdf" and d.attachment(a.id)[1] == pdf
        test = d.add_stack_test(n.id, at + 86_400 * S, {"so2": 41.5}, "Lab", "op", at + 2 * 86_400 * S, a.id)
        assert d.stack_tests([n.id]) == [test]
        with pytest.raises(DutyError, match="belongs to another factory"):
            d.add_lab_check(STARCH, OUTFALL, "cod", at, 100, 101, "mg/L", "", "op", at, a.id)
        check = d.add_lab_check(STARCH, OUTFALL, "cod", at, 117.5, 120.5, "mg/L", "", "op", at)
        assert (check.lab_value, check.online_value, check.deviation) == (118.0, 121.0, 3.0)
        item = {
            "id": "00112233445566aa",
            "factory": BIOMASS,
            "device": BOILER,
            "kind": "replay",
            "month": "2026-11",
        }
        assert d.record_findings([item | {"score": 2.0}], at) == 1
        assert d.record_findings([item | {"score": 3.0}], at + 1) == 0
        d.dispose(item["id"], "dismissed", "olivia", at + 2, "a logger restart")
        [kept] = d.findings(["2026-11"], disposition="dismissed")
        assert kept.score == 3.0 and kept.note == "a logger restart"
        assert d.findings(["2026-11"], disposition="none") == []
        with pytest.raises(DutyError, match="disposition: 'ignore'"):
            d.dispose(item["id"], "ignore", "olivia", at)
    finally:
        db.close()
