"""The settings every notifier kind shares (one entry of ``notifiers`` in the server
configuration): its kind and its routing.

Each kind subclasses :class:`NotifierSettings` in its own module (alerts/notifiers/webhook.py,
email.py, ...) with the keys it reads; the server validates each entry with the class of the
kind it names. Secrets are :class:`pydantic.SecretStr` (given in the file as ``key``,
``key_file`` or ``key_env``), so they never show in a repr or an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from eit.mqttconf import MqttSettings


class NotifierSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    kind: str
    # Routing: only alerts of these factories / districts (empty: all).
    factories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NotifierContext:
    """What the server gives every notifier factory besides its settings."""

    mqtt: MqttSettings | None = None  # the server's broker (the mqtt notifier publishes there)
