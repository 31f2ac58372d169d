"""What the duties record: notices of a monitor's malfunction or planned shutdown, lab checks of
online BOD/COD, substitute stack tests, attached reports, and the officers' dispositions of
integrity findings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from eit.timeutil import ns_to_iso

WPMS: Final = "wpms"
CEMS: Final = "cems"
SYSTEMS: Final = (WPMS, CEMS)
MALFUNCTION: Final = "malfunction"
SHUTDOWN: Final = "shutdown"
NOTICE_KINDS: Final = (MALFUNCTION, SHUTDOWN)
FILED_BY_FACTORY: Final = "filed"
INFERRED: Final = "inferred"
# A malfunction is open until fixed; a shutdown window is filed, then accepted or rejected by an
# officer (only an accepted window suppresses no-data items and leaves the expected hours).
OPEN: Final = "open"
FIXED: Final = "fixed"
FILED: Final = "filed"
ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"
DISPOSITIONS: Final = ("confirmed", "dismissed", "inspect")
MAX_TEXT: Final = 4000


class DutyError(ValueError):
    """A duty record that cannot be made as asked; the message names what and why."""


class NotFound(DutyError):
    """No such notice, check, test, attachment or finding."""


def _iso(ts_ns: int | None) -> str | None:
    return ns_to_iso(ts_ns) if ts_ns is not None else None


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    system: str
    kind: str
    origin: str
    factory: str
    device: str
    started_ns: int
    ended_ns: int | None
    state: str
    cause: str
    filed_ns: int | None
    filed_by: str | None
    recorded_ns: int
    report_due_ns: int | None
    fix_due_ns: int | None
    decided_ns: int | None
    decided_by: str | None
    fixed_ns: int | None

    def covers(self, ts_ns: int) -> bool:
        return self.started_ns <= ts_ns and (self.ended_ns is None or ts_ns < self.ended_ns)

    @property
    def reported_late(self) -> bool | None:
        """Whether the factory's report came after its deadline (None: no deadline or not yet
        reported)."""
        if self.report_due_ns is None or self.filed_ns is None:
            return None
        return self.filed_ns >= self.report_due_ns

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "system": self.system,
            "kind": self.kind,
            "origin": self.origin,
            "factory": self.factory,
            "device": self.device,
            "start": ns_to_iso(self.started_ns),
            "end": _iso(self.ended_ns),
            "state": self.state,
            "cause": self.cause,
            "filed_at": _iso(self.filed_ns),
            "filed_by": self.filed_by,
            "recorded_at": ns_to_iso(self.recorded_ns),
            "report_due": _iso(self.report_due_ns),
            "reported_late": self.reported_late,
            "fix_due": _iso(self.fix_due_ns),
            "decided_at": _iso(self.decided_ns),
            "decided_by": self.decided_by,
            "fixed_at": _iso(self.fixed_ns),
        }


@dataclass(frozen=True, slots=True)
class LabCheck:
    id: int
    factory: str
    device: str
    channel: str
    sampled_ns: int
    lab_value: float  # T
    online_value: float | None  # M: the mean of the minute of sampling (None: no valid data)
    deviation: float | None  # E = M - T
    unit: str
    laboratory: str
    entered_ns: int
    entered_by: str
    report_due_ns: int
    attachment_id: int | None

    @property
    def reported_late(self) -> bool:
        return self.entered_ns >= self.report_due_ns

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "factory": self.factory,
            "device": self.device,
            "channel": self.channel,
            "sampled_at": ns_to_iso(self.sampled_ns),
            "lab_value": self.lab_value,
            "online_value": self.online_value,
            "deviation": self.deviation,
            "unit": self.unit,
            "laboratory": self.laboratory,
            "entered_at": ns_to_iso(self.entered_ns),
            "entered_by": self.entered_by,
            "report_due": ns_to_iso(self.report_due_ns),
            "reported_late": self.reported_late,
            "attachment_id": self.attachment_id,
        }


@dataclass(frozen=True, slots=True)
class StackTest:
    id: int
    notice_id: int
    factory: str
    device: str
    tested_ns: int
    results: dict[str, float]
    laboratory: str
    entered_ns: int
    entered_by: str
    attachment_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "notice_id": self.notice_id,
            "factory": self.factory,
            "device": self.device,
            "tested_at": ns_to_iso(self.tested_ns),
            "results": dict(self.results),
            "laboratory": self.laboratory,
            "entered_at": ns_to_iso(self.entered_ns),
            "entered_by": self.entered_by,
            "attachment_id": self.attachment_id,
        }


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    factory: str
    filename: str
    size: int
    sha256: str
    uploaded_ns: int
    uploaded_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "factory": self.factory,
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "uploaded_at": ns_to_iso(self.uploaded_ns),
            "uploaded_by": self.uploaded_by,
        }


@dataclass(frozen=True, slots=True)
class StoredFinding:
    id: str
    factory: str
    device: str
    kind: str
    month: str
    score: float
    finding: dict[str, Any]
    found_ns: int
    updated_ns: int
    disposition: str
    disposed_by: str | None
    disposed_ns: int | None
    note: str

    def to_json(self) -> dict[str, Any]:
        return self.finding | {
            "id": self.id,
            "found_at": ns_to_iso(self.found_ns),
            "updated_at": ns_to_iso(self.updated_ns),
            "disposition": self.disposition or None,
            "disposed_by": self.disposed_by,
            "disposed_at": _iso(self.disposed_ns),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class DutyAudit:
    subject: str
    ts_ns: int
    actor: str
    action: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "at": ns_to_iso(self.ts_ns),
            "actor": self.actor,
            "action": self.action,
            "detail": self.detail,
        }


def results_text(results: dict[str, float]) -> str:
    return json.dumps(results, sort_keys=True)
