"""Alerts, their lifecycle, audit entries and the events that notifiers receive.

Lifecycle: open -> acknowledged -> resolved -> closed. The engine opens and resolves; officers
acknowledge, assign, add notes, resolve by hand and close. A resolved alert whose condition comes
back within the flap window is reopened (the same alert, its flap count raised) instead of a new
one, so a flapping condition does not flood anyone. Every change is an audit entry (who, when,
what).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from eit.timeutil import ns_to_iso

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
CLOSED = "closed"
STATES = (OPEN, ACKNOWLEDGED, RESOLVED, CLOSED)
ACTIVE_STATES = (OPEN, ACKNOWLEDGED)
ENGINE = "engine"  # the actor of changes the rules make

# One active (open or acknowledged) alert per key: (factory, device, parameter, rule).
AlertKey = tuple[str, str, str, str]


class LifecycleError(ValueError):
    """A change the lifecycle does not allow (e.g. acknowledging a closed alert)."""


class ResponseError(ValueError):
    """An operator response that cannot be kept (a part missing or too long); the message says why."""


@dataclass(slots=True)
class Alert:
    id: int
    factory: str
    device: str
    parameter: str
    rule: str
    severity: str
    state: str
    opened_ns: int
    updated_ns: int
    message: str
    value: float | None = None
    limit: float | None = None
    unit: str = ""
    resolved_ns: int | None = None
    provisional: bool = False
    retroactive: bool = False
    period_start_ns: int | None = None
    assignee: str | None = None
    acknowledged_ns: int | None = None
    acknowledged_by: str | None = None
    closed_ns: int | None = None
    escalation_step: int = 0
    flaps: int = 0
    template: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> AlertKey:
        return (self.factory, self.device, self.parameter, self.rule)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "factory": self.factory,
            "device": self.device,
            "parameter": self.parameter,
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state,
            "message": self.message,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "provisional": self.provisional,
            "retroactive": self.retroactive,
            "period_start": ns_to_iso(self.period_start_ns) if self.period_start_ns is not None else None,
            "assignee": self.assignee,
            "acknowledged_by": self.acknowledged_by,
            "escalation_step": self.escalation_step,
            "flaps": self.flaps,
            "opened_ns": self.opened_ns,
            "updated_ns": self.updated_ns,
            "opened_at": ns_to_iso(self.opened_ns),
            "updated_at": ns_to_iso(self.updated_ns),
            "acknowledged_at": ns_to_iso(self.acknowledged_ns) if self.acknowledged_ns else None,
            "resolved_at": ns_to_iso(self.resolved_ns) if self.resolved_ns else None,
            "closed_at": ns_to_iso(self.closed_ns) if self.closed_ns else None,
        }

    def params_json(self) -> str:
        return json.dumps(self.params, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    alert_id: int
    ts_ns: int
    actor: str
    action: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "at": ns_to_iso(self.ts_ns),
            "actor": self.actor,
            "action": self.action,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class OperatorResponse:
    """What a factory operator says about an alert of its factory: the cause and the corrective
    action."""

    id: int
    alert_id: int
    factory: str
    actor: str
    ts_ns: int
    cause: str
    corrective_action: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "factory": self.factory,
            "by": self.actor,
            "at": ns_to_iso(self.ts_ns),
            "cause": self.cause,
            "corrective_action": self.corrective_action,
        }


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """Something happened to an alert: ``opened``, ``reopened``, ``updated``, ``confirmed``,
    ``withdrawn``, ``escalated``, ``acknowledged``, ``resolved`` or ``closed``.

    ``step`` is the escalation step the event belongs to (0: the officers of the factory; n: the
    n-th supervisor up the chain)."""

    kind: str
    alert: Alert
    step: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "step": self.step, "alert": self.alert.to_json()}
