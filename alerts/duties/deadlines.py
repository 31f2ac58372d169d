"""The dates a duty falls due, from the periods in alerts/duties/duties.yaml.

Periods count the town's local days: "within N days" of an event ends at the end of the Nth
local day after the day the event happened (N = 0: the end of the same day), so a malfunction
at 23:50 and one at 00:10 the next day are due a day apart, as a calendar reads. A deadline is
the first instant that is late (local midnight), in UTC nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerts.duties.rules import DutyRules
from eit.timeutil import NS_PER_S

DAY_NS = 86_400 * NS_PER_S


def local_day(ts_ns: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, tz).date()


def day_start_ns(day: date, tz: ZoneInfo) -> int:
    """Local midnight starting ``day``, in UTC nanoseconds."""
    return int(datetime.combine(day, time(0), tz).timestamp()) * NS_PER_S


def within_days(event_ns: int, days: int, tz: ZoneInfo) -> int:
    """The deadline of something due within ``days`` local days of ``event_ns``."""
    return day_start_ns(local_day(event_ns, tz) + timedelta(days=days + 1), tz)


@dataclass(frozen=True, slots=True)
class MalfunctionDeadlines:
    report_due_ns: int
    fix_due_ns: int | None  # None: the duty sets no repair period (CEMS: the substitute test)


def malfunction_deadlines(
    system: str, started_ns: int, rules: DutyRules, tz: ZoneInfo
) -> MalfunctionDeadlines:
    """When a malfunction starting at ``started_ns`` must be reported and fixed."""
    if system == "wpms":
        return MalfunctionDeadlines(
            within_days(started_ns, rules.wpms_report_within_days, tz),
            within_days(started_ns, rules.wpms_fix_within_days, tz),
        )
    if system == "cems":
        return MalfunctionDeadlines(within_days(started_ns, rules.cems_report_within_days, tz), None)
    raise ValueError(f"unknown monitoring system {system!r} (wpms or cems)")


def substitute_test_required_ns(started_ns: int, rules: DutyRules) -> int:
    """When a CEMS that is down since ``started_ns`` has been down long enough to need a
    substitute stack test (``required_after_days`` full days)."""
    return started_ns + rules.substitute_test_after_days * DAY_NS


def substitute_test_due_ns(started_ns: int, rules: DutyRules, tz: ZoneInfo) -> int:
    """The deadline of the substitute stack test of a CEMS down since ``started_ns``."""
    return within_days(substitute_test_required_ns(started_ns, rules), rules.substitute_test_due_days, tz)


def needs_substitute_test(started_ns: int, ended_ns: int | None, now_ns: int, rules: DutyRules) -> bool:
    """Whether the outage lasted (or lasts, while open) ``required_after_days`` or more."""
    end = ended_ns if ended_ns is not None else now_ns
    return end >= substitute_test_required_ns(started_ns, rules)


@dataclass(frozen=True, slots=True)
class LabCheckPeriod:
    """One required lab check: the month it is sampled in, the reminder's start, the end of
    the sampling month (a check not sampled by then is missed)."""

    year: int
    month: int
    remind_from_ns: int
    sample_by_ns: int

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def lab_check_periods(first: date, last: date, rules: DutyRules, tz: ZoneInfo) -> list[LabCheckPeriod]:
    """The lab-check months whose sampling month overlaps [first, last]."""
    out = []
    for year in range(first.year, last.year + 1):
        for month in rules.lab_check_months:
            start = date(year, month, 1)
            after = date(year + month // 12, month % 12 + 1, 1)
            if after <= first or start > last:
                continue
            out.append(
                LabCheckPeriod(
                    year,
                    month,
                    day_start_ns(date(year, month, rules.lab_remind_from_day), tz),
                    day_start_ns(after, tz),
                )
            )
    return out


def lab_report_due_ns(sampled_ns: int, rules: DutyRules, tz: ZoneInfo) -> int:
    """The deadline of a lab check's report (E = M - T) after its grab sample."""
    return within_days(sampled_ns, rules.lab_report_within_days, tz)
