"""Any Apprise URL (LINE, Telegram, Slack, Discord, e-mail, json://, ...): to everyone
(``urls``, both languages) and to officers (``officers``: officer id -> URLs, their language)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import apprise
from pydantic import Field, ValidationInfo, field_validator

from alerts.messages import alert_text, footer, headline
from alerts.model import AlertEvent
from alerts.notifiers.base import NotifyError
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from eit.plugins import Kind
from eit.registry import Officer


class AppriseSettings(NotifierSettings):
    """``{kind: apprise, urls: [...], officers: {officer id: [urls]}}``: any Apprise URL, to
    everyone (both languages) and to officers (in their language)."""

    kind: Literal["apprise"] = "apprise"
    officers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    urls: tuple[str, ...] = Field(default=(), validate_default=True)

    @field_validator("officers", mode="before")
    @classmethod
    def _one_url_is_a_list(cls, officers: Any) -> Any:
        if isinstance(officers, dict):
            return {
                k: (v,) if isinstance(v, str) else tuple(v) if isinstance(v, list) else v
                for k, v in officers.items()
            }
        return officers

    @field_validator("urls")
    @classmethod
    def _someone_to_tell(cls, urls: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not urls and not info.data.get("officers"):
            raise ValueError("give Apprise URLs (urls: for everyone, officers: per officer)")
        return urls


def _body(event: AlertEvent, language: str) -> str:
    return f"{alert_text(event.alert, language)}\n{footer(event.alert, language)}"


class _Apprise:
    def __init__(self, urls: Sequence[str], where: str) -> None:
        self.app = apprise.Apprise()
        for url in urls:
            if not self.app.add(url):
                raise ValueError(f"{where}: {url.split('://', 1)[0]}:// is not an Apprise URL it understands")

    def notify(self, title: str, body: str, what: str) -> None:
        if not self.app.notify(title=title, body=body):
            raise NotifyError(f"Apprise could not deliver {what}")


class AppriseNotifier:
    name = "apprise"

    def __init__(self, urls: Sequence[str] = (), officers: dict[str, list[str]] | None = None) -> None:
        self._broadcast = _Apprise(urls, "apprise urls") if urls else None
        self._officers = {oid: _Apprise(u, f"apprise officers.{oid}") for oid, u in (officers or {}).items()}

    def send(self, event: AlertEvent) -> None:
        if self._broadcast is None:
            return
        body = _body(event, "th") + "\n\n" + _body(event, "en")
        self._broadcast.notify(headline(event, "en"), body, f"alert #{event.alert.id}")

    def reaches(self, officer: Officer) -> bool:
        return officer.id in self._officers

    def send_to(self, event: AlertEvent, officer: Officer) -> None:
        lang = officer.language
        self._officers[officer.id].notify(
            headline(event, lang), _body(event, lang), f"alert #{event.alert.id} to {officer.id}"
        )


def build(settings: AppriseSettings, context: NotifierContext) -> AppriseNotifier:
    return AppriseNotifier(settings.urls, {oid: list(urls) for oid, urls in settings.officers.items()})


KIND = Kind(AppriseSettings, build)
