"""Notifiers against real endpoints on this machine: an SMTP server (aiosmtpd), an HTTP server
(webhook, and Apprise's json:// target), Mosquitto; routing by factory and district, escalation,
Thai and English texts, and each exceedance queued once per channel per escalation step
(delivery at least once: tests/test_notification_queue.py)."""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import tenacity
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion

from alerts.engine import AlertEngine
from alerts.model import Alert, AlertEvent
from alerts.notifiers.apprise_notifier import AppriseNotifier
from alerts.notifiers.base import NotifyError, retrying
from alerts.notifiers.dispatch import Dispatcher, Route
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.mqtt import MqttNotifier
from alerts.notifiers.queue import DeliveryQueue
from alerts.notifiers.routing import Router
from alerts.notifiers.webhook import WebhookNotifier, signature
from alerts.settings import RuleSettings
from alerts.state import AlertStore, open_alert_store
from eit.confread import Section
from eit.model import Reading
from eit.mqttconf import read_mqtt
from eit.registry import Officer, load_registry
from ingest.store.sqlite import SqliteStore
from testbed.services import REPO, Mosquitto, free_port, wait_for
from tests.webhook_receiver import WebhookReceiver

S = 1_000_000_000
H = 3600 * S
T0 = 1795752000 * S
SITE = REPO / "tests" / "data" / "compliance-site.yaml"


class Mailbox:
    """A real SMTP server (aiosmtpd) on a free port that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                box.messages.append(msg)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


def alert_at(ts_ns: int) -> Alert:
    return Alert(
        1, "biomass", "boiler", "so2", "limit", "critical", "active", ts_ns, ts_ns, "SO2 above the limit",
        value=75.0, limit=60.0, unit="ppm",
    )  # fmt: skip


def stack_hour(start: int, so2: float, minutes: range = range(60)) -> list[Reading]:
    out = []
    for m in minutes:
        ts = start + m * 60 * S
        out += [
            Reading("biomass", "boiler", "so2", ts, so2 + (m % 3) * 0.1),
            Reading("biomass", "boiler", "o2", ts, 7.0 + (m % 2) * 0.01),
        ]
    return out


class Town:
    def __init__(
        self,
        tmp: Path,
        notifiers: list[Any],
        alerts: AlertStore | None = None,
        routes: list[Route] | None = None,
    ) -> None:
        self.registry = load_registry(SITE)
        self.alerts = alerts or open_alert_store(None, tmp / "state.db")
        self.store = SqliteStore(tmp / "readings.db")
        self.dispatcher = Dispatcher(notifiers, Router(self.registry), self.alerts.db, routes)
        self.dispatcher.start()
        self.events: list[AlertEvent] = []
        self.engine = AlertEngine(
            self.registry,
            self.alerts,
            self.dispatcher,
            clock=lambda: T0,
            on_event=self.events.append,
            settings=RuleSettings(stale_after_s=1e9, escalate_after_s=1800),
            store=self.store,
        )

    def settle(self) -> None:
        assert self.dispatcher.wait_idle(30)

    def close(self) -> None:
        self.dispatcher.stop()
        self.store.close()
        self.alerts.close()


def test_exceedance_is_mailed_once_per_officer_per_escalation_step_in_their_language(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mail = EmailNotifier("127.0.0.1", mailbox.port, "eit@example.org", retries=0)
    with WebhookReceiver() as hook:
        town = Town(tmp_path, [mail, WebhookNotifier(hook.url, retries=0, secret="s3cret")])
        town.engine.on_readings(stack_hour(T0, 80.0, range(20)), T0 + 20 * 60 * S)
        town.engine.on_readings(stack_hour(T0, 80.0, range(20, 40)), T0 + 40 * 60 * S)  # still exceeding
        town.settle()
        [to_duty] = mailbox.to("duty@example.org")
        assert mailbox.to("chief@example.org") == []  # the supervisor is reached by escalation
        # A provisional exceedance (the running hour) is a warning until the hour confirms it.
        assert to_duty["Subject"] == "[EIT] เตือน: biomass/boiler so2 (limit)"
        body = to_duty.get_content()
        assert "สูงกว่าค่ามาตรฐาน 60 ppm" in body and "ปรับที่ออกซิเจน 7 %" in body
        # Opened at 11:20 and not acknowledged by 11:50: the supervisor is told, in English.
        town.engine.tick(T0 + 49 * 60 * S)
        assert town.alerts.list(state="open")[0].escalation_step == 0
        town.engine.tick(T0 + 51 * 60 * S)
        town.engine.tick(T0 + 52 * 60 * S)
        town.settle()
        [to_chief] = mailbox.to("chief@example.org")
        assert to_chief["Subject"].startswith("[EIT] not acknowledged in time, escalated: biomass/boiler so2")
        assert "ppm above the standard limit 60 ppm (provisional" in to_chief.get_content()
        # The same event delivered again (a restart, a retry) reaches nobody a second time.
        opened = next(e for e in town.events if e.kind == "opened")
        town.dispatcher.submit(opened)
        town.settle()
        assert len(mailbox.to("duty@example.org")) == 1 and len(mailbox.to("chief@example.org")) == 1
        calls = [(b["event"], b["step"]) for b in hook.received]
        assert calls == [("opened", 0), ("escalated", 1)]
        assert "ppm สูงกว่าค่ามาตรฐาน 60 ppm (เบื้องต้น" in hook.received[0]["message"]["th"]
        assert town.alerts.notifications(opened.alert.id) == [
            (0, "email:opened", "duty"),
            (0, "webhook:opened", "*"),
            (1, "email:escalated", "chief"),
            (1, "webhook:escalated", "*"),
        ]
        town.close()


def test_an_acknowledged_alert_does_not_escalate(tmp_path: Path, mailbox: Mailbox) -> None:
    town = Town(tmp_path, [EmailNotifier("127.0.0.1", mailbox.port, "eit@example.org", retries=0)])
    town.engine.on_readings(stack_hour(T0, 80.0, range(20)), T0 + 20 * 60 * S)
    alert = next(e.alert for e in town.events if e.kind == "opened")
    town.alerts.acknowledge(alert.id, "duty", T0 + 25 * 60 * S, "on my way")
    town.engine.tick(T0 + 45 * 60 * S)
    town.settle()
    assert [m["To"] for m in mailbox.messages] == ["duty@example.org"]
    town.close()


def test_notifier_routing_by_district(tmp_path: Path) -> None:
    with WebhookReceiver() as rayong, WebhookReceiver() as ban_chang:
        town = Town(
            tmp_path,
            [WebhookNotifier(rayong.url, retries=0), WebhookNotifier(ban_chang.url, retries=0)],
            routes=[Route(districts=("Mueang Rayong",)), Route(factories=("petro",))],
        )
        town.engine.on_readings(stack_hour(T0, 80.0, range(20)), T0 + 20 * 60 * S)
        town.settle()
        assert [b["alert"]["factory"] for b in rayong.received] == ["biomass"]
        assert ban_chang.received == []
        town.close()


def test_webhook_is_hmac_signed_and_retried_with_backoff(tmp_path: Path) -> None:
    with WebhookReceiver(fail_first=2) as hook:
        town = Town(tmp_path, [WebhookNotifier(hook.url, retries=3, backoff_s=0.05, secret="s3cret")])
        town.engine.on_readings(stack_hour(T0, 80.0, range(20)), T0 + 20 * 60 * S)
        town.settle()
        assert hook.attempts == 3
        [(headers, raw)] = hook.raw
        stamp = headers["X-EIT-Timestamp"]
        assert headers["X-EIT-Signature"] == signature("s3cret", stamp, raw)
        assert headers["X-EIT-Signature"] != signature("wrong", stamp, raw)
        body = json.loads(raw)
        assert (
            body["alert"]["value"] > body["alert"]["limit"] == 60.0 and body["alert"]["provisional"] is True
        )
        town.close()


def test_webhook_gives_up_after_its_retries_with_growing_pauses_and_never_retries_a_refusal() -> None:
    event = AlertEvent("opened", alert_at(T0))
    with WebhookReceiver(fail_first=100) as hook:
        with pytest.raises(NotifyError, match="HTTP 503"):
            WebhookNotifier(hook.url, retries=3, backoff_s=0.1).send(event)
        assert hook.attempts == 4  # the first try and its 3 retries
        pauses = [b - a for a, b in itertools.pairwise(hook.attempted_at)]
        # 0.1 s, 0.2 s, 0.4 s, each plus up to 0.1 s of jitter (and the HTTP round trip).
        for n, pause in enumerate(pauses):
            assert 0.1 * 2**n <= pause < 0.1 * 2**n + 0.1 + 0.5, pauses
    with WebhookReceiver(fail_first=100, fail_status=400) as refusing:
        with pytest.raises(NotifyError, match="HTTP 400"):
            WebhookNotifier(refusing.url, retries=3, backoff_s=0.1).send(event)
        assert refusing.attempts == 1


def test_notifier_pauses_are_jittered_within_their_bounds() -> None:
    policy = retrying(5, 1.0, lambda exc: True)
    for attempt, base in ((1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0)):
        state = tenacity.RetryCallState(policy, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        pauses = {policy.wait(state) for _ in range(50)}
        assert all(base <= p <= min(base + 1.0, 30.0) for p in pauses), (attempt, sorted(pauses))
        # Random within the bound, so notifiers failing together spread their retries.
        assert len(pauses) > 1 or base == 30.0


def test_email_is_retried_while_the_server_fails_then_given_up_and_a_refused_recipient_is_not() -> None:
    officer = Officer("olivia", "Olivia", "olivia@example.org", "officer", "en", ("*",), ())
    event = AlertEvent("opened", alert_at(T0))
    tries: list[str] = []

    class Failing:  # a real SMTP server that fails every message for now (451), or refuses the recipient
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if address.startswith("nobody@"):
                tries.append("rcpt")
                return "550 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            tries.append("data")
            return "451 try again later"

    port = free_port()
    controller = Controller(Failing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mail = EmailNotifier("127.0.0.1", port, "eit@example.org", retries=2, backoff_s=0.05)
        with pytest.raises(NotifyError, match="451"):
            mail.send_to(event, officer)
        assert tries == ["data"] * 3  # the first try and its 2 retries
        tries.clear()
        with pytest.raises(NotifyError, match="550"):
            mail.send_to(event, replace(officer, email="nobody@example.org"))
        assert tries == ["rcpt"]
    finally:
        controller.stop()


def test_apprise_delivers_to_a_real_json_endpoint_per_officer_and_to_everyone(tmp_path: Path) -> None:
    with WebhookReceiver() as everyone, WebhookReceiver() as duty:
        apprise_everyone = everyone.url.replace("http://", "json://")
        apprise_duty = duty.url.replace("http://", "json://")
        town = Town(tmp_path, [AppriseNotifier([apprise_everyone], {"duty": [apprise_duty]})])
        town.engine.on_readings(stack_hour(T0, 80.0, range(20)), T0 + 20 * 60 * S)
        town.settle()
        [personal] = duty.received
        assert personal["title"] == "[EIT] เตือน: biomass/boiler so2 (limit)"
        assert "สูงกว่าค่ามาตรฐาน 60 ppm" in personal["message"]
        [broadcast] = everyone.received
        assert (
            "สูงกว่าค่ามาตรฐาน" in broadcast["message"]
            and "above the standard limit 60 ppm" in broadcast["message"]
        )
        town.close()


def test_apprise_refuses_a_url_it_does_not_know_naming_the_scheme() -> None:
    with pytest.raises(ValueError, match="nosuch:// is not an Apprise URL"):
        AppriseNotifier(["nosuch://x"])


@pytest.mark.integration
def test_alert_events_are_published_on_eit_alerts_factory(tmp_path: Path, mosquitto: Mosquitto) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    ready = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="alerts-sub")

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe("eit/alerts/#", qos=1)
        ready.set()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        got.append((message.topic, json.loads(message.payload)))

    sub.on_connect = on_connect
    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    assert ready.wait(10)
    settings = read_mqtt(
        Section({"host": "127.0.0.1", "port": mosquitto.port, "client_id": "eit-alerts-test"}, "t"),
        tmp_path,
        "x",
    )
    notifier = MqttNotifier(settings)
    town = Town(tmp_path, [notifier])
    try:
        town.engine.on_readings(stack_hour(T0, 80.0, range(20)), T0 + 20 * 60 * S)
        town.settle()
        wait_for(lambda: len(got) >= 1, 10, "the alert on eit/alerts/biomass")
        topic, body = got[0]
        assert topic == "eit/alerts/biomass"
        assert body["event"] == "opened" and body["alert"]["parameter"] == "so2"
        assert "ppm above the standard limit 60 ppm" in body["message"]["en"]
        [queued] = DeliveryQueue(town.alerts.db).for_alert(body["alert"]["id"])
        assert (queued.notifier, queued.state) == ("mqtt", "delivered")
        assert body["idempotency_key"] == queued.key  # receivers drop a repeat by it
    finally:
        town.close()
        notifier.close()
        sub.loop_stop()
        sub.disconnect()


def test_the_engine_keeps_its_alerts_in_a_real_postgresql(tmp_path: Path, postgres_url: str) -> None:
    with WebhookReceiver() as hook:
        alerts = open_alert_store(postgres_url, tmp_path / "unused.db")
        town = Town(tmp_path, [WebhookNotifier(hook.url, retries=0)], alerts=alerts)
        town.engine.on_readings(stack_hour(T0, 80.0, range(20)), T0 + 20 * 60 * S)
        town.engine.on_readings(stack_hour(T0, 80.0, range(20, 60)), T0 + 60 * 60 * S)
        town.engine.tick(T0 + H + 150 * S)
        town.settle()
        [alert] = town.alerts.list(state="active")
        assert (alert.rule, alert.provisional) == ("limit", False)
        assert alert.value == pytest.approx(80.1, abs=0.1)
        # Confirmed when the hour closed; escalated: nobody acknowledged it in 30 minutes.
        assert [e.action for e in town.alerts.audit(alert.id)] == ["opened", "confirmed", "escalated"]
        assert [b["event"] for b in hook.received] == ["opened", "confirmed", "escalated"]
        town.close()
