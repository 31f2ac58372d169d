"""Golden tests of the duties' deadlines and numbers, every date computed by hand in the town's
time zone (Asia/Bangkok, UTC+7, no daylight saving): "within N days" of an event ends at local
midnight after the Nth day following the day of the event."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.duties.deadlines import (
    lab_check_periods,
    lab_report_due_ns,
    malfunction_deadlines,
    needs_substitute_test,
    substitute_test_due_ns,
)
from alerts.duties.rules import load_duty_rules
from alerts.duties.store import round_half_up
from eit.errors import ConfigError
from eit.timeutil import ns_to_iso, parse_iso_ns
from testbed.services import REPO

BKK = ZoneInfo("Asia/Bangkok")
RULES = load_duty_rules()


def t(text: str) -> int:
    return parse_iso_ns(text)


@pytest.mark.parametrize(
    ("started", "report_due", "fix_due"),
    [
        # 10 Nov 15:00 local: report by the end of 11 Nov, fix by the end of 17 Nov.
        ("2026-11-10T15:00:00+07:00", "2026-11-11T17:00:00Z", "2026-11-17T17:00:00Z"),
        # 23:50 and 00:10 the next day are due a day apart, as a calendar reads.
        ("2026-11-10T23:50:00+07:00", "2026-11-11T17:00:00Z", "2026-11-17T17:00:00Z"),
        ("2026-11-11T00:10:00+07:00", "2026-11-12T17:00:00Z", "2026-11-18T17:00:00Z"),
        # Across the year's end: report by the end of 31 Dec, fix by the end of 6 Jan.
        ("2026-12-30T10:00:00+07:00", "2026-12-31T17:00:00Z", "2027-01-06T17:00:00Z"),
        # Across February of a common year: 25 Feb + 7 days = 4 Mar.
        ("2027-02-25T08:00:00+07:00", "2027-02-26T17:00:00Z", "2027-03-04T17:00:00Z"),
    ],
)
def test_a_wpms_malfunction_is_reported_the_same_or_next_day_and_fixed_within_seven_days(
    started: str, report_due: str, fix_due: str
) -> None:
    d = malfunction_deadlines("wpms", t(started), RULES, BKK)
    assert ns_to_iso(d.report_due_ns) == report_due
    assert d.fix_due_ns is not None and ns_to_iso(d.fix_due_ns) == fix_due


def test_a_cems_malfunction_has_a_report_deadline_and_no_fix_deadline() -> None:
    d = malfunction_deadlines("cems", t("2026-11-10T15:00:00+07:00"), RULES, BKK)
    assert ns_to_iso(d.report_due_ns) == "2026-11-11T17:00:00Z"
    assert d.fix_due_ns is None
    with pytest.raises(ValueError, match="unknown monitoring system 'poms'"):
        malfunction_deadlines("poms", 0, RULES, BKK)


def test_a_cems_down_fifteen_days_needs_a_substitute_stack_test_with_its_deadline() -> None:
    started = t("2026-11-01T08:00:00+07:00")
    # Down 15 full days at 16 Nov 08:00 local; the test is due by the end of 23 Nov.
    assert not needs_substitute_test(started, t("2026-11-16T07:59:00+07:00"), 0, RULES)
    assert needs_substitute_test(started, t("2026-11-16T08:00:00+07:00"), 0, RULES)
    assert not needs_substitute_test(started, None, t("2026-11-15T23:00:00+07:00"), RULES)
    assert needs_substitute_test(started, None, t("2026-11-20T00:00:00+07:00"), RULES)
    assert ns_to_iso(substitute_test_due_ns(started, RULES, BKK)) == "2026-11-23T17:00:00Z"


def test_lab_checks_fall_in_june_and_december_and_are_reported_within_thirty_days() -> None:
    periods = lab_check_periods(date(2026, 1, 1), date(2026, 12, 31), RULES, BKK)
    assert [p.label for p in periods] == ["2026-06", "2026-12"]
    june, december = periods
    assert ns_to_iso(june.remind_from_ns) == "2026-05-31T17:00:00Z"  # 1 Jun 00:00 local
    assert ns_to_iso(june.sample_by_ns) == "2026-06-30T17:00:00Z"  # 1 Jul 00:00 local
    assert ns_to_iso(december.sample_by_ns) == "2026-12-31T17:00:00Z"  # 1 Jan 2027 00:00 local
    # Sampled 15 Jun 10:00 local: reported by the end of 15 Jul.
    assert ns_to_iso(lab_report_due_ns(t("2026-06-15T10:00:00+07:00"), RULES, BKK)) == "2026-07-15T17:00:00Z"
    # A period overlapping the range only at its end is listed; one before it is not.
    edge = lab_check_periods(date(2026, 6, 30), date(2026, 7, 10), RULES, BKK)
    assert [p.label for p in edge] == ["2026-06"]
    assert lab_check_periods(date(2026, 7, 1), date(2026, 11, 30), RULES, BKK) == []


@pytest.mark.parametrize(
    ("value", "digits", "rounded"),
    [
        (20.25, 1, 20.3),
        (0.05, 1, 0.1),
        (120.5, 0, 121.0),
        (2.675, 2, 2.68),
        (-2.25, 1, -2.3),
        (118.0, 0, 118.0),
    ],
)
def test_reported_values_round_half_up_on_the_decimal_text(value: float, digits: int, rounded: float) -> None:
    assert round_half_up(value, digits) == rounded


def test_every_period_names_its_source_and_unconfirmed_ones_say_so() -> None:
    sources = RULES.to_json()
    assert sources["wpms.malfunction.fix_within_days"] == {
        "value": 7,
        "source": "fixed within 7 days",
        "confirmed": True,
    }
    assert sources["cems.substitute_test.due_within_days"]["confirmed"] is False
    assert all(isinstance(s["source"], str) and s["source"] for s in sources.values())


def test_a_wrong_duties_file_names_the_file_and_key(tmp_path: Path) -> None:
    text = (REPO / "alerts" / "duties" / "duties.yaml").read_text()
    bad = tmp_path / "duties.yaml"
    bad.write_text(text.replace("fix_within_days: {value: 7,", "fix_within_days: {value: -7,"))
    with pytest.raises(ConfigError) as err:
        load_duty_rules(bad)
    assert str(bad) in str(err.value) and "wpms.malfunction.fix_within_days.value" in str(err.value)
    bad.write_text(text.replace("months: {value: [6, 12],", "months: {value: [6, 13],"))
    with pytest.raises(ConfigError, match=r"wpms\.lab_check\.months"):
        load_duty_rules(bad)
