"""Cases (kept under the name *alert* in the API, CLI and MQTT), exceedances, audit entries and
the events that notifiers receive.

A case is the officers' work item for one factory, device, channel and rule episode. It has two
sides that never change each other:

- its **state**, what officers do: open -> acknowledged -> resolved -> closed (the rules resolve
  a case whose condition ends while nobody has; officers acknowledge, assign, add notes, resolve
  with a reason and close);
- its **condition**, what the rules see: ``ongoing`` or ``ended``. Resolving a case whose
  condition persists leaves it visibly ongoing; only a case whose condition ended can be closed.

A condition that comes back within the flap window continues its case (reopened, its
acknowledgement and assignee kept, its flap count raised); later, a new episode opens a new case
that names the previous one. An **exceedance** is an immutable record of a legal period above a
limit (period, average, limit, unit, basis, method); a provisional one (a running hour) is decided
once, confirmed or withdrawn. Every change is an audit entry (who, when, what).
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
ONGOING = "ongoing"
ENDED = "ended"
CONDITIONS = (ONGOING, ENDED)
# The version of the alert events' JSON (MQTT eit/alerts/<factory>, webhooks): 2 adds the case's
# condition, its previous case, the resolution, the current value and the exceedances' endpoint.
EVENT_VERSION = 2
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
    condition: str = ENDED
    condition_since_ns: int | None = None
    ended_ns: int | None = None
    previous_id: int | None = None
    resolution: str = ""
    current_value: float | None = None
    current_ns: int | None = None

    @property
    def ongoing(self) -> bool:
        return self.condition == ONGOING

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
            "condition": self.condition,
            "condition_since": ns_to_iso(self.condition_since_ns) if self.condition_since_ns else None,
            "ended_at": ns_to_iso(self.ended_ns) if self.ended_ns else None,
            "previous_id": self.previous_id,
            "resolution": self.resolution,
            "current_value": self.current_value,
            "current_at": ns_to_iso(self.current_ns) if self.current_ns else None,
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
        return {
            "version": EVENT_VERSION,
            "event": self.kind,
            "step": self.step,
            "alert": self.alert.to_json(),
        }


PROVISIONAL_OUTCOMES = ("confirmed", "withdrawn")


@dataclass(frozen=True, slots=True)
class Exceedance:
    """A legal period above a limit, as the rules found it: never changed once written, except
    that a provisional one (the running hour) is decided once, confirmed or withdrawn."""

    id: int
    case_id: int | None
    factory: str
    device: str
    channel: str
    rule: str
    averaging: str  # 1h, 8h, 24h, instant
    period_start_ns: int
    period_end_ns: int
    average: float
    limit: float
    unit: str
    basis: str  # e.g. "corrected to 7 % O2", "as measured"
    method: str  # eit/standards/methods.yaml, e.g. minute_means/2
    origin: str  # the limit's origin: "standard ..." or "permit ..."
    retroactive: bool
    provisional: bool
    outcome: str | None  # provisional ones: confirmed or withdrawn once decided
    decided_ns: int | None
    recorded_ns: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "factory": self.factory,
            "device": self.device,
            "channel": self.channel,
            "rule": self.rule,
            "averaging": self.averaging,
            "period_start": ns_to_iso(self.period_start_ns),
            "period_end": ns_to_iso(self.period_end_ns),
            "average": self.average,
            "limit": self.limit,
            "unit": self.unit,
            "basis": self.basis,
            "method": self.method,
            "origin": self.origin,
            "retroactive": self.retroactive,
            "provisional": self.provisional,
            "outcome": self.outcome,
            "decided_at": ns_to_iso(self.decided_ns) if self.decided_ns else None,
            "recorded_at": ns_to_iso(self.recorded_ns),
        }
