"""The settings every notifier kind shares (one entry of ``notifiers`` in the server
configuration): its kind, its name, its routing, and how long its notifications are tried.

Each kind subclasses :class:`NotifierSettings` in its own module (alerts/notifiers/webhook.py,
email.py, ...) with the keys it reads; the server validates each entry with the class of the
kind it names. Secrets are :class:`pydantic.SecretStr` (given in the file as ``key``,
``key_file`` or ``key_env``), so they never show in a repr or an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eit.mqttconf import MqttSettings

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class NotifierSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    kind: str
    # Its name in the delivery queue, the metrics and the console (default: its kind); two
    # notifiers of one kind need names of their own.
    name: str | None = None
    # Routing: only alerts of these factories / districts (empty: all).
    factories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    # A notification is tried until the receiver takes it or this long after it was queued ...
    expire_after_s: float = Field(86400.0, gt=0)
    # ... waiting this long after its first failed attempt, twice as long after each further one
    # (with jitter), at most retry_max_s.
    retry_after_s: float = Field(10.0, gt=0)
    retry_max_s: float = Field(600.0, gt=0)

    @field_validator("name")
    @classmethod
    def _a_name(cls, name: str | None) -> str | None:
        if name is not None and not NAME.fullmatch(name):
            raise ValueError(
                f"'{name}' is not a notifier name: lowercase letters, digits, '-' and '_', up to 63"
            )
        return name

    @property
    def queue_name(self) -> str:
        """The name its notifications are queued under."""
        return self.name or self.kind


@dataclass(frozen=True, slots=True)
class NotifierContext:
    """What the server gives every notifier factory besides its settings."""

    mqtt: MqttSettings | None = None  # the server's broker (the mqtt notifier publishes there)
