"""The duties job: what the platform checks on its own, every interval.

- It refreshes the accepted shutdown windows the rules read (alerts/duties/calendar.py).
- It infers malfunctions from the data: a local day of a WPMS or CEMS monitor with a smaller
  share of valid minutes than ``inferred.daily_share`` (D fault and B communication flags are
  not valid; minutes inside an accepted shutdown are not expected) is a malfunction starting at
  its first minute without valid data, unless a malfunction notice covers that day already. A
  later day with enough data fixes an inferred malfunction the factory did not take over.
- It opens a case (the cases of alerts/state.py, with a notification to the officers) for each
  deadline missed: a malfunction not reported, a WPMS malfunction not fixed in time, a lab check
  not sampled in its month, a substitute stack test not entered in time; the case's condition
  ends when the duty is done.
- Once a month (and on demand) it runs the integrity analytics over the previous month and
  keeps the findings for officers (alerts/duties/store.py), whose disposition a rerun keeps.

On the RabbitMQ cluster one worker runs it, the holder of the town-wide jobs' lease
(server/town_jobs.py), so that no case or notification is made twice: the ticker runs the job
only while ``leader`` says yes (every worker refreshes its shutdown windows, which its rules
read), and the run asks again before each of its writes and stops with :class:`NotLeader` once
the answer is no (a lease that lapsed mid-run, on a worker paused beyond it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from alerts.duties.calendar import ShutdownCalendar
from alerts.duties.deadlines import (
    LabCheckPeriod,
    day_start_ns,
    lab_check_periods,
    local_day,
    needs_substitute_test,
    substitute_test_due_ns,
)
from alerts.duties.model import ACCEPTED, CEMS, INFERRED, MALFUNCTION, OPEN, SHUTDOWN, WPMS, Notice
from alerts.duties.rules import DutyRules
from alerts.duties.store import DutyStore
from alerts.messages import render
from alerts.model import ONGOING, Alert, AlertEvent, AlertKey
from alerts.state import AlertStore
from eit.errors import EitError
from eit.registry import Registry
from eit.store import Store
from eit.supervise import Stage, SupervisedLoop, Supervisor
from eit.timeutil import NS_PER_S, now_ns

log = logging.getLogger("alerts.duties")

MINUTE_NS = 60 * NS_PER_S
DUTIES_ACTOR = "duties"
RULE_NOTICE = "duty_notice"
RULE_FIX = "duty_fix"
RULE_LAB = "duty_lab_check"
RULE_LAB_DUE = "duty_lab_check_due"  # the reminder of a lab check due this month
RULE_STACK_TEST = "duty_stack_test"
CALENDAR_REFRESH_S = 60.0


class NotLeader(EitError):
    """This worker no longer holds the town-wide jobs' lease: the duties run stops before its next
    write (another worker runs the duties now)."""


@dataclass(frozen=True, slots=True)
class DutyDevice:
    system: str
    factory: str
    device: str
    channels: tuple[str, ...]


def duty_devices(registry: Registry) -> Iterator[DutyDevice]:
    """The monitors with duties: a WPMS factory's effluent devices, a CEMS factory's stacks."""
    for f in registry.factories.values():
        for d in f.devices.values():
            if f.wpms and d.kind == "effluent":
                yield DutyDevice(WPMS, f.id, d.id, tuple(d.channels))
            elif f.cems and d.kind == "stack":
                yield DutyDevice(CEMS, f.id, d.id, tuple(d.channels))


@dataclass(slots=True)
class JobResult:
    inferred: int = 0
    fixed: int = 0
    opened: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    integrity_month: str | None = None
    integrity_new: int = 0


class DutiesJob:
    def __init__(
        self,
        registry: Registry,
        store: Store,
        duties: DutyStore,
        alerts: AlertStore,
        calendar: ShutdownCalendar,
        rules: DutyRules,
        *,
        emit: Callable[[AlertEvent], None] | None = None,
        lookback_days: int = 3,
        lab_lookback_days: int = 45,
        integrity_monthly: bool = True,
    ) -> None:
        self.registry = registry
        self.store = store
        self.duties = duties
        self.alerts = alerts
        self.calendar = calendar
        self.rules = rules
        self.emit = emit
        self.tz = ZoneInfo(registry.timezone)
        self.lookback_days = lookback_days
        self.lab_lookback_ns = lab_lookback_days * 86_400 * NS_PER_S
        self.integrity_monthly = integrity_monthly
        self._checked: set[tuple[str, str, date]] = set()
        self._leader: Callable[[], bool] | None = None

    def run_once(self, now: int, leader: Callable[[], bool] | None = None) -> JobResult:
        """One run at ``now``. With ``leader``, each write first asks it and the run stops with
        :class:`NotLeader` when it says no."""
        self._leader = leader
        try:
            return self._run_once(now)
        finally:
            self._leader = None

    def _may_write(self) -> None:
        if self._leader is not None and not self._leader():
            raise NotLeader("this worker no longer holds the town-wide jobs' lease")

    def _run_once(self, now: int) -> JobResult:
        result = JobResult()
        self.refresh_calendar()
        today = local_day(now, self.tz)
        for dev in duty_devices(self.registry):
            if not self.store.latest(dev.factory, dev.device):
                continue  # never reported: not installed yet, nothing to infer from
            for back in range(self.lookback_days, 0, -1):
                day = today - timedelta(days=back)
                if (dev.factory, dev.device, day) in self._checked:
                    continue  # a closed day is read once per process
                self._check_day(dev, day, now, result)
                self._checked.add((dev.factory, dev.device, day))
        oldest = today - timedelta(days=self.lookback_days)
        self._checked = {k for k in self._checked if k[2] >= oldest}
        self._deadlines(now, result)
        if self.integrity_monthly:
            self._monthly_integrity(today, now, result)
        return result

    def refresh_calendar(self) -> None:
        self.calendar.replace(self.duties.notices(kind=SHUTDOWN, state=ACCEPTED, limit=100_000))

    # -- malfunctions the data show ----------------------------------------------------------------
    def _valid_minutes(self, dev: DutyDevice, start: int, end: int) -> set[int]:
        minutes: set[int] = set()
        for channel in dev.channels:
            for b in self.store.aggregate(
                dev.factory, dev.device, channel, start, end, 60, "count", valid_only=True
            ):
                if b.value > 0:
                    minutes.add(b.start_ns)
        return minutes

    def _check_day(self, dev: DutyDevice, day: date, now: int, result: JobResult) -> None:
        start, end = day_start_ns(day, self.tz), day_start_ns(day + timedelta(days=1), self.tz)
        expected = [
            m for m in range(start, end, MINUTE_NS) if not self.calendar.covers(dev.factory, dev.device, m)
        ]
        if not expected:
            return
        valid = self._valid_minutes(dev, start, end)
        share = sum(1 for m in expected if m in valid) / len(expected)
        threshold = self.rules.wpms_daily_share if dev.system == WPMS else self.rules.cems_daily_share
        if share < threshold:
            if self.duties.notices(dev.factory, dev.device, MALFUNCTION, start_ns=start, end_ns=end):
                return  # a notice covers the day: filed, or inferred before
            if not self._valid_minutes(dev, start - 86_400 * NS_PER_S, start):
                return  # no valid data the day before either: not installed yet (or already down)
            first_gap = next(m for m in expected if m not in valid)
            self._may_write()
            made = self.duties.infer_malfunction(
                dev.system,
                dev.factory,
                dev.device,
                first_gap,
                f"{day.isoformat()}: {share:.1%} of the expected minutes hold valid data"
                f" (at least {threshold:.0%} counts as working)",
                now,
            )
            if made is not None:
                result.inferred += 1
            return
        for n in self.duties.notices(dev.factory, dev.device, MALFUNCTION, state=OPEN):
            if n.origin == INFERRED and n.filed_ns is None and n.started_ns < start:
                fixed_at = min(valid) if valid else start
                self._may_write()
                self.duties.fix(n.id, fixed_at, DUTIES_ACTOR, now, f"{day.isoformat()}: {share:.1%} valid")
                result.fixed += 1

    # -- deadlines ------------------------------------------------------------------------------------
    def _deadlines(self, now: int, result: JobResult) -> None:
        malfunctions = self.duties.notices(kind=MALFUNCTION, limit=100_000)
        tested = {
            t.notice_id for t in self.duties.stack_tests([n.id for n in malfunctions if n.system == CEMS])
        }
        for n in malfunctions:
            self._notice_deadlines(n, n.id in tested, now, result)
        self._lab_checks(now, result)
        self._lab_reminders(now, result)

    def _notice_deadlines(self, n: Notice, tested: bool, now: int, result: JobResult) -> None:
        source = self.rules.wpms_source if n.system == WPMS else self.rules.cems_source
        base = {
            "system": n.system.upper(),
            "factory": n.factory,
            "device": n.device,
            "started": self._local(n.started_ns),
            "source": source,
        }
        # One case per notice and duty: the parameter names the notice, so a late report still
        # owed for one outage never hides the next outage's.
        subject = f"notice {n.id}"
        key: AlertKey
        if n.report_due_ns is not None:
            key = (n.factory, n.device, subject, RULE_NOTICE)
            # Only the factory's report does this duty: an outage that ended unreported stays owed.
            done = n.filed_ns is not None
            missed = n.filed_ns is None and now >= n.report_due_ns
            self._case(
                key,
                n.started_ns,
                missed,
                done,
                "duty_notice_missing",
                base | {"due": self._local(n.report_due_ns)},
                now,
                result,
            )
        if n.fix_due_ns is not None:
            key = (n.factory, n.device, subject, RULE_FIX)
            missed = n.state == OPEN and now >= n.fix_due_ns
            params = base | {"due": self._local(n.fix_due_ns), "days": str(self.rules.wpms_fix_within_days)}
            self._case(key, n.started_ns, missed, n.state != OPEN, "duty_fix_overdue", params, now, result)
        if n.system == CEMS and needs_substitute_test(n.started_ns, n.ended_ns, now, self.rules):
            due = substitute_test_due_ns(n.started_ns, self.rules, self.tz)
            key = (n.factory, n.device, subject, RULE_STACK_TEST)
            params = base | {"due": self._local(due), "days": str(self.rules.substitute_test_after_days)}
            self._case(
                key,
                n.started_ns,
                now >= due and not tested,
                tested,
                "duty_stack_test_overdue",
                params,
                now,
                result,
            )

    def _lab_checks(self, now: int, result: JobResult) -> None:
        today = local_day(now, self.tz)
        first = local_day(now - self.lab_lookback_ns, self.tz)
        periods = [
            p
            for p in lab_check_periods(first, today, self.rules, self.tz)
            if p.sample_by_ns > now - self.lab_lookback_ns
        ]
        for dev in duty_devices(self.registry):
            if dev.system != WPMS:
                continue
            for p in periods:
                month_start = day_start_ns(date(p.year, p.month, 1), self.tz)
                owed_from = p.sample_by_ns - self.rules.lab_new_monitor_days * 86_400 * NS_PER_S
                if not self.store.count(dev.factory, dev.device, None, month_start, owed_from):
                    continue  # the monitor did not run early enough in the month to owe its check
                checks = self.duties.lab_checks(dev.factory, dev.device, month_start, p.sample_by_ns)
                for channel in (c for c in self.rules.lab_channels if c in dev.channels):
                    done = any(c.channel == channel for c in checks)
                    params = {
                        "factory": dev.factory,
                        "device": dev.device,
                        "channel": channel.upper(),
                        "period": p.label,
                        "source": self.rules.wpms_source,
                    }
                    key = (dev.factory, dev.device, f"{channel} {p.label}", RULE_LAB)
                    self._case(
                        key,
                        month_start,
                        now >= p.sample_by_ns and not done,
                        done,
                        "duty_lab_check_missed",
                        params,
                        now,
                        result,
                    )

    def reminders(self, now: int, factory: str | None = None) -> list[dict[str, str]]:
        """Lab checks due this month and not yet entered (from the reminder day to the month's end)."""
        return [
            {
                "duty": "lab_check",
                "factory": dev.factory,
                "device": dev.device,
                "channel": channel,
                "period": p.label,
                "sample_by": self._local(p.sample_by_ns),
                "source": self.rules.wpms_source,
            }
            for dev, channel, p in self._due_lab_checks(now, factory)
        ]

    def _due_lab_checks(
        self, now: int, factory: str | None = None
    ) -> Iterator[tuple[DutyDevice, str, LabCheckPeriod]]:
        """(device, channel, period) of each lab check due this month and not yet entered."""
        today = local_day(now, self.tz)
        for p in lab_check_periods(today, today, self.rules, self.tz):
            if not p.remind_from_ns <= now < p.sample_by_ns:
                continue
            for dev in duty_devices(self.registry):
                if dev.system != WPMS or (factory is not None and dev.factory != factory):
                    continue
                month_start = day_start_ns(date(p.year, p.month, 1), self.tz)
                entered = {
                    c.channel
                    for c in self.duties.lab_checks(dev.factory, dev.device, month_start, p.sample_by_ns)
                }
                for channel in (c for c in self.rules.lab_channels if c in dev.channels and c not in entered):
                    yield dev, channel, p

    def _lab_reminders(self, now: int, result: JobResult) -> None:
        """Send each reminder once: a case of severity ``info`` per lab check due, opened from the
        reminder day (notified as any case, to the factory's recipients) and ended when the check
        is entered or its month is over (then the missed check's case takes over). A monitor is
        reminded once it has run ``lab_new_monitor_days`` (its data goes back that far within
        the last 45 days), as it starts owing a month's check then."""
        due: set[AlertKey] = set()
        week_ns = self.rules.lab_new_monitor_days * 86_400 * NS_PER_S
        running: dict[tuple[str, str], bool] = {}
        for dev, channel, p in self._due_lab_checks(now):
            where = (dev.factory, dev.device)
            if where not in running:
                running[where] = (
                    self.store.count(*where, None, now - 45 * 86_400 * NS_PER_S, now - week_ns) > 0
                )
            if not running[where]:
                continue
            key = (dev.factory, dev.device, f"{channel} {p.label}", RULE_LAB_DUE)
            due.add(key)
            params = {
                "factory": dev.factory,
                "device": dev.device,
                "channel": channel.upper(),
                "period": p.label,
                "sample_by": self._local(p.sample_by_ns),
                "source": self.rules.wpms_source,
            }
            self._case(key, p.remind_from_ns, True, False, "duty_lab_check_due", params, now, result, "info")
        for case in self.alerts.list(condition=ONGOING, limit=100_000):
            if case.rule == RULE_LAB_DUE and case.key not in due:
                self._case(
                    case.key,
                    case.period_start_ns or 0,
                    False,
                    True,
                    "duty_lab_check_due",
                    {},
                    now,
                    result,
                    end_reason="no longer due: the check is entered or its month is over",
                )

    def _case(
        self,
        key: AlertKey,
        episode_ns: int,
        missed: bool,
        done: bool,
        template: str,
        params: dict[str, str],
        now: int,
        result: JobResult,
        severity: str = "warning",
        end_reason: str = "the duty is done",
    ) -> None:
        """Open the case of a missed deadline once per episode; end it when the duty is done."""
        latest = self.alerts.latest_for_key(key)
        same: Alert | None = latest if latest is not None and latest.period_start_ns == episode_ns else None
        if missed and not done and same is None:
            self._may_write()
            case = self.alerts.open_alert(
                key,
                severity,
                render(template, params, "en"),
                now,
                template=template,
                params=params,
                period_start_ns=episode_ns,
                previous_id=latest.id if latest is not None else None,
            )
            if case is not None:
                result.opened.append(f"{key[3]} {key[0]}/{key[1]} #{case.id}")
                if self.emit is not None:
                    self.emit(AlertEvent("opened", case))
        elif done and same is not None and same.ongoing:
            self._may_write()
            ended = self.alerts.end_condition(key, now, end_reason)
            if ended is not None:
                result.ended.append(f"{key[3]} {key[0]}/{key[1]} #{ended.id}")
                if self.emit is not None:
                    self.emit(AlertEvent("resolved", ended))

    def _local(self, ts_ns: int) -> str:
        from datetime import datetime

        return datetime.fromtimestamp(ts_ns / NS_PER_S, self.tz).strftime("%Y-%m-%d %H:%M")

    # -- integrity ---------------------------------------------------------------------------------------
    def _monthly_integrity(self, today: date, now: int, result: JobResult) -> None:
        last = today.replace(day=1) - timedelta(days=1)
        label = f"{last.year:04d}-{last.month:02d}"
        if self.duties.audit(f"integrity/{label}"):
            return
        result.integrity_month = label
        result.integrity_new = self.run_integrity(last.replace(day=1), last, now, DUTIES_ACTOR)

    def run_integrity(self, first: date, last: date, now: int, actor: str) -> int:
        """Run the integrity analytics over [first, last] and keep the findings; returns how
        many are new."""
        from alerts.integrity import integrity_report

        report = integrity_report(self.registry, self.store, first, last)
        self._may_write()
        new = self.duties.record_findings(report["findings"], now)
        label = f"{first.year:04d}-{first.month:02d}"
        self.duties.note_run(
            f"integrity/{label}",
            now,
            actor,
            f"{first}..{last}: {len(report['findings'])} findings, {new} new",
        )
        return new


class DutiesTicker(SupervisedLoop):
    """Runs :meth:`DutiesJob.run_once` every ``interval_s`` on a supervised thread (stage
    ``duties``); a run that fails is logged and tried at the next interval. Given ``leader``, it
    runs the job only while that says yes, looking every ``leader_poll_s`` (a worker that becomes
    the leader runs at once); the shutdown windows are refreshed whatever it says."""

    leader_poll_s = 1.0

    def __init__(
        self,
        job: DutiesJob,
        interval_s: float,
        supervisor: Supervisor,
        clock: Callable[[], int] = now_ns,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(supervisor, Stage("duties"))
        self.job = job
        self.interval_s = interval_s
        self.clock = clock
        self.leader = leader
        self.runs = 0

    def _run(self) -> None:
        # The accepted shutdown windows are read every minute (an officer may decide in another
        # process, `eit api`); the rest runs every interval, the first time at start (or when
        # this worker becomes the leader).
        refresh_s = min(self.interval_s, CALENDAR_REFRESH_S)
        wake_s = refresh_s if self.leader is None else min(refresh_s, self.leader_poll_s)
        last_run: float | None = None
        last_refresh = -refresh_s
        while True:
            leading = self.leader is None or self.leader()
            if not leading:
                last_run = None
            now = self.clock()
            run = leading and (last_run is None or (now - last_run) / NS_PER_S >= self.interval_s)
            # A wake of the leader-less loop always refreshes (its wait is refresh_s).
            refresh = time.monotonic() - last_refresh >= refresh_s - wake_s / 2
            if not run and not refresh:
                self.stage.progress()  # waiting for leadership or the next refresh: on purpose
            else:
                with self.stage.working():
                    last_refresh = time.monotonic()
                    try:
                        if run:
                            last_run = now
                            self.runs += 1
                            self.job.run_once(now, self.leader)
                        else:
                            self.job.refresh_calendar()
                    except EitError as exc:  # a store or database that cannot be reached: next time
                        log.warning("duties run postponed: %s", exc)
                    except Exception:
                        log.exception("duties run failed")
            if self._stop.wait(wake_s):
                return
