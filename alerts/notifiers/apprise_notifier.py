"""Any Apprise URL (LINE, Telegram, Slack, Discord, e-mail, json://, ...): to everyone
(``urls``, both languages), to officers (``officers``: officer id -> URLs, their language), to a
factory's contacts (``contacts``: ``FACTORY/CONTACT`` -> URLs), and to the URLs accounts added to
their notification preferences (read when a notification is delivered).

The queue keeps the title and the text, never the URLs (they hold the services' tokens). The
notification's idempotency key goes where an Apprise service can carry it: to ``json://``,
``xml://`` and ``form://`` targets (and their ``s`` forms) as the header ``Idempotency-Key`` and
the payload field ``idempotency_key``; chat services have no place for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import apprise
from pydantic import Field, field_validator

from alerts.messages import alert_text, footer, headline
from alerts.model import AlertEvent
from alerts.notifiers.base import BROADCAST, NotifyError, Parts, idempotency_key
from alerts.notifiers.preferences import PreferenceStore, apprise_user
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from eit.plugins import Kind
from eit.registry import Officer

log = logging.getLogger("eit.alerts.apprise")


class AppriseSettings(NotifierSettings):
    """``{kind: apprise, urls: [...], officers: {officer id: [urls]}}``: any Apprise URL, to
    everyone (both languages) and to officers (in their language)."""

    kind: Literal["apprise"] = "apprise"
    officers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # A factory's contacts of the site registry, as FACTORY/CONTACT -> URLs.
    contacts: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Without urls, officers or contacts it still delivers to the URLs accounts add themselves.
    urls: tuple[str, ...] = ()

    @field_validator("officers", "contacts", mode="before")
    @classmethod
    def _one_url_is_a_list(cls, officers: Any) -> Any:
        if isinstance(officers, dict):
            return {
                k: (v,) if isinstance(v, str) else tuple(v) if isinstance(v, list) else v
                for k, v in officers.items()
            }
        return officers


def _body(event: AlertEvent, language: str, role: str = "officer") -> str:
    return f"{alert_text(event.alert, language)}\n{footer(event.alert, language, role)}"


# Apprise's generic HTTP targets: ``+name=value`` in the URL adds a header, ``:name=value`` a
# payload field.
_KEYED_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


def _with_key(url: str, key: str) -> str:
    if urlsplit(url).scheme.lower() not in _KEYED_SCHEMES:
        return url
    extra = urlencode({"+Idempotency-Key": key, ":idempotency_key": key})
    base, hash_, fragment = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}{extra}{hash_}{fragment}"


class _Apprise:
    def __init__(self, urls: Sequence[str], where: str) -> None:
        self.urls = tuple(urls)
        app = apprise.Apprise()
        for url in urls:
            if not app.add(url):
                raise ValueError(f"{where}: {url.split('://', 1)[0]}:// is not an Apprise URL it understands")

    def notify(self, title: str, body: str, key: str, what: str) -> None:
        app = apprise.Apprise()
        for url in self.urls:
            app.add(_with_key(url, key) if key else url)
        if not app.notify(title=title, body=body):
            raise NotifyError(f"Apprise could not deliver {what}")


class AppriseNotifier:
    name = "apprise"

    def __init__(
        self,
        urls: Sequence[str] = (),
        officers: dict[str, list[str]] | None = None,
        contacts: dict[str, list[str]] | None = None,
    ) -> None:
        self._broadcast = _Apprise(urls, "apprise urls") if urls else None
        self._officers = {oid: _Apprise(u, f"apprise officers.{oid}") for oid, u in (officers or {}).items()}
        self._officers |= {cid: _Apprise(u, f"apprise contacts.{cid}") for cid, u in (contacts or {}).items()}
        self._preferences: PreferenceStore | None = None

    def use_preferences(self, preferences: PreferenceStore) -> None:
        """Deliver to the Apprise URLs accounts add to their preferences, too."""
        self._preferences = preferences

    def reaches(self, officer: Officer) -> bool:
        if officer.id in self._officers:
            return True
        return self._preferences is not None and apprise_user(officer.id) is not None

    def render(self, event: AlertEvent, officer: Officer | None, key: str) -> Parts:
        if officer is None:
            body = _body(event, "th") + "\n\n" + _body(event, "en")
            return {"to": BROADCAST, "title": headline(event, "en"), "body": body, "alert": event.alert.id}
        lang = officer.language
        return {
            "to": officer.id,
            "title": headline(event, lang),
            "body": _body(event, lang, officer.role),
            "alert": event.alert.id,
        }

    def deliver(self, parts: Parts, key: str) -> None:
        to = str(parts["to"])
        user = apprise_user(to)
        if user is not None and to not in self._officers:
            self._deliver_to_account(user, parts, key)
            return
        target = self._broadcast if to == BROADCAST else self._officers.get(to)
        what = f"alert #{parts['alert']}" + ("" if to == BROADCAST else f" to {to}")
        if target is None:
            raise NotifyError(
                f"Apprise has no URL for {'everyone' if to == BROADCAST else to} any more ({what})"
            )
        target.notify(str(parts["title"]), str(parts["body"]), key, what)

    def _deliver_to_account(self, user: str, parts: Parts, key: str) -> None:
        # The URLs as the account has them now: one it removed since is not used.
        urls = self._preferences.apprise_urls(user) if self._preferences is not None else ()
        if not urls:
            log.info("alert #%s: account %s has no Apprise URL any more; nothing sent", parts["alert"], user)
            return
        try:
            target = _Apprise(urls, f"the Apprise URLs of account {user}")
        except ValueError as exc:
            raise NotifyError(str(exc)) from None
        target.notify(
            str(parts["title"]), str(parts["body"]), key, f"alert #{parts['alert']} to account {user}"
        )

    def send(self, event: AlertEvent) -> None:
        if self._broadcast is None:
            return
        key = idempotency_key("", event, BROADCAST)
        self.deliver(self.render(event, None, key), key)

    def send_to(self, event: AlertEvent, officer: Officer) -> None:
        key = idempotency_key("", event, officer.id)
        self.deliver(self.render(event, officer, key), key)

    @property
    def broadcasts(self) -> bool:
        """Whether it has URLs for everyone (``urls``)."""
        return self._broadcast is not None


def build(settings: AppriseSettings, context: NotifierContext) -> AppriseNotifier:
    return AppriseNotifier(
        settings.urls,
        {oid: list(urls) for oid, urls in settings.officers.items()},
        {cid: list(urls) for cid, urls in settings.contacts.items()},
    )


KIND = Kind(AppriseSettings, build)
