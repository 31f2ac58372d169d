"""What the HTTP API reads and changes, as small protocols: the time-series store, the alert
store, the dead letters and the report. The composition root (eit/serve.py) hands the real
ones to :func:`eit.api.create_app`; the API knows nothing of how they are built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from eit.api.accounts import Accounts
from eit.model import Reading
from eit.registry import Registry
from eit.timeutil import now_ns

# The store's aggregate functions (ingest/store/base.py AGGREGATES; a test keeps them equal).
AGGREGATES = ("mean", "min", "max", "count", "sum", "first", "last")


class BucketLike(Protocol):
    @property
    def start_ns(self) -> int: ...

    @property
    def value(self) -> float: ...


class PointLike(Protocol):
    @property
    def tags(self) -> Mapping[str, str]: ...

    @property
    def ts_ns(self) -> int: ...

    @property
    def fields(self) -> Mapping[str, float | int | bool | str]: ...


class SeriesStore(Protocol):
    """The part of the time-series store (ingest.store.base.Store) the API reads."""

    kind: str

    def readings(
        self, factory: str, device: str, channel: str, start_ns: int, end_ns: int, limit: int | None = None
    ) -> Sequence[Reading]: ...

    def aggregate(
        self,
        factory: str,
        device: str,
        channel: str,
        start_ns: int,
        end_ns: int,
        every_s: int,
        fn: str = "mean",
        valid_only: bool = False,
    ) -> Sequence[BucketLike]: ...

    def latest(self, factory: str | None = None, device: str | None = None) -> Sequence[Reading]: ...

    def query_points(
        self, measurement: str, tags: Mapping[str, str], start_ns: int, end_ns: int
    ) -> Sequence[PointLike]: ...


class AlertLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def factory(self) -> str: ...

    @property
    def severity(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def rule(self) -> str: ...

    @property
    def provisional(self) -> bool: ...

    def to_json(self) -> dict[str, Any]: ...


class AuditLike(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class AlertBook(Protocol):
    """The alert lifecycle store (alerts.state.AlertStore) as the API uses it. Changes the
    lifecycle does not allow raise ValueError (alerts.model.LifecycleError) with the reason."""

    def list(
        self,
        state: str | None = None,
        factory: str | None = None,
        limit: int = 500,
        severity: str | None = None,
    ) -> Sequence[AlertLike]: ...

    def get(self, alert_id: int) -> AlertLike | None: ...

    def acknowledge(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> AlertLike: ...

    def assign(self, alert_id: int, actor: str, assignee: str, now_ns: int) -> AlertLike: ...

    def add_note(self, alert_id: int, actor: str, text: str, now_ns: int) -> AlertLike: ...

    def resolve_id(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> AlertLike: ...

    def close_alert(self, alert_id: int, actor: str, now_ns: int, note: str = "") -> AlertLike: ...

    def audit(self, alert_id: int) -> Sequence[AuditLike]: ...


class DeadLetterLike(Protocol):
    @property
    def id(self) -> int | None: ...

    @property
    def received_ns(self) -> int: ...

    @property
    def topic(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def detail(self) -> str: ...

    @property
    def location(self) -> str: ...

    @property
    def payload(self) -> str: ...


class DeadLetterSource(Protocol):
    def recent(self, limit: int = 100, reason: str | None = None) -> Sequence[DeadLetterLike]: ...

    def counts(self) -> dict[str, int]: ...


# compliance_report(first_day, last_day, factory or None) -> the report (`eit report compliance`)
ReportMaker = Callable[[date, date, str | None], dict[str, Any]]
# render(report, "json" | "csv" | "html") -> text
ReportRenderer = Callable[[dict[str, Any], str], str]
# The text of an alert in "th" or "en".
AlertText = Callable[[Any, str], str]


@dataclass(slots=True)
class ApiSources:
    registry: Registry
    store: SeriesStore
    alerts: AlertBook
    accounts: Accounts
    report: ReportMaker
    render_report: ReportRenderer
    alert_text: AlertText
    deadletters: DeadLetterSource | None = None
    clock: Callable[[], int] = field(default=now_ns)
    # A factory whose newest reading is older than this shows as "no data".
    stale_after_s: float = 3600.0
