"""A notifier kind defined outside the project's table, as a site would add its own (and as
docs/plugins.md shows): registered by name in tests/test_confread.py. It keeps what it is sent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from alerts.model import AlertEvent
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from eit.plugins import Kind


class MemoSettings(NotifierSettings):
    kind: Literal["memo"] = "memo"
    label: str
    token: SecretStr
    keep: int = Field(10, ge=1)


class MemoNotifier:
    name = "memo"

    def __init__(self, settings: MemoSettings) -> None:
        self.settings = settings
        self.sent: list[tuple[str, str, int]] = []

    def send(self, event: AlertEvent) -> None:
        self.sent.append((self.settings.label, event.kind, event.alert.id))
        del self.sent[: -self.settings.keep]


def build(settings: MemoSettings, context: NotifierContext) -> MemoNotifier:
    return MemoNotifier(settings)


KIND = Kind(MemoSettings, build)
