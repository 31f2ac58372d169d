"""What the HTTP API reads and changes: the time-series store (the contract's interface,
eit/store.py), the alert store with the operators' responses (alerts/state.py), the accounts,
the dead letters and the report. The
composition root (server/serve.py) hands the real ones to :func:`server.api.create_app`; the API
knows nothing of how they are built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from alerts.duties import DutiesJob
from alerts.notifiers.preferences import PreferenceStore
from alerts.notifiers.queue import DeliveryQueue
from alerts.state import AlertStore
from eit.registry import Registry
from eit.store import Store
from eit.timeutil import now_ns
from ingest.deadletters import DeadLetterStore
from server.accounts import Accounts

# compliance_report(first_day, last_day, factory or None) -> the report (`eit report compliance`)
ReportMaker = Callable[[date, date, str | None], dict[str, Any]]
# render(report, "json" | "csv" | "html") -> text
ReportRenderer = Callable[[dict[str, Any], str], str]
# report_file(report, "html" | "pdf" | "xlsx", "th" | "en") -> the file's bytes, for people
ReportFile = Callable[[dict[str, Any], str, str], bytes]
# The text of an alert in "th" or "en".
AlertText = Callable[[Any, str], str]


@dataclass(slots=True)
class ApiSources:
    registry: Registry
    store: Store
    alerts: AlertStore
    accounts: Accounts
    report: ReportMaker
    render_report: ReportRenderer
    alert_text: AlertText
    deadletters: DeadLetterStore | None = None
    # The notifiers' delivery queue: what each alert's notifications became.
    notifications: DeliveryQueue | None = None
    clock: Callable[[], int] = field(default=now_ns)
    # The report as a file for people (html, pdf, xlsx in Thai or English); None: json and csv only.
    report_file: ReportFile | None = None
    # A factory whose newest reading is older than this shows as "no data".
    stale_after_s: float = 3600.0
    # Accounts' notification preferences (default: in the alert store's state database), and
    # the kinds of the server's notifiers (which channel kinds it delivers).
    preferences: PreferenceStore | None = None
    notifier_kinds: tuple[str, ...] = ()
    # Duties of WPMS and CEMS monitors and the integrity findings (alerts/duties/).
    duties: DutiesJob | None = None
