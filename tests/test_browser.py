"""The web pages in a real headless Chromium (Debian's `chromium`, driven by Playwright), served by
`eit api` on the example town's data, on a phone-sized screen (390x844) and a desktop one
(1440x900).

Each page must load without console errors and without a request to another origin; the test
saves a screenshot of each page in test-artifacts/screenshots/. The officers' flows count their
taps (a touch screen's taps: a field tapped to type in counts, the typing does not).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from testbed.services import REPO, EitProcess, wait_for
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
DESKTOP = {"width": 1440, "height": 900}


@dataclass(slots=True)
class Served:
    url: str
    town: Town
    process: EitProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("browser")
    town = build_town(workdir)
    link_registry_officers(town)
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


def link_registry_officers(town: Town) -> None:
    """The town's officer accounts log in as the site registry's officers (`eit users link`)."""
    from server.accounts import Accounts
    from statedb import open_state_db

    db = open_state_db(town.config.state_url, town.config.state_path)
    try:
        accounts = Accounts(db)
        accounts.set_officer("olivia", "duty-rayong")
        accounts.set_officer("sam", "supervisor-rayong")
    finally:
        db.close()


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
        # The starch plant's effluent analyzer fell silent: no data (its stale warning is the officers').
        ["siam-cassava-starch", "no_data", "#757575"],
    ]
    # Geographic context without tiles: the registry's outline of the land (town.map_outline).
    assert page.eval_on_selector_all("#town-map polygon.outline", "els => els.length") >= 1
    aqi = int(page.get_attribute(".aqi", "data-aqi") or "0")
    assert 0 < aqi <= 100
    assert page.inner_text("#last-update") not in ("", "never", "Loading…")
    so2 = page.text_content(
        '.factory-card[data-factory="kaeng-khoi-biomass"] tr[data-channel="boiler-1/so2"] td.num'
    )
    assert so2 is not None and "ppm" in so2
    assert float(so2.split()[0].replace(",", "")) > 60  # the exceedance, live
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
    # Signed readings: the share of the factory's readings verified (the town's are not signed).
    page.wait_for_selector("#factory-verified:not([hidden])")
    assert page.inner_text("#factory-verified").endswith("30 วันล่าสุด: 0 %")
    shot(page, "factory-th-phone")
    watch.clean()


class Taps:
    """Taps on a touch screen, counted."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, page: Any, selector: str) -> None:
        page.tap(selector)
        self.count += 1


def touch_context(browser: Any, viewport: dict[str, int], lang: str = "en") -> Any:
    return browser.new_context(
        viewport=viewport,
        timezone_id="Asia/Bangkok",
        locale="th-TH" if lang == "th" else "en-GB",
        has_touch=True,
        is_mobile=viewport is PHONE,
    )


def fits(page: Any, viewport: dict[str, int]) -> None:
    """Nothing on the page is wider than the screen (no sideways scrolling)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def toast_says(page: Any, text: str) -> None:
    page.wait_for_function(
        "text => { const t = document.getElementById('toast');"
        " return !t.hidden && t.textContent.includes(text); }",
        arg=text,
        timeout=10000,
    )


def server_case(served: Served, page: Any, case_id: str | int) -> dict[str, Any]:
    token = page.evaluate("JSON.parse(localStorage.getItem('eit.session')).token")
    r = requests.get(
        f"{served.url}/api/v1/alerts/{case_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    case: dict[str, Any] = r.json()
    return case


def test_resolving_an_ongoing_exceedance_leaves_the_case_ongoing_and_the_factory_exceeding(
    browser: Any, served: Served
) -> None:
    """The rules' own case of the town (the boiler's SO2 above its 60 ppm limit for hours, its
    last closed hour above: the public state `exceeding`): acknowledged in one tap, resolved with a
    reason in two; the case stays visibly ongoing and the public state stays `exceeding`."""
    context = touch_context(browser, PHONE)
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    taps = Taps()
    try:
        log_in(page, served, "olivia", "en")
        page.wait_for_url("**/console?lang=en")
        loaded(page)
        alert_id = page.eval_on_selector(
            "li.alert.critical[data-state=open][data-factory=kaeng-khoi-biomass]", "e => e.dataset.alertId"
        )
        item = f'li.alert[data-alert-id="{alert_id}"]'
        card = page.inner_text(item)
        assert "above the standard limit 60 ppm" in card and "Kaeng Khoi Biomass Power" in card
        assert page.inner_text(f"{item} .badge.condition") == "Ongoing"
        current = page.inner_text(f"{item} .reading")
        assert current.startswith("Current value") and "ppm" in current and "limit 60 ppm" in current
        assert float(page.inner_text(f"{item} .reading .current").split()[0]) > 60
        chart = page.get_attribute(f"{item} a.chart-link", "href") or ""
        assert chart.startswith("/factory/kaeng-khoi-biomass?") and "focus=boiler-1%2Fso2" in chart
        assert "start=" in chart
        fits(page, PHONE)
        shot(page, "console-en-phone")

        taps(page, f"{item} button.ack")
        page.wait_for_selector(f'{item}[data-state="acknowledged"]', timeout=10000)
        toast_says(page, f"Case #{alert_id} acknowledged.")
        assert "DIW Rayong duty officer (olivia)" in page.inner_text(
            f"{item} .assignee"
        )  # acknowledging takes it
        page.click(f"{item} button.toggle")
        page.wait_for_selector(f"{item} .audit li", timeout=10000)
        assert "olivia · acknowledged" in page.inner_text(f"{item} .audit")
        # The exceedances the rules recorded for the case: the town's hours above the limit.
        records = page.eval_on_selector_all(f"{item} li.exceedance", "els => els.map(e => e.textContent)")
        assert len(records) >= 3 and all("limit 60 ppm" in r and "1h" in r for r in records)
        shot(page, "console-acknowledged-en-phone")
        case = server_case(served, page, alert_id)
        assert case["state"] == "acknowledged" and case["acknowledged_by"] == "olivia"

        # Resolve: one tap for the reasons, one for the reason.
        taps(page, f"{item} button.resolve")
        taps(page, f'{item} button.reason[data-reason="reason_fixed"]')
        page.wait_for_selector(f'{item}[data-state="resolved"]', timeout=10000)
        toast_says(page, f"Case #{alert_id} resolved. Its condition is still ongoing")
        assert taps.count == 3
        assert page.inner_text(f"{item} .badge.condition.still") == "Still ongoing"
        assert page.get_attribute(item, "data-condition") == "ongoing"
        assert "Resolution: The factory fixed the cause" in page.inner_text(f"{item} .resolution")
        fits(page, PHONE)
        shot(page, "console-resolved-still-ongoing-en-phone")
        case = server_case(served, page, alert_id)
        assert (case["state"], case["condition"], case["resolution"]) == (
            "resolved",
            "ongoing",
            "The factory fixed the cause",
        )
        # The public state follows the conditions, not the officers: still exceeding.
        public = requests.get(f"{served.url}/api/v1/factories/kaeng-khoi-biomass", timeout=10).json()
        assert public["state"] == "exceeding"
        page.goto(f"{served.url}/?lang=en")
        loaded(page)
        marker = '#town-map a.marker[data-factory="kaeng-khoi-biomass"]'
        assert page.get_attribute(marker, "data-state") == "exceeding"
        assert page.get_attribute(f"{marker} circle", "fill") == "#c62828"
        shot(page, "town-exceeding-after-resolve-en-phone")
        # The inbox read again: the case among the resolved ones whose condition is ongoing.
        page.goto(f"{served.url}/console?lang=en")
        loaded(page)
        page.click("#filter-box summary")  # a phone shows the filters when asked
        page.select_option("select[name=state]", "resolved")
        page.wait_for_selector(item, timeout=10000)
        page.select_option("select[name=condition]", "ongoing")
        page.wait_for_function(
            "() => document.body.dataset.loaded === 'true'"
            " && [...document.querySelectorAll('li.alert')].every(e => e.dataset.condition === 'ongoing')",
            timeout=10000,
        )
        assert page.inner_text(f"{item} .badge.condition.still") == "Still ongoing"
        watch.clean()
    finally:
        context.close()
    context = touch_context(browser, DESKTOP)
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        log_in(page, served, "olivia", "en")
        page.wait_for_url("**/console?lang=en")
        page.goto(f"{served.url}/console?lang=en&case={alert_id}")
        loaded(page)
        assert page.inner_text(f"{item} .badge.condition.still") == "Still ongoing"
        shot(page, "console-resolved-still-ongoing-en-desktop")
        # The card's link: the factory's chart at the case's period, the case's channel marked.
        page.click(f"{item} a.chart-link")
        page.wait_for_url("**/factory/kaeng-khoi-biomass?**")
        loaded(page)
        focused = '.chart-card[data-channel="boiler-1/so2"]'
        assert page.get_attribute(focused, "data-focus") == "true"
        assert page.eval_on_selector_all('.chart-card[data-focus="true"]', "els => els.length") == 1
        assert page.inner_text("#period").startswith("The case's period:")
        assert int(page.get_attribute(focused, "data-points") or "0") >= 6
        assert int(page.get_attribute(focused, "data-raw-points") or "0") > 50  # an officer's 5-minute means
        shot(page, "factory-case-period-en-desktop")
        watch.clean()
    finally:
        context.close()


def test_an_officer_acknowledges_takes_and_notes_a_case_in_four_taps_and_resolves_it_in_two(
    browser: Any, served: Served
) -> None:
    """On a phone, in Thai: a case assigned to someone else, answered by the factory. Acknowledge,
    assign to me, a note (tap, type, send): four taps; resolve with a quick reason: two more. Each
    action is confirmed on screen and kept by the server."""
    from alerts.state import AlertStore
    from eit.timeutil import now_ns
    from statedb import open_state_db

    drill = uuid.uuid4().hex[:10]
    config = served.town.config
    db = open_state_db(config.state_url, config.state_path)
    try:
        book = AlertStore(db)
        key = ("eastern-petrochem", "fenceline-1", "pm25", f"drill-{drill}")
        earlier = book.list(limit=1000)[-1]  # the town's first case: the drill's previous episode
        case = book.open_alert(
            key, "critical", f"pm25 above the limit (drill {drill})", now_ns(), 80.0, 37.5, "ug/m3",
            previous_id=earlier.id,
        )  # fmt: skip
        assert case is not None
        book.assign(case.id, "sam", "sam", now_ns())
        book.add_response(case.id, key[0], "ep-op", "ลมพัดฝุ่นจากลานกองวัตถุดิบ", "ฉีดพรมน้ำลานกอง", now_ns())
    finally:
        db.close()
    item = f'li.alert[data-alert-id="{case.id}"]'
    for viewport, size in ((DESKTOP, "desktop"), (PHONE, "phone")):  # the phone acts, after
        context = touch_context(browser, viewport, "th")
        page = context.new_page()
        watch = Watch(served.url)
        watch.attach(page)
        try:
            log_in(page, served, "olivia", "th")
            page.wait_for_url("**/console?lang=th")
            loaded(page)
            page.fill("input[name=q]", drill)
            page.wait_for_function("() => document.querySelectorAll('li.alert').length === 1", timeout=10000)
            page.wait_for_selector(item)
            card = page.inner_text(item)
            # The factory's answer on the card itself, the value against the limit, the assignee.
            assert "คำชี้แจงของโรงงาน" in card and "ลมพัดฝุ่นจากลานกองวัตถุดิบ" in card
            assert "ค่าปัจจุบัน" in page.inner_text(f"{item} .reading")
            assert "ค่ามาตรฐาน 37.5 ug/m3" in page.inner_text(f"{item} .reading")
            assert "DIW Rayong pollution supervisor (sam)" in page.inner_text(f"{item} .assignee")
            assert page.inner_text(f"{item} a.previous") == f"ต่อจากเรื่อง #{earlier.id}"
            assert page.get_attribute(f"{item} a.previous", "href") == f"/console?case={earlier.id}&lang=th"
            # Assign: the factory's duty officers first (Ban Chang's duty officer and the
            # supervisor of every factory), then the others.
            groups = page.eval_on_selector_all(
                f"{item} select.assign optgroup",
                "els => els.map(g => [g.label, [...g.querySelectorAll('option')].map(o => o.value)])",
            )
            assert groups == [["เจ้าหน้าที่ผู้รับผิดชอบโรงงานนี้", ["olivia", "sam"]], ["เจ้าหน้าที่อื่น", ["ada"]]]
            fits(page, viewport)
            if size == "desktop":
                shot(page, "console-case-th-desktop")
                watch.clean()
                continue
            shot(page, "console-case-th-phone")
            taps = Taps()
            taps(page, f"{item} button.ack")
            page.wait_for_selector(f'{item}[data-state="acknowledged"]', timeout=10000)
            toast_says(page, f"รับทราบเรื่อง #{case.id} แล้ว")
            taps(page, f"{item} button.assign-me")
            page.wait_for_function(
                "sel => document.querySelector(sel + ' .assignee').textContent.includes('(olivia)')",
                arg=item,
                timeout=10000,
            )
            toast_says(page, f"มอบหมายเรื่อง #{case.id} ให้ DIW Rayong duty officer (olivia) แล้ว")
            taps(page, f"{item} button.note")
            assert page.evaluate("document.activeElement.name") == "text"  # ready to type
            page.keyboard.type("โทรแจ้งโรงงานแล้ว จะเข้าตรวจ 14:00")
            taps(page, f"{item} button.send-note")
            toast_says(page, f"เพิ่มบันทึกในเรื่อง #{case.id} แล้ว")
            assert taps.count == 4
            after = server_case(served, page, case.id)
            assert (after["state"], after["acknowledged_by"], after["assignee"]) == (
                "acknowledged",
                "olivia",
                "olivia",
            )
            assert [(e["actor"], e["action"], e["detail"]) for e in after["audit"]][-3:] == [
                ("olivia", "acknowledged", ""),
                ("olivia", "assigned", "olivia"),
                ("olivia", "note", "โทรแจ้งโรงงานแล้ว จะเข้าตรวจ 14:00"),
            ]
            shot(page, "console-acknowledged-th-phone")
            taps(page, f"{item} button.resolve")
            taps(page, f'{item} button.reason[data-reason="reason_inspected"]')
            page.wait_for_selector(f'{item}[data-state="resolved"]', timeout=10000)
            toast_says(page, f"บันทึกว่าแก้ไขเรื่อง #{case.id} แล้ว แต่สภาวะยังคงเกิดขึ้นอยู่")
            assert taps.count == 6
            resolved = server_case(served, page, case.id)
            assert (resolved["state"], resolved["resolution"]) == (
                "resolved",
                "ตรวจสอบ ณ โรงงานและดำเนินการแล้ว",
            )
            assert page.inner_text(f"{item} .badge.condition.still") == "สภาวะยังคงเกิดขึ้นอยู่"
            fits(page, PHONE)
            shot(page, "console-resolved-th-phone")
            watch.clean()
        finally:
            context.close()


def test_the_console_searches_filters_and_pages_through_the_inbox(browser: Any, served: Served) -> None:
    from alerts.state import AlertStore
    from eit.timeutil import now_ns
    from statedb import open_state_db

    batch = uuid.uuid4().hex[:10]
    config = served.town.config
    db = open_state_db(config.state_url, config.state_path)
    try:
        book = AlertStore(db)
        made = []
        for i in range(32):
            key = ("siam-cassava-starch", "outfall-1", "cod", f"batch-{batch}-{i}")
            severity = "critical" if i % 2 else "warning"
            case = book.open_alert(
                key, severity, f"cod above the limit ({batch} {i})", now_ns(), 130.0, 120.0, "mg/L"
            )
            assert case is not None
            made.append(case.id)
    finally:
        db.close()
    context = touch_context(browser, DESKTOP)
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    shown = "() => [...document.querySelectorAll('li.alert')].map(e => Number(e.dataset.alertId))"
    try:
        log_in(page, served, "olivia", "en")
        page.wait_for_url("**/console?lang=en")
        loaded(page)
        assert page.eval_on_selector("#filter-box", "e => e.open")  # a desktop shows the filters
        page.fill("input[name=q]", batch)
        page.wait_for_function("() => document.getElementById('shown').textContent === 'Showing 25 of 32'")
        assert page.evaluate(shown) == sorted(made, reverse=True)[:25]
        assert page.inner_text("#alert-count") == "32 alerts"
        page.click("#more")
        page.wait_for_function("() => document.getElementById('shown').textContent === 'Showing 32 of 32'")
        assert page.evaluate(shown) == sorted(made, reverse=True)
        assert page.is_hidden("#more")
        shot(page, "console-paging-en-desktop")
        page.select_option("select[name=severity]", "warning")
        page.wait_for_function("() => document.getElementById('shown').textContent === 'Showing 16 of 16'")
        assert page.evaluate(shown) == sorted(made[0::2], reverse=True)
        assert page.inner_text("#filter-count") == "1"
        page.fill("input[name=opened_from]", "2099-01-01")
        page.wait_for_function("() => document.querySelector('#alerts li.hint') !== null")
        assert page.inner_text("#alerts") == "No alerts." and page.inner_text("#alert-count") == "0 alerts"
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


# -- Redirects after logging in: this site's paths only ---------------------------------------------


@pytest.mark.parametrize(
    "next_param",
    [
        "/%5Cevil.example/x",  # "/\evil.example/x": a browser reads the backslash as a slash
        "/%09/evil.example/x",  # a tab, which the URL parser drops: "//evil.example/x"
        "//evil.example/x",
        "https:evil.example/x",
        "/%5C/evil.example/x",
        "%2F%2Fevil.example/x",
        "javascript:alert(1)",
    ],
)
def test_login_never_redirects_to_another_site(browser: Any, served: Served, next_param: str) -> None:
    context = browser.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    elsewhere: list[str] = []

    def refuse(route: Any) -> None:
        elsewhere.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith(served.url), refuse)
    page = context.new_page()
    try:
        page.goto(f"{served.url}/login?next={next_param}&lang=en")
        page.fill("input[name=username]", "olivia")
        page.fill("input[name=password]", password_of("olivia"))
        page.click("button[type=submit]")
        # An officer without a usable ``next`` lands on the console.
        page.wait_for_url(f"{served.url}/console?lang=en", timeout=10000)
        assert elsewhere == []
    finally:
        context.close()


def test_login_goes_on_to_the_page_of_this_site_it_was_asked_for(browser: Any, served: Served) -> None:
    context = browser.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    page = context.new_page()
    try:
        page.goto(f"{served.url}/login?next=/factory/kaeng-khoi-biomass&lang=en")
        page.fill("input[name=username]", "olivia")
        page.fill("input[name=password]", password_of("olivia"))
        page.click("button[type=submit]")
        page.wait_for_url(f"{served.url}/factory/kaeng-khoi-biomass?lang=en", timeout=10000)
    finally:
        context.close()
