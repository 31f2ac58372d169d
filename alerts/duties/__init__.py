"""Duties of factories with online monitors (WPMS effluent, CEMS stacks) under the DIW
notifications, and the officers' integrity findings: notices, lab checks, substitute stack tests,
attached reports, the deadlines tracked from data (alerts/duties/duties.yaml), and the job that
opens cases for missed deadlines."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from alerts.duties.calendar import ShutdownCalendar
from alerts.duties.job import DutiesJob, DutiesTicker, NotLeader, duty_devices
from alerts.duties.rules import DutyRules, load_duty_rules, shipped_rules
from alerts.duties.store import DutyStore
from alerts.model import AlertEvent
from alerts.state import AlertStore
from eit.registry import Registry
from eit.store import Store

__all__ = [
    "DutiesJob",
    "DutiesTicker",
    "DutyRules",
    "DutyStore",
    "NotLeader",
    "ShutdownCalendar",
    "build_duties_job",
    "duty_devices",
    "load_duty_rules",
]


def build_duties_job(
    registry: Registry,
    store: Store,
    alerts: AlertStore,
    *,
    emit: Callable[[AlertEvent], None] | None = None,
    rules: DutyRules | None = None,
) -> DutiesJob:
    """The duties job over the state database of ``alerts`` (shared with the cases)."""
    rules = rules or shipped_rules()
    duties = DutyStore(alerts.db, rules, ZoneInfo(registry.timezone))
    return DutiesJob(registry, store, duties, alerts, ShutdownCalendar(registry), rules, emit=emit)
