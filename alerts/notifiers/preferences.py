"""Notification preferences of accounts, and who besides the duty officers hears of an alert.

The site registry stays the source of duty routing (alerts/notifiers/routing.py): who is told of
an alert, at which escalation step. An account adds to that, never changes it:

- channels of its own (e-mail addresses, Apprise URLs such as LINE or Telegram), delivered by
  the server's ``email`` and ``apprise`` notifiers beside the registry's address;
- muting of non-critical items (warnings, provisional exceedances, stale monitors): a critical
  alert always reaches every channel;
- for an account that is no registry officer (a factory's operator), the language of its
  notifications.

An officer's account is the one linked to the registry officer (``eit users link``); an
operator's account hears of its own factory's alerts on the channels it added, as the
factory's contacts in the registry (``contacts:`` of a factory) do on theirs.

Each recipient is an :class:`~eit.registry.Officer` as the notifiers know it (an id, a name, an
address, a language): a contact is ``FACTORY/CONTACT``, an added e-mail address
``ID+ADDRESS``, an account's Apprise URLs ``user:NAME`` (the URLs hold the services' tokens,
so they are looked up when the notification is delivered, never kept in the queue).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import sqlalchemy as sa

from alerts.model import Alert
from eit.registry import EMAIL_PATTERN, FactoryContact, Officer
from statedb import StateDb
from statedb.tables import api_users, notification_channels, notification_preferences

CHANNEL_KINDS = ("email", "apprise")
LANGUAGES = ("th", "en")
CRITICAL = "critical"
MAX_CHANNELS = 10
MAX_ADDRESS_LENGTH = 512
USER_PREFIX = "user:"


class PreferenceError(ValueError):
    """A preference that cannot be set; the message says why."""


@dataclass(frozen=True, slots=True)
class Preferences:
    user: str
    mute_non_critical: bool = False
    language: str | None = None
    emails: tuple[str, ...] = ()
    apprise: tuple[str, ...] = ()

    def hears(self, alert: Alert) -> bool:
        """Whether the account is told of ``alert`` at all: a critical one always."""
        return alert.severity == CRITICAL or not self.mute_non_critical


def check_channel(kind: str, address: str) -> str:
    """``address`` as kept, or PreferenceError naming what is wrong with it."""
    address = address.strip()
    if kind not in CHANNEL_KINDS:
        raise PreferenceError(f"kind '{kind}' is not a channel kind (use one of {', '.join(CHANNEL_KINDS)})")
    if not address:
        raise PreferenceError("give the address")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise PreferenceError(f"the address is longer than {MAX_ADDRESS_LENGTH} characters")
    if kind == "email":
        if not EMAIL_PATTERN.fullmatch(address):
            raise PreferenceError(f"'{address}' is not an e-mail address (name@example.org)")
        return address
    import apprise

    if not apprise.Apprise().add(address):
        scheme = address.split("://", 1)[0] if "://" in address else address[:20]
        raise PreferenceError(
            f"'{scheme}://' is not an Apprise URL Apprise understands (e.g. line://TOKEN, tgram://BOT/CHAT)"
        )
    return address


def masked(kind: str, address: str) -> str:
    """How a channel is shown back: an e-mail address as it is; an Apprise URL by its service and
    its last characters only (it holds the service's token)."""
    if kind == "email":
        return address
    scheme = address.split("://", 1)[0] if "://" in address else "?"
    return f"{scheme}://…{address[-4:]}" if len(address) > len(scheme) + 7 else f"{scheme}://…"


def contact_recipient(factory: str, contact: FactoryContact) -> Officer:
    return Officer(
        id=f"{factory}/{contact.id}",
        name=contact.name,
        email=contact.email,
        role="factory",
        language=contact.language,
        factories=(factory,),
        districts=(),
    )


def personal_recipients(base: Officer, prefs: Preferences | None, alert: Alert) -> list[Officer]:
    """Who ``base`` (an officer, or an operator account as an officer) is reached as for
    ``alert``: itself, each e-mail address it added, its Apprise URLs; none when it mutes it."""
    if prefs is None:
        return [base]
    if not prefs.hears(alert):
        return []
    out = [base] if base.email or not base.id.startswith(USER_PREFIX) else []
    out += [replace(base, id=f"{base.id}+{address}", email=address) for address in prefs.emails]
    if prefs.apprise:
        out.append(replace(base, id=f"{USER_PREFIX}{prefs.user}", email=""))
    return out


def account_recipient(prefs: Preferences, factory: str, default_language: str = "th") -> Officer:
    """An account that is no registry officer, as the notifiers address it."""
    return Officer(
        id=f"{USER_PREFIX}{prefs.user}",
        name=prefs.user,
        email="",
        role="operator",
        language=prefs.language or default_language,
        factories=(factory,),
        districts=(),
    )


def apprise_user(recipient_id: str) -> str | None:
    """The account whose Apprise URLs ``recipient_id`` stands for (None: not such a recipient)."""
    if recipient_id.startswith(USER_PREFIX) and "+" not in recipient_id:
        return recipient_id[len(USER_PREFIX) :]
    return None


_p = notification_preferences.c
_ch = notification_channels.c
_u = api_users.c


class PreferenceStore:
    """The preferences of accounts, in the state database (its tables, migration 0009)."""

    def __init__(self, db: StateDb) -> None:
        self.db = db

    def get(self, user: str) -> Preferences:
        return self.of_users([user])[user]

    def of_users(self, users: Iterable[str]) -> dict[str, Preferences]:
        names = list(dict.fromkeys(users))
        if not names:
            return {}
        with self.db.read() as conn:
            options = {
                str(r.user_name): r
                for r in conn.execute(sa.select(notification_preferences).where(_p.user_name.in_(names)))
            }
            channels = conn.execute(
                sa.select(_ch.user_name, _ch.kind, _ch.address)
                .where(_ch.user_name.in_(names))
                .order_by(_ch.added_ns, _ch.address)
            ).all()
        out: dict[str, Preferences] = {}
        for name in names:
            row = options.get(name)
            emails = tuple(str(a) for u, k, a in channels if u == name and k == "email")
            urls = tuple(str(a) for u, k, a in channels if u == name and k == "apprise")
            out[name] = Preferences(
                name,
                bool(row.mute_non_critical) if row is not None else False,
                str(row.language) if row is not None and row.language else None,
                emails,
                urls,
            )
        return out

    def set_options(
        self, user: str, mute_non_critical: bool, language: str | None, now_ns: int
    ) -> Preferences:
        if language is not None and language not in LANGUAGES:
            raise PreferenceError(f"language '{language}' is not one of {', '.join(LANGUAGES)}")
        values = {"mute_non_critical": int(mute_non_critical), "language": language, "updated_ns": now_ns}
        with self.db.write() as conn:
            done = conn.execute(
                sa.update(notification_preferences).where(_p.user_name == user).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(notification_preferences.insert().values(user_name=user, **values))
        return self.get(user)

    def add_channel(self, user: str, kind: str, address: str, now_ns: int) -> Preferences:
        address = check_channel(kind, address)
        with self.db.write() as conn:
            have = conn.execute(sa.select(_ch.kind, _ch.address).where(_ch.user_name == user)).all()
            if (kind, address) in {(str(k), str(a)) for k, a in have}:
                raise PreferenceError(f"{masked(kind, address)} is one of your channels already")
            if len(have) >= MAX_CHANNELS:
                raise PreferenceError(f"at most {MAX_CHANNELS} channels: remove one first")
            conn.execute(
                notification_channels.insert().values(
                    user_name=user, kind=kind, address=address, added_ns=now_ns
                )
            )
        return self.get(user)

    def remove_channel(self, user: str, kind: str, address: str) -> Preferences:
        with self.db.write() as conn:
            done = conn.execute(
                sa.delete(notification_channels).where(
                    _ch.user_name == user, _ch.kind == kind, _ch.address == address
                )
            )
        if done.rowcount == 0:
            raise PreferenceError(f"no {kind} channel {masked(kind, address)} to remove")
        return self.get(user)

    # -- for the dispatcher ------------------------------------------------------------------------
    def for_officer(self, officer_id: str) -> Preferences | None:
        """The preferences of the account linked to registry officer ``officer_id`` (None: no
        enabled account is)."""
        with self.db.read() as conn:
            name = conn.execute(
                sa.select(_u.name).where(_u.officer == officer_id, _u.disabled == 0)
            ).scalar_one_or_none()
        return self.get(str(name)) if name is not None else None

    def for_operators(self, factory: str) -> list[Preferences]:
        """The preferences of the factory's enabled operator accounts that added a channel."""
        with self.db.read() as conn:
            names = list(
                conn.execute(
                    sa.select(_u.name)
                    .where(_u.role == "operator", _u.factory == factory, _u.disabled == 0)
                    .order_by(_u.name)
                ).scalars()
            )
        found = self.of_users(str(n) for n in names)
        return [p for p in found.values() if p.emails or p.apprise]

    def apprise_urls(self, user: str) -> tuple[str, ...]:
        return self.get(user).apprise
