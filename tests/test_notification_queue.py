"""Notifications at least once, through the delivery queue in the state database, against real
receivers on this machine (an HTTP server, an SMTP server, Apprise's json:// target): sent again
after a crash between the receiver's answer and the mark, with the same idempotency key; never
again after an answer; everything delivered, in order, once a receiver that was down comes back;
expired after the notifier's expire_after_s; one dead or hanging notifier never delays another;
what was not delivered shown to officers (API) with its last error, and counted in the metrics."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from alerts.model import AlertEvent
from alerts.notifiers.apprise_notifier import AppriseNotifier
from alerts.notifiers.base import idempotency_key
from alerts.notifiers.dispatch import Channel, Dispatcher
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.metrics import NotificationMetrics
from alerts.notifiers.queue import DELIVERED, EXPIRED, PENDING, Delivery, DeliveryQueue
from alerts.notifiers.routing import Router
from alerts.notifiers.webhook import WebhookNotifier
from alerts.notifiers.worker import DeliveryPolicy
from alerts.state import AlertStore
from eit.registry import Registry, load_registry
from eit.timeutil import now_ns
from server.accounts import Accounts
from server.api import ApiSettings, ApiSources, create_app
from statedb import StateDb, StateDbUnavailable, open_state_db
from testbed.services import REPO, free_port, wait_for
from tests.webhook_receiver import WebhookReceiver

S = 1_000_000_000
T0 = 1795752000 * S
SITE = REPO / "tests" / "data" / "compliance-site.yaml"
KEY = ("biomass", "boiler", "so2", "limit")
QUICK = DeliveryPolicy(expire_after_s=120.0, retry_after_s=0.2, retry_max_s=0.5)


class Mailbox:
    """A real SMTP server (aiosmtpd) on a free port that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


class Town:
    """The compliance test town's registry and a state database with its alerts: the SQLite file
    ``path``, or PostgreSQL at ``url``."""

    def __init__(self, tmp: Path, url: str | None = None) -> None:
        self.path = tmp / "state.db"
        self.registry: Registry = load_registry(SITE)
        self.db: StateDb = open_state_db(url, self.path)
        self.alerts = AlertStore(self.db)
        self.queue = DeliveryQueue(self.db)
        self.dispatchers: list[Dispatcher] = []

    def dispatcher(self, channels: list[Any], **kwargs: Any) -> Dispatcher:
        d = Dispatcher(channels, Router(self.registry), self.db, **kwargs)
        self.dispatchers.append(d)
        return d

    def opened(self, key: tuple[str, str, str, str] = KEY) -> AlertEvent:
        alert = self.alerts.open_alert(
            key, "critical", "so2 80 ppm above the standard limit 60 ppm", T0, 80.0, 60.0
        )
        assert alert is not None
        return AlertEvent("opened", alert, 0)

    def rows(self, alert_id: int) -> list[Delivery]:
        return self.queue.for_alert(alert_id)

    def wait_state(self, alert_id: int, state: str, timeout_s: float = 20.0) -> list[Delivery]:
        wait_for(
            lambda: all(r.state == state for r in self.rows(alert_id)) and bool(self.rows(alert_id)),
            timeout_s,
            f"alert #{alert_id}'s notifications {state}",
        )
        return self.rows(alert_id)

    def close(self) -> None:
        for d in self.dispatchers:
            d.stop(5.0)
        self.db.close()


@pytest.fixture
def town(tmp_path: Path) -> Iterator[Town]:
    t = Town(tmp_path)
    yield t
    t.close()


# A fixture that starts its service itself marks its param: conftest sees only requested fixtures.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def either_town(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Town]:
    """A town on each kind of state database."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    t = Town(tmp_path, url)
    yield t
    t.close()


def test_the_idempotency_key_is_one_per_alert_step_event_and_recipient(town: Town) -> None:
    event = town.opened()
    key = idempotency_key("golden-town", event, "*")
    assert key == idempotency_key("golden-town", event, "*")
    others = {
        idempotency_key("golden-town", event, "duty"),
        idempotency_key("other-town", event, "*"),
        idempotency_key("golden-town", AlertEvent("escalated", event.alert, 1), "*"),
        idempotency_key("golden-town", AlertEvent("resolved", event.alert, 0), "*"),
    }
    assert key not in others and len(others) == 4
    # A reopened alert's events differ by its flap count, routine updates by their time.
    reopened = idempotency_key("t", AlertEvent("reopened", event.alert, 0), "*")
    assert reopened == idempotency_key("t", AlertEvent("reopened", event.alert, 0), "*")
    updated = idempotency_key("t", AlertEvent("updated", event.alert, 0), "*")
    event.alert.flaps += 1
    event.alert.updated_ns += S
    assert reopened != idempotency_key("t", AlertEvent("reopened", event.alert, 0), "*")
    assert updated != idempotency_key("t", AlertEvent("updated", event.alert, 0), "*")


def test_a_notification_answered_before_a_crash_and_not_marked_is_sent_again_with_its_key(
    town: Town, tmp_path: Path
) -> None:
    """The process dies between the receiver's 2xx and marking the notification delivered (a real
    exit, os._exit, at the mark): after the restart it is sent again, with the same key, and ends
    delivered."""
    with WebhookReceiver() as hook:
        event = town.opened()
        town.dispatcher([WebhookNotifier(hook.url, retries=0)]).submit(event)
        [queued] = town.rows(event.alert.id)
        assert (queued.state, queued.attempts) == (PENDING, 0)
        script = textwrap.dedent(
            f"""
            import os, threading
            from pathlib import Path
            from alerts.notifiers.dispatch import Dispatcher
            from alerts.notifiers.queue import DeliveryQueue
            from alerts.notifiers.routing import Router
            from alerts.notifiers.webhook import WebhookNotifier
            from eit.registry import load_registry
            from statedb import open_state_db

            def crash(self, delivery_id, now_ns):
                os._exit(9)  # killed after the receiver answered, before the mark

            DeliveryQueue.delivered = crash
            db = open_state_db(None, Path({str(town.path)!r}))
            registry = load_registry(Path({str(SITE)!r}))
            Dispatcher([WebhookNotifier({hook.url!r}, retries=0)], Router(registry), db, lease_s=1.0).start()
            threading.Event().wait(60)
            """
        )
        crashed = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=90
        )
        assert crashed.returncode == 9, crashed.stderr
        assert hook.attempts == 1
        [left] = town.rows(event.alert.id)
        assert (left.state, left.attempts) == (PENDING, 1)  # answered, never marked
        # The restarted process: the dead one's lease runs out, and the notification goes again.
        town.dispatcher([WebhookNotifier(hook.url, retries=0)]).start()
        [done] = town.wait_state(event.alert.id, DELIVERED)
        assert done.attempts == 2 and hook.attempts == 2
        keys = [headers["Idempotency-Key"] for headers, _ in hook.raw]
        assert keys == [queued.key, queued.key]
        assert [body["idempotency_key"] for body in hook.received] == [queued.key, queued.key]
        assert hook.raw[0][1] == hook.raw[1][1]  # the same body, rendered once


def test_a_notification_answered_is_not_sent_again_while_its_mark_waits_for_the_database(
    town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = DeliveryQueue.delivered
    refusals: list[int] = []

    def delivered_later(self: DeliveryQueue, delivery_id: int, at_ns: int) -> None:
        if len(refusals) < 3:
            refusals.append(delivery_id)
            raise StateDbUnavailable("state database: connection refused (test)")
        real(self, delivery_id, at_ns)

    monkeypatch.setattr(DeliveryQueue, "delivered", delivered_later)
    with WebhookReceiver() as hook:
        event = town.opened()
        d = town.dispatcher([WebhookNotifier(hook.url, retries=0)])
        d.start()
        d.submit(event)
        [row] = town.wait_state(event.alert.id, DELIVERED)
        assert len(refusals) == 3 and row.attempts == 1
        assert hook.attempts == 1 and len(hook.received) == 1


def test_a_receiver_down_for_a_while_gets_every_notification_in_order_once_it_is_back(
    either_town: Town,
) -> None:
    town = either_town
    with WebhookReceiver() as hook:
        hook.refusing = True
        d = town.dispatcher([Channel(WebhookNotifier(hook.url, retries=0), "webhook", policy=QUICK)])
        metrics = CollectorRegistry()
        metrics.register(NotificationMetrics(d))
        d.start()
        opened = town.opened()
        d.submit(opened)
        escalated = town.alerts.escalate(opened.alert.id, 1, T0 + 1800 * S)
        assert escalated is not None
        d.submit(AlertEvent("escalated", escalated, 1))
        resolved = town.alerts.end_condition(KEY, T0 + 3600 * S, "below the limit")
        assert resolved is not None
        d.submit(AlertEvent("resolved", resolved, 0))
        rows = town.rows(opened.alert.id)
        assert [r.event for r in rows] == ["opened", "escalated", "resolved"]
        wait_for(lambda: len(hook.refused) >= 4, 20, "four refused attempts")
        # In order: nothing after the first notification is tried while it is not delivered.
        assert {h["Idempotency-Key"] for h in hook.refused} == {rows[0].key}
        failing = town.rows(opened.alert.id)[0]
        assert failing.failing and "HTTP 503" in failing.last_error and failing.attempts >= 4
        hook.refusing = False
        town.wait_state(opened.alert.id, DELIVERED)
        assert [b["event"] for b in hook.received] == ["opened", "escalated", "resolved"]
        assert [b["idempotency_key"] for b in hook.received] == [r.key for r in rows]
        stats = d.stats()["webhook"]
        assert (stats.queued, stats.delivered, stats.expired) == (3, 3, 0)
        assert stats.failed_attempts == len(hook.refused)
        text = generate_latest(metrics).decode()
        assert 'eit_notifications_delivered_total{notifier="webhook"} 3.0' in text
        assert f'eit_notification_attempts_failed_total{{notifier="webhook"}} {len(hook.refused)}.0' in text


def test_a_notification_not_delivered_in_expire_after_s_expires_and_officers_see_why(
    either_town: Town,
) -> None:
    town = either_town
    with WebhookReceiver() as hook:
        hook.refusing = True
        # Long enough for two attempts on a loaded machine; short enough for a test.
        policy = DeliveryPolicy(expire_after_s=4.0, retry_after_s=0.2, retry_max_s=0.4)
        d = town.dispatcher([Channel(WebhookNotifier(hook.url, retries=0), "ops-hook", policy=policy)])
        metrics = CollectorRegistry()
        metrics.register(NotificationMetrics(d))
        d.start()
        lost = town.opened()
        d.submit(lost)
        [expired] = town.wait_state(lost.alert.id, EXPIRED)
        assert expired.attempts >= 2 and "HTTP 503" in expired.last_error
        assert d.stats()["ops-hook"].expired == 1
        assert 'eit_notifications_expired_total{notifier="ops-hook"} 1.0' in generate_latest(metrics).decode()
        # Back up: a later notification is delivered; the expired one is not sent any more.
        hook.refusing = False
        later = town.opened(("biomass", "boiler", "dust", "limit"))
        d.submit(later)
        town.wait_state(later.alert.id, DELIVERED)
        assert [b["alert"]["id"] for b in hook.received] == [later.alert.id]
        assert town.rows(lost.alert.id)[0].state == EXPIRED
        # The officers' view (the console reads these), with the last error.
        client, token = _api(town)
        officer = {"Authorization": f"Bearer {token('olivia')}"}
        [shown] = client.get(f"/api/v1/alerts/{lost.alert.id}/notifications", headers=officer).json()
        assert (shown["notifier"], shown["recipient"], shown["state"]) == ("ops-hook", "*", "expired")
        assert "HTTP 503" in shown["last_error"] and shown["idempotency_key"] == expired.key
        troubled = client.get("/api/v1/notifications", headers=officer).json()
        assert [n["alert_id"] for n in troubled] == [lost.alert.id]
        delivered = client.get("/api/v1/notifications?state=delivered", headers=officer).json()
        assert [n["alert_id"] for n in delivered] == [later.alert.id]
        operator = {"Authorization": f"Bearer {token('opal')}"}
        assert client.get("/api/v1/notifications", headers=operator).status_code == 403
        assert (
            client.get(f"/api/v1/alerts/{lost.alert.id}/notifications", headers=operator).status_code == 403
        )
        assert client.get("/api/v1/notifications").status_code == 401
        client.close()


@pytest.mark.parametrize("trouble", ["hangs", "refuses"])
def test_a_dead_webhook_does_not_delay_the_mail(town: Town, mailbox: Mailbox, trouble: str) -> None:
    """The webhook is stuck on a first alert (a call that is never answered; a port where nobody
    listens, retried with backoff); the e-mail of a second alert arrives meanwhile."""
    with WebhookReceiver() as hook:
        if trouble == "hangs":
            hook.hanging.set()
            webhook = WebhookNotifier(hook.url, timeout_s=120, retries=0)
        else:
            webhook = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook", retries=3, backoff_s=5.0)
        mail = EmailNotifier("127.0.0.1", mailbox.port, "eit@example.org", retries=0)
        d = town.dispatcher([webhook, mail])
        d.start()
        first = town.opened()
        d.submit(first)
        [stuck, _] = town.rows(first.alert.id)
        assert stuck.notifier == "webhook"
        # The webhook's worker is in its first attempt (leased), and stays there.
        wait_for(lambda: (town.queue.get(stuck.id) or stuck).attempts == 1, 10, "the webhook's attempt")
        if trouble == "hangs":
            wait_for(lambda: hook.hung == 1, 10, "the webhook call hanging")
        second = town.opened(("biomass", "boiler", "dust", "limit"))
        d.submit(second)
        wait_for(lambda: len(mailbox.messages) == 2, 10, "the second alert's e-mail")
        [_, mail_row] = town.rows(second.alert.id)
        assert (mail_row.notifier, mail_row.recipient) == ("email", "duty")
        wait_for(lambda: (town.queue.get(mail_row.id) or mail_row).state == DELIVERED, 10, "the mail marked")
        still = town.queue.get(stuck.id)
        assert still is not None and (still.state, still.attempts) == (PENDING, 1)
        if trouble == "hangs":
            assert hook.hung == 1 and hook.received == []  # still waiting for its answer
            hook.release()
            town.wait_state(first.alert.id, DELIVERED)
            town.wait_state(second.alert.id, DELIVERED)
            assert [b["alert"]["id"] for b in hook.received] == [first.alert.id, second.alert.id]


def test_email_carries_a_message_id_made_from_the_key_and_a_failed_goodbye_is_no_resend(
    town: Town, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def quit_badly(self: smtplib.SMTP) -> tuple[int, bytes]:
        raise smtplib.SMTPResponseException(421, b"closing: too busy to say goodbye")

    monkeypatch.setattr(smtplib.SMTP, "quit", quit_badly)
    d = town.dispatcher(
        [EmailNotifier("127.0.0.1", mailbox.port, "eit@example.org", retries=2, backoff_s=0.1)]
    )
    d.start()
    event = town.opened()
    d.submit(event)
    [row] = town.wait_state(event.alert.id, DELIVERED)
    assert row.attempts == 1 and len(mailbox.messages) == 1
    [message] = mailbox.messages
    assert message["Message-ID"] == f"<{row.key}@example.org>"
    assert row.key == idempotency_key("golden-town", event, "duty")


def test_apprise_json_targets_carry_the_key_in_a_header_and_the_payload(town: Town) -> None:
    with WebhookReceiver() as everyone:
        apprise = AppriseNotifier([everyone.url.replace("http://", "json://")])
        d = town.dispatcher([apprise])
        d.start()
        event = town.opened()
        d.submit(event)
        [row] = town.wait_state(event.alert.id, DELIVERED)
        [(headers, raw)] = everyone.raw
        assert headers["Idempotency-Key"] == row.key and json.loads(raw)["idempotency_key"] == row.key
        assert "above the standard limit 60 ppm" in json.loads(raw)["message"]


def test_a_submitted_event_is_queued_once_and_a_foreign_kind_is_sent_the_event_again(town: Town) -> None:
    """A kind with send() only (tests/notifier_kind_memo.py's shape) gets the event rebuilt from
    the queue; submitting the same event again queues nothing."""

    class Memo:
        name = "memo"

        def __init__(self) -> None:
            self.sent: list[AlertEvent] = []

        def send(self, event: AlertEvent) -> None:
            self.sent.append(event)

    memo = Memo()
    d = town.dispatcher([memo])
    d.start()
    event = town.opened()
    d.submit(event)
    d.submit(event)
    assert d.wait_idle(20)
    town.wait_state(event.alert.id, DELIVERED)
    assert memo.sent == [event]
    assert town.alerts.notifications(event.alert.id) == [(0, "memo:opened", "*")]


def _api(town: Town) -> tuple[TestClient, Any]:
    """The HTTP API on the town's state database, with an officer and an operator."""
    from ingest.store.sqlite import SqliteStore

    accounts = Accounts(town.db)
    accounts.add_user("olivia", "officer", "olivia-pass-2026", now_ns())
    accounts.add_user("opal", "operator", "opal-pass-2026", now_ns(), "biomass")
    store = SqliteStore(town.path.with_name("readings.db"))
    sources = ApiSources(
        registry=town.registry,
        store=store,
        alerts=town.alerts,
        accounts=accounts,
        report=lambda first, last, factory: {},
        render_report=lambda report, form: "",
        alert_text=lambda alert, lang: str(alert.message),
        notifications=town.queue,
    )
    client = TestClient(
        create_app(lambda: (True, {}), CollectorRegistry(), sources, ApiSettings(pages=False))
    )

    def token(name: str) -> str:
        r = client.post("/api/v1/token", data={"username": name, "password": f"{name}-pass-2026"})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    return client, token


def test_two_notifiers_of_one_kind_each_get_every_alert(town: Town) -> None:
    """Each notifier has its own queue and claims (by its name), so the second webhook is not
    taken for the first."""
    with WebhookReceiver() as a, WebhookReceiver() as b:
        d = town.dispatcher([WebhookNotifier(a.url, retries=0), WebhookNotifier(b.url, retries=0)])
        d.start()
        event = town.opened()
        d.submit(event)
        rows = town.wait_state(event.alert.id, DELIVERED)
        assert [r.notifier for r in rows] == ["webhook", "webhook-2"]
        assert len(a.received) == 1 and len(b.received) == 1
        assert town.alerts.notifications(event.alert.id) == [
            (0, "webhook-2:opened", "*"),
            (0, "webhook:opened", "*"),
        ]
