"""`eit alerts` and `eit alert`: which state database they read, and how they print alerts for
people: one case per entry in the town's local time, and a case with its exceedances, its
operator's responses and its audit trail. ``--json`` keeps the API's JSON (UTC, ISO 8601).

What a person or a meter's sender put in free text (notes, responses, names) reaches the
terminal escaped: an ANSI escape sequence is shown, never obeyed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.model import Alert, AuditEntry, Exceedance, OperatorResponse
from alerts.state import AlertStore, open_alert_store
from eit.errors import EitError
from eit.timeutil import ns_to_datetime
from ingest.deadletters import printable

# The zone of the example town and of every Thai town; a serve.yaml's site registry names its own.
DEFAULT_TIMEZONE = "Asia/Bangkok"


class NoAlertState(EitError):
    """The folder given holds no state database: nothing has run there."""


@dataclass(frozen=True, slots=True)
class AlertSource:
    store: AlertStore
    timezone: str
    where: str


def open_alert_source(config: str | None, data_dir: str) -> AlertSource:
    """The alert store of ``--config serve.yaml`` (its state database and its site registry's
    time zone), else the state database ``eit demo`` or ``eit serve`` keeps in ``--data-dir``.
    A folder without one is refused, not given an empty database."""
    if config:
        from eit.registry import load_registry
        from server.config import load_serve_config

        settings = load_serve_config(config)
        timezone = load_registry(settings.site).timezone
        store = open_alert_store(settings.state_url, settings.state_path)
        where = "the PostgreSQL state database" if settings.state_url else str(settings.state_path)
        return AlertSource(store, timezone, where)
    path = Path(data_dir) / "state.db"
    if not path.is_file():
        raise NoAlertState(
            f"no alerts in {data_dir}: {path} does not exist (give --data-dir the folder `eit demo` "
            "or `eit serve` keeps its data in, e.g. --data-dir demo-data, or --config serve.yaml)"
        )
    return AlertSource(open_alert_store(None, path), DEFAULT_TIMEZONE, str(path))


class AlertPrinter:
    """Alerts as people read them, times in ``timezone``."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone

    def time(self, ts_ns: int | None) -> str:
        if ts_ns is None:
            return "-"
        return ns_to_datetime(ts_ns).astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def zone_note(self) -> str:
        offset = datetime.now(self.zone).strftime("%z")
        return f"times in {self.timezone} (UTC{offset[:3]}:{offset[3:]})"

    @staticmethod
    def value(value: float | None, unit: str) -> str:
        if value is None:
            return "-"
        return f"{value:.4g} {unit}".rstrip()

    def state(self, a: Alert) -> str:
        condition = f"condition {a.condition}"
        if a.condition_since_ns is not None:
            condition += f" since {self.time(a.condition_since_ns)}"
        return f"{a.state} ({condition})"

    def headline(self, a: Alert) -> str:
        what = f"{a.parameter}" + (f" {self.value(a.value, a.unit)}" if a.value is not None else "")
        if a.limit is not None:
            what += f" (limit {self.value(a.limit, a.unit)})"
        flags = [f for f, on in (("provisional", a.provisional), ("retroactive", a.retroactive)) if on]
        return f"#{a.id}  {a.state:<12} {a.severity:<8} {a.factory}/{a.device}  {what}  [{a.rule}]" + (
            f"  {', '.join(flags)}" if flags else ""
        )

    def lines(self, found: list[Alert]) -> list[str]:
        out = [self.zone_note()]
        for a in found:
            out.append(self.headline(a))
            out.append(
                f"     opened {self.time(a.opened_ns)}, updated {self.time(a.updated_ns)}; {a.condition}"
            )
            out.append(f"     {printable(a.message)}")
        noun = "alert" if len(found) == 1 else "alerts"
        out.append(f"{len(found)} {noun} shown, newest first (eit alert show ID for one; --json for JSON)")
        return out

    def detail(
        self,
        a: Alert,
        exceedances: list[Exceedance],
        responses: list[OperatorResponse],
        audit: list[AuditEntry],
    ) -> list[str]:
        out = [f"Alert #{a.id}: {a.factory}/{a.device} {a.parameter}, rule {a.rule}"]

        def row(label: str, text: str) -> None:
            out.append(f"  {label:<14}{text}")

        row("state", self.state(a))
        row("severity", a.severity)
        row("message", printable(a.message))
        if a.value is not None or a.limit is not None:
            basis = ", provisional" if a.provisional else ""
            row(
                "value",
                f"{self.value(a.value, a.unit)} against the limit {self.value(a.limit, a.unit)}{basis}",
            )
        if a.current_value is not None:
            row("latest", f"{self.value(a.current_value, a.unit)} at {self.time(a.current_ns)}")
        if a.period_start_ns is not None:
            row("period from", self.time(a.period_start_ns))
        row("opened", self.time(a.opened_ns))
        row("updated", self.time(a.updated_ns))
        if a.acknowledged_ns is not None:
            row("acknowledged", f"{self.time(a.acknowledged_ns)} by {printable(a.acknowledged_by or '-')}")
        if a.assignee:
            row("assigned to", printable(a.assignee))
        if a.escalation_step:
            row("escalation", f"step {a.escalation_step}")
        for label, ts in (("ended", a.ended_ns), ("resolved", a.resolved_ns), ("closed", a.closed_ns)):
            if ts is not None:
                row(label, self.time(ts))
        if a.resolution:
            row("resolution", printable(a.resolution))
        if a.previous_id is not None:
            row("previous", f"#{a.previous_id} (the episode before this one)")
        out.append(f"  exceedances ({len(exceedances)}):")
        for e in exceedances:
            state = ""
            if e.provisional:
                state = f", provisional, {e.outcome}" if e.outcome else ", provisional, not decided yet"
            out.append(
                f"    {e.averaging:<4} {self.time(e.period_start_ns)} to {self.time(e.period_end_ns)}:"
                f" average {self.value(e.average, e.unit)} above {self.value(e.limit, e.unit)}"
                f" ({e.basis}; {e.origin}; {e.method}{', found late' if e.retroactive else ''}{state})"
            )
        out.append(f"  operator responses ({len(responses)}):")
        for r in responses:
            out.append(
                f"    {self.time(r.ts_ns)} {printable(r.actor)}: cause: {printable(r.cause)};"
                f" action: {printable(r.corrective_action)}"
            )
        out.append(f"  audit trail ({len(audit)}):")
        for entry in audit:
            detail = f": {printable(entry.detail)}" if entry.detail else ""
            out.append(f"    {self.time(entry.ts_ns)} {printable(entry.actor)} {entry.action}{detail}")
        out.append(self.zone_note())
        return out
