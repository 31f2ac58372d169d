"""The web pages in a real headless Chromium (Debian's `chromium`, driven by Playwright), served by
`eit api` on the example town's data, on a phone-sized screen.

Each page must load without console errors and without a request to another origin; the test
saves a screenshot of each page in test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from testbed.services import REPO, EitProcess, refuse_in_unit_run, wait_for
from testbed.town import Town, build_town, password_of

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}


@dataclass(slots=True)
class Served:
    url: str
    town: Town
    process: EitProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("browser")
    town = build_town(workdir)
    process = EitProcess(["api", "--config", str(town.config_path)], workdir / "eit-api.log").start()
    url = f"http://127.0.0.1:{town.config.http.port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, 30, "eit api to answer /healthz")
        yield Served(url, town, process)
    finally:
        code = process.terminate()
        assert code == 0, process.output()
        assert "Traceback" not in process.output(), process.output()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed: run `make test`, which installs it")
    refuse_in_unit_run("Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass(slots=True)
class Watch:
    """What a page said on its console and which requests it made."""

    base: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

        def request(r: Any) -> None:
            if not r.url.startswith((self.base, "data:", "blob:")):
                self.foreign.append(r.url)

        page.on("request", request)
        page.on("response", lambda r: self.refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    def clean(self, allowed_refusals: tuple[str, ...] = ()) -> None:
        unexpected = [e for e in self.errors if not (allowed_refusals and "Failed to load resource" in e)]
        refused = [r for r in self.refused if not any(a in r for a in allowed_refusals)]
        assert unexpected == [], unexpected
        assert refused == [], refused
        assert self.foreign == [], self.foreign


@pytest.fixture
def phone(browser: Any, served: Served) -> Iterator[tuple[Any, Watch]]:
    context = browser.new_context(viewport=PHONE, timezone_id="Asia/Bangkok", locale="th-TH")
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    yield page, watch
    context.close()


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Any, served: Served, name: str, lang: str = "en") -> None:
    page.goto(f"{served.url}/login?lang={lang}")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password_of(name))
    page.click("button[type=submit]")


def loaded(page: Any) -> None:
    page.wait_for_selector("body[data-loaded=true]", timeout=20000)


def test_town_page_maps_factories_by_compliance_state_with_aqi_and_latest_values(
    phone: tuple[Any, Watch], served: Served
) -> None:
    page, watch = phone
    page.goto(f"{served.url}/?lang=en")
    loaded(page)
    markers = page.eval_on_selector_all(
        "#town-map a.marker",
        "els => els.map(e => [e.dataset.factory, e.dataset.state,"
        " e.querySelector('circle').getAttribute('fill')])",
    )
    assert sorted(markers) == [
        ["eastern-petrochem", "compliant", "#2e7d32"],
        ["kaeng-khoi-biomass", "exceeding", "#c62828"],
        ["siam-cassava-starch", "warning", "#b26a00"],
    ]
    aqi = int(page.get_attribute(".aqi", "data-aqi") or "0")
    assert 0 < aqi <= 100
    assert page.inner_text("#last-update") not in ("", "never", "Loading…")
    so2 = page.inner_text('.factory-card[data-factory="kaeng-khoi-biomass"] tr[data-channel="boiler-1/so2"]')
    assert "ppm" in so2 and float(so2.split()[1].replace(",", "")) > 60  # the exceedance, live
    shot(page, "town-en-phone")
    page.goto(f"{served.url}/?lang=th")
    loaded(page)
    assert "เกินค่ามาตรฐาน" in page.inner_text("#legend")
    shot(page, "town-th-phone")
    watch.clean()


def test_factory_page_draws_charts_over_time_against_the_limit(
    phone: tuple[Any, Watch], served: Served
) -> None:
    page, watch = phone
    page.goto(f"{served.url}/factory/kaeng-khoi-biomass?lang=th")
    loaded(page)
    card = '.chart-card[data-channel="boiler-1/so2"]'
    assert page.get_attribute(card, "data-drawn") == "true"
    assert int(page.get_attribute(card, "data-points") or "0") >= 28  # clock hours of the town's 30 h
    assert float(page.get_attribute(card, "data-limit") or "0") == 60
    assert int(page.get_attribute(card, "data-raw-points") or "0") == 0  # the public: averages only
    assert _inked_pixels(page, f"{card} canvas") > 2000
    drawn = page.eval_on_selector_all(".chart-card[data-drawn=true]", "els => els.length")
    assert drawn >= 5  # every stack channel with data
    shot(page, "factory-th-phone")
    watch.clean()


def test_an_officer_acknowledges_an_alert_from_the_console_and_sees_its_state_change(
    browser: Any, served: Served
) -> None:
    context = browser.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        log_in(page, served, "olivia", "en")
        page.wait_for_url("**/console?lang=en")
        loaded(page)
        alert_id = page.eval_on_selector(
            "li.alert.critical[data-state=open][data-factory=kaeng-khoi-biomass]", "e => e.dataset.alertId"
        )
        item = f'li.alert[data-alert-id="{alert_id}"]'
        assert "above the standard limit 60 ppm" in page.inner_text(item)
        shot(page, "console-en-phone")
        page.click(f"{item} button.ack")  # one tap
        page.wait_for_selector(f'{item}[data-state="acknowledged"]', timeout=10000)
        assert "olivia" in page.inner_text(item)  # acknowledging assigns to whoever did it
        page.click(f"{item} button.toggle")
        page.wait_for_selector(f"{item} .audit li", timeout=10000)
        assert "olivia · acknowledged" in page.inner_text(f"{item} .audit")
        shot(page, "console-acknowledged-en-phone")
        # The server agrees.
        token = page.evaluate("JSON.parse(localStorage.getItem('eit.session')).token")
        a = requests.get(
            f"{served.url}/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        assert a["state"] == "acknowledged" and a["acknowledged_by"] == "olivia"
        # Resolve is one more tap; the inbox of active alerts then no longer lists it.
        page.click(f"{item} button.resolve")
        page.wait_for_selector(item, state="detached", timeout=10000)
        watch.clean()
    finally:
        context.close()


def test_an_operator_sees_its_factory_answers_an_alert_and_cannot_see_another_factory(
    browser: Any, served: Served
) -> None:
    context = browser.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        log_in(page, served, "kk-op", "th")
        page.wait_for_url("**/operator?lang=th")
        loaded(page)
        assert "แก่งคอยไบโอแมสพาวเวอร์" in page.inner_text("#factory-name")
        assert page.eval_on_selector_all("#report-table tbody tr", "els => els.length") >= 6
        alert_id = page.eval_on_selector("li.alert:has(.response-form)", "e => e.dataset.alertId")
        item = f'li.alert[data-alert-id="{alert_id}"]'
        page.fill(f"{item} textarea[name=cause]", "ถุงกรองฝุ่นขาด")
        page.fill(f"{item} textarea[name=corrective_action]", "เปลี่ยนถุงกรองและลดภาระหม้อไอน้ำ")
        page.click(f"{item} .response-form button[type=submit]")
        page.wait_for_selector(f"{item} .response", timeout=10000)
        assert "ถุงกรองฝุ่นขาด" in page.inner_text(f"{item} .response")
        shot(page, "operator-th-phone")
        watch.clean()
        # Another factory's page: refused, with nothing of its data on screen.
        page.goto(f"{served.url}/factory/siam-cassava-starch?lang=en")
        page.wait_for_selector("#message:not([hidden])", timeout=10000)
        assert "may not see this" in page.inner_text("#message")
        assert page.eval_on_selector_all(".chart-card", "els => els.length") == 0
        status = page.evaluate(
            """async () => (await fetch('/api/v1/latest?factory=siam-cassava-starch', {headers: {
                Authorization: 'Bearer ' + JSON.parse(localStorage.getItem('eit.session')).token}})).status"""
        )
        assert status == 403
        shot(page, "operator-refused-other-factory-en-phone")
        watch.clean(allowed_refusals=("403 ",))
        assert watch.refused and all(
            r.startswith("403 ") and "siam-cassava-starch" in r for r in watch.refused
        )
    finally:
        context.close()


def test_factory_page_for_an_officer_adds_the_five_minute_means(browser: Any, served: Served) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Bangkok")
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        log_in(page, served, "sam", "en")
        page.wait_for_url("**/console?lang=en")
        page.goto(f"{served.url}/factory/eastern-petrochem?lang=en")
        loaded(page)
        card = '.chart-card[data-channel="fenceline-1/pm25"]'
        assert int(page.get_attribute(card, "data-raw-points") or "0") > 200
        assert float(page.get_attribute(card, "data-limit") or "0") == 37.5  # the 24-hour standard
        assert _inked_pixels(page, f"{card} canvas") > 2000
        shot(page, "factory-officer-en-desktop")
        page.goto(f"{served.url}/?lang=en")
        loaded(page)
        shot(page, "town-en-desktop")
        watch.clean()
    finally:
        context.close()


def _inked_pixels(page: Any, selector: str) -> int:
    """Pixels of the chart's canvas that are neither blank nor the background."""
    count: int = page.eval_on_selector(
        selector,
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4)
                if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) n++;
            return n; }""",
    )
    return count


def test_login_page_and_api_explorer_load_from_this_server_only(
    phone: tuple[Any, Watch], served: Served
) -> None:
    page, watch = phone
    page.goto(f"{served.url}/login?lang=th")
    page.fill("input[name=username]", "olivia")
    page.fill("input[name=password]", "not-her-password")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])", timeout=10000)
    assert "ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง" in page.inner_text("#login-error")
    shot(page, "login-th-phone")
    watch.clean(allowed_refusals=("401 ",))  # the refused login itself
    page.goto(f"{served.url}/docs")
    page.wait_for_selector(".opblock-tag", timeout=20000)
    tags = page.eval_on_selector_all(".opblock-tag", "els => els.map(e => e.dataset.tag)")
    assert {"data", "alerts", "accounts", "reports", "operations"} <= set(tags)
    shot(page, "api-explorer-phone")
    watch.clean(allowed_refusals=("401 ",))


def test_the_console_shows_an_alert_whose_notifications_failed_or_expired_with_the_last_error(
    browser: Any, served: Served
) -> None:
    from alerts.notifiers.queue import DeliveryQueue, NewDelivery
    from alerts.state import AlertStore
    from eit.timeutil import now_ns
    from statedb import open_state_db

    # The state database `eit api` reads: one notification of an active alert still failing, one
    # expired, as a notifier's worker leaves them when the receiver refuses.
    config = served.town.config
    db = open_state_db(config.state_url, config.state_path)
    try:
        alert = AlertStore(db).list(state="active")[0]
        queue = DeliveryQueue(db)
        now = now_ns()

        def queued(notifier: str, recipient: str, expires_ns: int) -> int:
            item = NewDelivery(
                notifier, alert.id, 0, "opened", recipient, f"key-{notifier}", {}, {}, expires_ns, None
            )
            assert queue.enqueue([item], now) == [item]
            [row] = [r for r in queue.for_alert(alert.id) if r.notifier == notifier]
            assert queue.lease(row.id, now, now + 1)
            queue.failed(row.id, f"{notifier} https://hooks.example.org: HTTP 503", now + 60 * 10**9)
            return row.id

        queued("webhook", "*", now + 3600 * 10**9)
        queued("email", "duty-rayong", now - 1)
        assert [r.notifier for r in queue.expire("email", now + 2)] == ["email"]
    finally:
        db.close()
    context = browser.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        log_in(page, served, "olivia", "en")
        page.wait_for_url("**/console?lang=en")
        loaded(page)
        item = f'li.alert[data-alert-id="{alert.id}"]'
        assert "A notification was not delivered" in page.inner_text(f"{item} .notification-trouble")
        page.click(f"{item} button.toggle")
        page.wait_for_selector(f"{item} li.notification", timeout=10000)
        failing = page.inner_text(f'{item} li.notification[data-notifier="webhook"]')
        assert "not delivered yet" in failing and "HTTP 503" in failing and "next attempt" in failing
        expired = page.inner_text(f'{item} li.notification[data-notifier="email"]')
        assert "given up" in expired and "duty-rayong" in expired
        assert "Last error: email https://hooks.example.org: HTTP 503" in expired
        shot(page, "console-notifications-en-phone")
        watch.clean()
    finally:
        context.close()
