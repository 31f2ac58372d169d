"""A notifier's settings (one entry of ``notifiers`` in the server configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NOTIFIER_KINDS = ("log", "webhook", "email", "mqtt", "apprise")


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    kind: str
    options: dict[str, Any]
    # Routing: only alerts of these factories / districts (empty: all).
    factories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
