"""Alerts and the events that notifiers receive."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eit.timeutil import ns_to_iso

OPEN = "open"
RESOLVED = "resolved"

# One open alert per key: (factory, device, parameter, rule).
AlertKey = tuple[str, str, str, str]


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

    @property
    def key(self) -> AlertKey:
        return (self.factory, self.device, self.parameter, self.rule)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["opened_at"] = ns_to_iso(self.opened_ns)
        data["updated_at"] = ns_to_iso(self.updated_ns)
        data["resolved_at"] = ns_to_iso(self.resolved_ns) if self.resolved_ns else None
        return data


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """Something happened to an alert: ``opened`` or ``resolved``."""

    kind: str
    alert: Alert

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "alert": self.alert.to_json()}
