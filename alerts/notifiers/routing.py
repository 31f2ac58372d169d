"""Who is notified of an alert, at which escalation step.

Step 0: the officers the site registry names for the alert's factory (by factory or district),
those with the role ``officer`` first (supervisors covering everything are reached by
escalation, not at once; when no plain officer covers the factory, all who cover it). Step n: the
``escalate_to`` of each officer of step n-1.
"""

from __future__ import annotations

from alerts.model import Alert
from eit.registry import Officer, Registry


class Router:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def recipients(self, alert: Alert, step: int) -> list[Officer]:
        covering = self.registry.officers_for(alert.factory)
        current = [o for o in covering if o.role == "officer"] or covering
        for _ in range(step):
            nxt: dict[str, Officer] = {}
            for officer in current:
                if officer.escalate_to and officer.escalate_to in self.registry.officers:
                    nxt[officer.escalate_to] = self.registry.officers[officer.escalate_to]
            current = list(nxt.values())
        return current

    def district(self, factory: str) -> str:
        f = self.registry.factories.get(factory)
        return f.district if f else ""
