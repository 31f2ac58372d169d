"""A factory hears of its own alerts, and every account sets its notification preferences.

Through the durable delivery queue to a real SMTP server (aiosmtpd, as tests/test_notifiers.py)
and a real HTTP endpoint behind an Apprise ``json://`` URL: the factory's registry contacts, the
duty officer with the channels and muting set on the preferences API, an operator's own
channels; the registry stays the source of duty routing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.model import AlertEvent
from alerts.notifiers.apprise_notifier import AppriseNotifier
from alerts.notifiers.dispatch import Dispatcher
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.preferences import PreferenceError, PreferenceStore
from alerts.notifiers.routing import Router
from eit.confread import load_yaml
from eit.timeutil import now_ns
from testbed.town import TownApp, TownSpec, build_town
from tests.conftest import EXAMPLE_SITE
from tests.test_notifiers import Mailbox
from tests.webhook_receiver import WebhookReceiver

BIOMASS = "kaeng-khoi-biomass"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    app = TownApp(build_town(tmp_path / "town", TownSpec(hours=1)))
    app.accounts.set_officer("olivia", "duty-rayong")
    yield app
    app.close()


def dispatcher(app: TownApp, notifiers: list[object]) -> Dispatcher:
    d = Dispatcher(notifiers, Router(app.town.registry), app.state_db, poll_s=0.2)
    d.start()
    return d


def open_case(app: TownApp, factory: str, device: str, parameter: str, severity: str) -> AlertEvent:
    alert = app.alerts.open_alert(
        (factory, device, parameter, "limit"),
        severity,
        f"{parameter} above the limit",
        now_ns(),
        80.0,
        60.0,
        "ppm",
    )
    assert alert is not None
    return AlertEvent("opened", alert)


def test_the_example_registry_names_a_contact_of_the_biomass_plant() -> None:
    from eit.registry import load_registry

    [contact] = load_registry(EXAMPLE_SITE).factories[BIOMASS].contacts
    assert (contact.id, contact.email, contact.language) == (
        "env-manager",
        "env.manager@kaengkhoi.example",
        "th",
    )
    assert load_registry(EXAMPLE_SITE).factories["eastern-petrochem"].contacts == ()


def test_a_factory_contact_hears_of_its_own_alerts_by_email_and_apprise(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    data = load_yaml(EXAMPLE_SITE)
    data["factories"][0]["contacts"].append({"id": "shift-lead", "name": "Shift lead", "language": "en"})
    site = tmp_path / "site.yaml"
    import yaml

    site.write_text(yaml.safe_dump(data, allow_unicode=True))
    app = TownApp(build_town(tmp_path / "town", TownSpec(hours=1), site=site))
    with WebhookReceiver() as hook:
        apprise = AppriseNotifier(
            contacts={f"{BIOMASS}/shift-lead": [hook.url.replace("http://", "json://")]}
        )
        mail = EmailNotifier("127.0.0.1", mailbox.port, "eit@example.org", retries=0)
        d = dispatcher(app, [mail, apprise])
        try:
            opened = open_case(app, BIOMASS, "boiler-1", "so2", "critical")
            d.submit(opened)
            d.submit(open_case(app, "eastern-petrochem", "fenceline-1", "pm25", "critical"))
            d.submit(AlertEvent("escalated", opened.alert, 1))  # escalation is the officers' matter
            assert d.wait_idle(30)
            [to_factory] = mailbox.to("env.manager@kaengkhoi.example")
            assert (
                to_factory["Subject"].startswith("[EIT]")
                and "kaeng-khoi-biomass/boiler-1 so2" in to_factory["Subject"]
            )
            body = to_factory.get_content()
            assert "ของโรงงานของท่าน" in body and "eit alert ack" not in body  # Thai, the factory's footer
            # The duty officer, as before (of both factories: the registry routes both to them).
            assert sorted(BIOMASS in m["Subject"] for m in mailbox.to("duty.rayong@example.org")) == [
                False,
                True,
            ]
            [called] = hook.received
            assert (
                "kaeng-khoi-biomass/boiler-1 so2" in called["title"]
                and "of your factory" in called["message"]
            )
            resolved = app.alerts.resolve_id(opened.alert.id, "olivia", now_ns(), "scrubber fixed")
            d.submit(AlertEvent("resolved", resolved))
            assert d.wait_idle(30)
            assert len(mailbox.to("env.manager@kaengkhoi.example")) == 2 and len(hook.received) == 2
            # Each delivery went through the queue, once per contact and channel.
            recipients = {(n, r) for _, n, r in app.alerts.notifications(opened.alert.id)}
            assert ("email:opened", f"{BIOMASS}/env-manager") in recipients
            assert ("apprise:opened", f"{BIOMASS}/shift-lead") in recipients
            assert not any(r.startswith(BIOMASS + "/") for n, r in recipients if n.endswith(":escalated"))
        finally:
            d.stop()
            app.close()


def test_preferences_page_and_api_add_channels_and_mute_non_critical_never_critical(
    town: TownApp, mailbox: Mailbox
) -> None:
    c, h = town.client, town.headers("olivia")
    page = c.get("/preferences?lang=en")
    assert (
        page.status_code == 200 and "My notifications" in page.text and "/static/preferences.js" in page.text
    )
    assert c.get("/api/v1/me/notifications").status_code == 401
    me = c.get("/api/v1/me/notifications", headers=h).json()
    assert me["routing"]["as"] == "officer" and me["routing"]["officer"] == "duty-rayong"
    assert me["routing"]["email"] == "duty.rayong@example.org" and me["channels"] == []
    assert me["mute_non_critical"] is False and me["critical_always_sent"] is True
    # An account that is no registry officer is routed nothing: it is told so.
    assert c.get("/api/v1/me/notifications", headers=town.headers("ada")).json()["routing"] == {"as": "none"}

    added = c.post(
        "/api/v1/me/notifications/channels",
        json={"kind": "email", "address": "olivia@home.example"},
        headers=h,
    )
    assert added.status_code == 201, added.text
    bad = c.post(
        "/api/v1/me/notifications/channels", json={"kind": "email", "address": "not an address"}, headers=h
    )
    assert bad.status_code == 422 and "'not an address' is not an e-mail address" in bad.json()["detail"]
    twice = c.post(
        "/api/v1/me/notifications/channels",
        json={"kind": "email", "address": "olivia@home.example"},
        headers=h,
    )
    assert twice.status_code == 422 and "one of your channels already" in twice.json()["detail"]
    unknown = c.post(
        "/api/v1/me/notifications/channels", json={"kind": "apprise", "address": "nosuch://x"}, headers=h
    )
    assert unknown.status_code == 422 and "'nosuch://' is not an Apprise URL" in unknown.json()["detail"]
    muted = c.put("/api/v1/me/notifications", json={"mute_non_critical": True}, headers=h)
    assert muted.status_code == 200 and muted.json()["mute_non_critical"] is True

    mail = EmailNotifier("127.0.0.1", mailbox.port, "eit@example.org", retries=0)
    d = dispatcher(town, [mail])
    try:
        d.submit(open_case(town, BIOMASS, "boiler-1", "nox", "warning"))
        assert d.wait_idle(30)
        # Muted: the warning reaches neither the registry's address nor the added one ...
        assert mailbox.to("duty.rayong@example.org") == [] and mailbox.to("olivia@home.example") == []
        # ... but the factory's contact still hears of its own alert.
        assert len(mailbox.to("env.manager@kaengkhoi.example")) == 1
        d.submit(open_case(town, BIOMASS, "boiler-1", "so2", "critical"))
        assert d.wait_idle(30)
        # A critical alert always reaches every channel: the registry's and the added one.
        assert len(mailbox.to("duty.rayong@example.org")) == 1 and len(mailbox.to("olivia@home.example")) == 1
        # Muting is the account's own: another officer's routing is the registry's as before.
        assert mailbox.to("supervisor.rayong@example.org") == []
    finally:
        d.stop()

    channel = c.get("/api/v1/me/notifications", headers=h).json()["channels"][0]
    assert c.delete(f"/api/v1/me/notifications/channels/{channel['id']}", headers=h).json()["channels"] == []
    assert c.delete(f"/api/v1/me/notifications/channels/{channel['id']}", headers=h).status_code == 404


def test_an_operator_hears_of_its_factory_on_its_own_channels_read_when_delivered(
    town: TownApp, mailbox: Mailbox
) -> None:
    c, h = town.client, town.headers("kk-op")
    me = c.get("/api/v1/me/notifications", headers=h).json()
    assert me["routing"] == {
        "as": "operator",
        "factory": BIOMASS,
        "contacts": [
            {"id": "env-manager", "name": "Environmental manager", "email": "env.manager@kaengkhoi.example"}
        ],
    }
    assert (
        c.put(
            "/api/v1/me/notifications", json={"mute_non_critical": False, "language": "en"}, headers=h
        ).status_code
        == 200
    )
    c.post(
        "/api/v1/me/notifications/channels",
        json={"kind": "email", "address": "kk-op@kaengkhoi.example"},
        headers=h,
    )
    with WebhookReceiver() as hook:
        url = hook.url.replace("http://", "json://")
        shown = c.post(
            "/api/v1/me/notifications/channels", json={"kind": "apprise", "address": url}, headers=h
        ).json()
        # An Apprise URL holds a service's token: it is never shown back whole.
        assert [ch["address"] for ch in shown["channels"]] == [
            "kk-op@kaengkhoi.example",
            f"json://…{url[-4:]}",
        ]
        d = dispatcher(
            town, [EmailNotifier("127.0.0.1", mailbox.port, "eit@example.org", retries=0), AppriseNotifier()]
        )
        try:
            d.submit(open_case(town, BIOMASS, "boiler-1", "pm", "warning"))
            d.submit(
                open_case(town, "siam-cassava-starch", "outfall-1", "cod", "critical")
            )  # not its factory
            assert d.wait_idle(30)
            [to_op] = mailbox.to("kk-op@kaengkhoi.example")
            assert "of your factory" in to_op.get_content()  # in English, its own choice
            [called] = hook.received
            assert "kaeng-khoi-biomass/boiler-1 pm" in called["title"]
            # The queue keeps no Apprise URL: the operator's are read when delivering.
            assert d.queue is not None
            queued = [q for q in d.queue.listing("delivered") if q.recipient == "user:kk-op"]
            assert [q.notifier for q in queued] == ["apprise"]
            assert all(hook.url.split("//")[1] not in str(q.parts) for q in d.queue.listing("delivered"))
            # A URL removed before its notification is delivered is not used.
            apprise_id = next(ch["id"] for ch in shown["channels"] if ch["kind"] == "apprise")
            c.delete(f"/api/v1/me/notifications/channels/{apprise_id}", headers=h)
            d.submit(open_case(town, BIOMASS, "boiler-1", "nox", "critical"))
            assert d.wait_idle(30)
            assert len(hook.received) == 1 and len(mailbox.to("kk-op@kaengkhoi.example")) == 2
        finally:
            d.stop()


def test_the_store_refuses_what_it_cannot_keep(town: TownApp) -> None:
    store = PreferenceStore(town.state_db)
    with pytest.raises(PreferenceError, match="language 'fr' is not one of th, en"):
        store.set_options("olivia", False, "fr", now_ns())
    for i in range(10):
        store.add_channel("sam", "email", f"sam{i}@example.org", now_ns())
    with pytest.raises(PreferenceError, match="at most 10 channels"):
        store.add_channel("sam", "email", "sam10@example.org", now_ns())
    assert len(store.get("sam").emails) == 10 and store.get("ada").emails == ()
