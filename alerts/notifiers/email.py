"""E-mail to officers over SMTP (smtplib), in each officer's language.

A message is rendered once, when its notification is queued, and sent as it is at every attempt:
its ``Message-ID`` is made from the notification's idempotency key, so a message sent again (when
``eit serve`` stopped between the server's answer and marking it delivered) is the same message,
which mail stores and clients show once. Once the server answered the message's data with 250 it
is delivered: what the server says to the QUIT that follows changes nothing.
"""

from __future__ import annotations

import smtplib
import ssl
from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

from pydantic import Field, SecretStr

from alerts.messages import alert_text, footer, headline
from alerts.model import AlertEvent
from alerts.notifiers.base import NotifyError, Parts, idempotency_key, retrying
from alerts.notifiers.settings import NotifierContext, NotifierSettings
from eit.plugins import Kind
from eit.registry import Officer
from eit.timeutil import ns_to_iso


class EmailSettings(NotifierSettings):
    """``{kind: email, host, port, from, starttls, ssl, username, password, timeout_s, retries}``."""

    kind: Literal["email"] = "email"
    host: str = "localhost"
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(alias="from")
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0)


class EmailNotifier:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        starttls: bool = False,
        use_ssl: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    def reaches(self, officer: Officer) -> bool:
        return bool(officer.email)

    def message(self, event: AlertEvent, officer: Officer, key: str | None = None) -> EmailMessage:
        """The message to ``officer``; its Message-ID is made from ``key`` (the notification's
        idempotency key)."""
        lang = officer.language
        a = event.alert
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = officer.email
        msg["Subject"] = headline(event, lang)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = message_id(key or idempotency_key("", event, officer.id), self.sender)
        msg["X-EIT-Alert"] = f"{a.id}; step={event.step}; event={event.kind}"
        lines = [
            alert_text(a, lang),
            "",
            f"#{a.id} {a.factory}/{a.device} {a.parameter} [{a.rule}] {a.state}",
            f"{ns_to_iso(a.opened_ns)}",
            "",
            footer(a, lang, officer.role),
        ]
        msg.set_content("\n".join(lines), charset="utf-8")
        return msg

    def render(self, event: AlertEvent, officer: Officer | None, key: str) -> Parts:
        if officer is None:
            raise ValueError("e-mail goes to officers only")
        return {"to": officer.email, "message": self.message(event, officer, key).as_string()}

    def send_to(self, event: AlertEvent, officer: Officer) -> None:
        key = idempotency_key("", event, officer.id)
        self.deliver(self.render(event, officer, key), key)

    def deliver(self, parts: Parts, key: str) -> None:
        msg = message_from_string(str(parts["message"]), policy=policy.default)
        to = str(parts["to"])
        try:
            for attempt in retrying(self.retries, self.backoff_s, _may_pass_next_time):
                with attempt:
                    self._send(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(
                f"e-mail to {to} via {self.host}:{self.port}: {type(exc).__name__}: {exc}"
            ) from None

    def _send(self, msg: EmailMessage) -> None:
        if self.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_s, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)  # returns on the server's 250 to the data
        except BaseException:
            smtp.close()
            raise
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()  # delivered already: a failed goodbye is no reason to send it again


def message_id(key: str, sender: str) -> str:
    """The Message-ID of the notification with idempotency key ``key`` (at the sender's domain)."""
    domain = sender.rpartition("@")[2].strip(" >") or "eit-monitor"
    return f"<{key}@{domain}>"


def build(settings: EmailSettings, context: NotifierContext) -> EmailNotifier:
    return EmailNotifier(
        settings.host,
        settings.port,
        settings.sender,
        starttls=settings.starttls,
        use_ssl=settings.ssl,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        timeout_s=settings.timeout_s,
        retries=settings.retries,
    )


KIND = Kind(EmailSettings, build)


def _may_pass_next_time(exc: BaseException) -> bool:
    """A connection or server failure; a refused recipient is refused again."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return False
    return isinstance(exc, smtplib.SMTPException | OSError)
