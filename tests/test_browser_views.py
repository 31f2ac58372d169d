"""What officers, operators and the public see, in a real headless Chromium (Debian's, driven by
Playwright) on the example town, at 390x844 and 1440x900, in Thai and English: the monthly report
opened and downloaded from the web app (PDF and XLSX read back), the charts (running hour,
exceeding hours, gaps with reasons, axis basis, export), the pages naming what is wrong. Screenshots
go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.test_browser import (  # noqa: F401  (the fixture served)
    DESKTOP,
    PHONE,
    Served,
    Watch,
    fits,
    loaded,
    log_in,
    served,
    shot,
)

pytestmark = pytest.mark.integration


def _this_month() -> str:
    return datetime.now(ZoneInfo("Asia/Bangkok")).strftime("%Y-%m")


def _context(chromium: Any, viewport: dict[str, int], lang: str, bypass_csp: bool = False) -> Any:
    # bypass_csp: only to inject axe-core, which the pages' own policy (script-src 'self') refuses.
    return chromium.new_context(
        viewport=viewport,
        timezone_id="Asia/Bangkok",
        locale="th-TH" if lang == "th" else "en-GB",
        accept_downloads=True,
        bypass_csp=bypass_csp,
    )


def _download(page: Any, fmt: str, folder: Path) -> Path:
    with page.expect_download(timeout=60000) as info:
        page.click(f"#report-form button[data-format={fmt}]")
    path: Path = folder / str(info.value.suggested_filename)
    info.value.save_as(str(path))
    return path


@pytest.mark.parametrize(("who", "lang", "viewport"), [("olivia", "th", PHONE), ("kk-op", "en", DESKTOP)])
def test_officers_and_operators_open_and_download_the_monthly_report(
    browser: Any,
    served: Served,  # noqa: F811
    tmp_path: Path,
    who: str,
    lang: str,
    viewport: dict[str, int],
) -> None:
    from openpyxl import load_workbook

    context = _context(browser, viewport, lang)
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        log_in(page, served, who, lang)
        page.wait_for_url("**/console?**" if who == "olivia" else "**/operator?**")
        assert page.is_visible(".nav a[href^='/reports']")
        page.click(".nav a[href^='/reports']")
        loaded(page)
        page.fill("#report-form input[name=month]", _this_month())
        page.dispatch_event("#report-form input[name=month]", "change")
        page.wait_for_selector("#report-table tbody tr[data-channel]", timeout=20000)
        rows = page.eval_on_selector_all("#report-table tbody tr", "els => els.map(e => e.dataset.channel)")
        if who == "kk-op":
            assert rows and all(r.startswith("kaeng-khoi-biomass/") for r in rows)  # its own factory only
        else:
            assert {r.split("/")[0] for r in rows} >= {"kaeng-khoi-biomass", "eastern-petrochem"}
        so2_row = page.inner_text('#report-table tr[data-channel="kaeng-khoi-biomass/boiler-1/so2"]')
        assert ("ซัลเฟอร์ไดออกไซด์" if lang == "th" else "Sulfur dioxide") in so2_row
        zone = "เวลาประเทศไทย (UTC+7)" if lang == "th" else "Bangkok time (UTC+7)"
        assert zone in page.inner_text("#report-period") and zone in page.inner_text("#timezone-note")
        fits(page, viewport)
        size = "phone" if viewport is PHONE else "desktop"
        shot(page, f"reports-{lang}-{size}")

        if who == "olivia":
            page.select_option("#report-form select[name=factory]", "kaeng-khoi-biomass")
        pdf = _download(page, "pdf", tmp_path)
        assert pdf.read_bytes().startswith(b"%PDF-")
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        if lang == "th":
            assert "รายงานการปฏิบัติตามมาตรฐาน" in text and "ซัลเฟอร์ไดออกไซด์" in text and zone in text
            assert f"{datetime.now(ZoneInfo('Asia/Bangkok')).year + 543}" in text  # Buddhist-era dates
        else:
            assert "Compliance report" in text and "Sulfur dioxide" in text and zone in text
            assert "ppm at 7 % O₂" in text  # the corrected average says its basis
        xlsx = _download(page, "xlsx", tmp_path)
        book = load_workbook(xlsx)
        assert len(book.sheetnames) == 4
        status = page.inner_text("#report-status")
        assert xlsx.name in status
        watch.clean()
    finally:
        context.close()


def test_the_reports_page_asks_a_visitor_to_log_in(
    browser: Any,
    served: Served,  # noqa: F811
) -> None:
    context = _context(browser, PHONE, "en")
    page = context.new_page()
    try:
        page.goto(f"{served.url}/reports?lang=en")
        loaded(page)
        assert "Log in to see this page." in page.inner_text("#message")
        assert page.is_hidden("#reports")
    finally:
        context.close()


SO2_CARD = '.chart-card[data-channel="boiler-1/so2"]'


def _running_hour_has_begun(seconds: int = 180) -> bool:
    """The town's data ends now; a running hour younger than this may hold no reading yet."""
    return datetime.now().timestamp() % 3600 > seconds


def test_the_public_chart_shows_exceeding_hours_gaps_with_reasons_the_running_hour_and_its_basis(
    browser: Any,
    served: Served,  # noqa: F811
    tmp_path: Path,
) -> None:
    context = _context(browser, PHONE, "th")
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        page.goto(f"{served.url}/factory/kaeng-khoi-biomass?lang=th")
        loaded(page)
        card = page.locator(SO2_CARD)
        assert card.get_attribute("data-drawn") == "true"
        assert card.get_attribute("data-axis") == "ppm ที่ O₂ 7 %"  # the basis of the hourly averages
        # The latest reading above the limit is highlighted and says so.
        assert card.locator(".now").get_attribute("data-above") == "true"
        assert "เกินค่ามาตรฐาน" in card.locator(".now").inner_text()
        assert int(card.get_attribute("data-exceeding") or "0") >= 4  # the story's last 5.5 hours
        # 48 hours shown, 30 of data: the hours before are gaps, listed with their reason.
        assert int(card.get_attribute("data-gaps") or "0") >= 16
        card.locator(".gaps summary").click()
        assert "ไม่มีข้อมูล" in card.locator(".gaps li").first.inner_text()
        if _running_hour_has_begun():
            assert float(card.get_attribute("data-running") or "0") > 60  # provisional, above the limit
            running = card.locator(".running").inner_text()
            assert "ชั่วโมงนี้ถึงตอนนี้" in running and "เบื้องต้น" in running
        # Values on hover: the legend follows the cursor.
        box = card.locator(".u-over").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
        legend = card.locator(".u-legend .u-series").nth(1).inner_text()
        assert any(ch.isdigit() for ch in legend), legend
        assert "ppm ที่ O₂ 7 %" in legend
        fits(page, PHONE)
        shot(page, "factory-chart-th-phone")
        # The view as CSV: every hour, UTC and local time, basis in the header.
        with page.expect_download(timeout=30000) as info:
            card.locator("button[data-export=csv]").click()
        path = tmp_path / "view.csv"
        info.value.save_as(str(path))
        lines = path.read_text().splitlines()
        assert lines[0].startswith("time_utc,time_local,average (ppm at 7 % O2)")
        assert len(lines) - 1 in (48, 49) and "no data" in lines[1]
        watch.clean()
    finally:
        context.close()


def test_an_officer_charts_an_absolute_range_with_both_bases_labelled(
    browser: Any,
    served: Served,  # noqa: F811
) -> None:
    context = _context(browser, DESKTOP, "en")
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        log_in(page, served, "olivia", "en")
        page.wait_for_url("**/console?**")
        page.goto(f"{served.url}/factory/kaeng-khoi-biomass?lang=en")
        loaded(page)
        today = datetime.now(ZoneInfo("Asia/Bangkok")).date()
        page.fill("#range-form input[name=from]", str(today.replace(day=1) if today.day > 1 else today))
        page.fill("#range-form input[name=to]", str(today))
        page.evaluate("document.body.dataset.loaded = 'false'")
        page.click("#range-form button[type=submit]")
        loaded(page)
        assert "Bangkok time (UTC+7)" in page.inner_text("#period")
        card = page.locator(SO2_CARD)
        assert int(card.get_attribute("data-raw-points") or "0") > 50  # 30 h in buckets of a month's view
        labels = card.locator(".u-legend .u-series .u-label").all_inner_texts()
        assert any("ppm at 7 % O₂" in x for x in labels) and any("ppm as measured" in x for x in labels), (
            labels
        )
        shot(page, "factory-chart-officer-en-desktop")
        watch.clean()
    finally:
        context.close()


AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


PAGES = [
    ("town", "/", None),
    ("factory", "/factory/kaeng-khoi-biomass", None),
    ("login", "/login", None),
    ("console", "/console", "olivia"),
    ("reports", "/reports", "olivia"),
    ("operator", "/operator", "kk-op"),
]


@pytest.mark.parametrize(
    ("lang", "viewport"), [("th", PHONE), ("en", PHONE), ("th", DESKTOP), ("en", DESKTOP)]
)
def test_every_page_has_no_serious_accessibility_violation_and_is_kept_as_a_screenshot(
    browser: Any,
    served: Served,  # noqa: F811
    lang: str,
    viewport: dict[str, int],
) -> None:
    size = "phone" if viewport is PHONE else "desktop"
    found: dict[str, list[dict[str, Any]]] = {}
    for name, path, who in PAGES:
        context = _context(browser, viewport, lang, bypass_csp=True)
        page = context.new_page()
        try:
            if who is not None:
                log_in(page, served, who, lang)
                page.wait_for_url("**/console?**" if who == "olivia" else "**/operator?**")
            page.goto(f"{served.url}{path}?lang={lang}")
            if name == "login":
                page.wait_for_selector("form")
            else:
                loaded(page)
            found[name] = axe_violations(page)
            shot(page, f"page-{name}-{lang}-{size}")
        finally:
            context.close()
    bad = {k: v for k, v in found.items() if v}
    assert not bad, json.dumps(bad, indent=1)


# -- a town of 40 factories --------------------------------------------------------------------------


def forty_factory_site(path: Path) -> Path:
    """The example town's registry with its three factories copied into 40, spread over the estate
    as real ones are: most apart, some side by side (a few hundred metres), a tight group of five."""
    import random

    import yaml

    from testbed.services import REPO

    site = yaml.safe_load((REPO / "examples" / "town" / "site.yaml").read_text())
    base = site["factories"]
    rng = random.Random(40)
    factories = []
    for i in range(40):
        f = dict(base[i % len(base)])
        f["id"] = f"{f['id']}-{i:02d}"
        f["name"] = f"{f['name'].split(' Co.')[0]} {i:02d}"
        f["name_th"] = f"{f['name_th']} {i:02d}"
        if i < 5:  # a group inside one compound
            lat, lon = 12.700 + i * 0.0004, 101.150 + i * 0.0004
        else:
            lat, lon = 12.66 + rng.random() * 0.10, 101.10 + rng.random() * 0.12
        f["location"] = {"lat": round(lat, 5), "lon": round(lon, 5)}
        factories.append(f)
    site["factories"] = factories
    site.pop("officers", None)
    path.write_text(yaml.safe_dump(site, allow_unicode=True, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def town40(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import requests
    import yaml

    from testbed.services import EitProcess, free_port, wait_for

    workdir = tmp_path_factory.mktemp("town40")
    site = forty_factory_site(workdir / "site.yaml")
    (workdir / "data").mkdir()
    # A free port may be taken by another test process before eit api binds it: then another.
    for attempt in range(3):
        port = free_port()
        config = {
            "site": str(site),
            "data_dir": str(workdir / "data"),
            "store": {"kind": "sqlite"},
            "http": {"host": "127.0.0.1", "port": port},
        }
        (workdir / "serve.yaml").write_text(yaml.safe_dump(config))
        log = workdir / f"eit-api-{attempt}.log"
        process = EitProcess(["api", "--config", str(workdir / "serve.yaml")], log).start()
        url = f"http://127.0.0.1:{port}"

        def up(process: EitProcess = process, url: str = url) -> bool:
            if not process.alive():
                return True  # exited: said below
            try:
                return requests.get(f"{url}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, 30, "eit api (40 factories) to answer /healthz")
        if process.alive():
            break
        assert "Address already in use" in process.output(), process.output()
    else:
        pytest.fail("eit api found no free port in three tries")
    try:
        yield url
    finally:
        assert process.terminate() == 0, process.output()


@pytest.mark.parametrize(("lang", "viewport"), [("th", PHONE), ("en", DESKTOP)])
def test_forty_factories_map_without_overlapping_labels_and_search_finds_any_in_two_taps(
    browser: Any,
    town40: str,
    lang: str,
    viewport: dict[str, int],
) -> None:
    context = browser.new_context(
        viewport=viewport, timezone_id="Asia/Bangkok", has_touch=True, is_mobile=viewport is PHONE
    )
    page = context.new_page()
    watch = Watch(town40)
    watch.attach(page)
    size = "phone" if viewport is PHONE else "desktop"
    try:
        page.goto(f"{town40}/?lang={lang}")
        loaded(page)
        boxes = page.eval_on_selector_all(
            "#town-map text.label, #town-map a.marker circle, #town-map a.cluster circle",
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return [e.tagName, e.closest('[data-factory]') ? e.closest('[data-factory]').dataset.factory"
            " : e.closest('a').dataset.factories, r.left, r.top, r.right, r.bottom]; })",
        )
        labels = [b for b in boxes if b[0] == "text"]
        circles = [b for b in boxes if b[0] == "circle"]

        def hit(a: list[Any], b: list[Any]) -> bool:
            return bool(a[2] < b[4] and b[2] < a[4] and a[3] < b[5] and b[3] < a[5])

        overlapping = [(a[1], b[1]) for i, a in enumerate(labels) for b in labels[i + 1 :] if hit(a, b)] + [
            (a[1], c[1]) for a in labels for c in circles if a[1] != c[1] and hit(a, c)
        ]
        assert overlapping == [], json.dumps(
            [overlapping[:4], [b for b in boxes if b[1] in {overlapping[0][0], overlapping[0][1]}]]
        )
        # Every factory is on the map: a marker of its own or inside a cluster.
        on_map = set(
            page.eval_on_selector_all("#town-map a.marker", "els => els.map(e => e.dataset.factory)")
        )
        for group in page.eval_on_selector_all(
            "#town-map a.cluster", "els => els.map(e => e.dataset.factories)"
        ):
            on_map |= set(group.split(","))
        assert len(on_map) == 40
        assert page.eval_on_selector_all("#town-map a.cluster", "els => els.length") >= 1  # the group of five
        if viewport is DESKTOP:
            assert len(labels) >= 5  # single factories keep a readable name where it fits
        # The list is compact: 40 factories in far less than the old 11,611 px on a phone.
        shot(page, f"town40-{lang}-{size}")
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < (6000 if viewport is PHONE else 4000), height
        fits(page, viewport)
        # Search: any factory in two taps (the field, then the result).
        for target in ("siam-cassava-starch-31", "eastern-petrochem-02", "kaeng-khoi-biomass-39"):
            page.goto(f"{town40}/?lang={lang}")
            loaded(page)
            page.tap("#factory-search")  # tap 1
            page.keyboard.type(target.rsplit("-", 1)[1])  # the number in its name
            name_fragment = target.rsplit("-", 1)[1]
            page.wait_for_selector(f'#search-results a[data-factory="{target}"]', timeout=5000)
            assert name_fragment
            page.tap(f'#search-results a[data-factory="{target}"]')  # tap 2
            page.wait_for_url(f"**/factory/{target}?**")
        watch.clean()
    finally:
        context.close()


def test_the_lockout_and_the_audit_trail_read_in_thai(
    browser: Any,
    served: Served,  # noqa: F811
) -> None:
    context = _context(browser, PHONE, "th")
    page = context.new_page()
    try:
        # A user name nobody has, from one address: past the failures one account may take from
        # one address (server/api/loginguard.py) the answer is 429, said in Thai with its wait.
        page.goto(f"{served.url}/login?lang=th")
        for _ in range(11):
            page.fill("input[name=username]", "nobody-at-all")
            page.fill("input[name=password]", "wrong")
            page.click("button[type=submit]")
            page.wait_for_selector("#login-error:not([hidden])", timeout=10000)
        message = page.inner_text("#login-error")
        assert "หลายครั้งเกินไป" in message and "วินาที" in message, message
        assert "too many" not in message
        # An officer's case history: actions in Thai, the alert text in Thai to its end.
        log_in(page, served, "olivia", "th")
        page.wait_for_url("**/console?**")
        loaded(page)
        item = page.locator("li.alert").first
        item.locator("button.details-toggle, button:has-text('รายละเอียด')").first.click()
        page.wait_for_selector("ol.audit li", timeout=10000)
        actions = page.eval_on_selector_all("ol.audit li", "els => els.map(e => e.textContent)")
        assert any("เปิดเรื่อง" in a for a in actions), actions
        assert not any(" · opened" in a for a in actions), actions
        texts = page.eval_on_selector_all("li.alert .text", "els => els.map(e => e.textContent)")
        assert texts and not [x for x in texts if "unconfirmed" in x], texts
        shot(page, "console-history-th-phone")
    finally:
        context.close()


def test_the_operators_alert_to_answer_is_on_its_first_phone_screen(
    browser: Any,
    served: Served,  # noqa: F811
) -> None:
    context = _context(browser, PHONE, "th")
    page = context.new_page()
    try:
        log_in(page, served, "kk-op", "th")
        page.wait_for_url("**/operator?**")
        loaded(page)
        first = page.locator("li.alert").first
        assert first.locator(".response-form").count() == 1  # waiting for the factory's answer
        top = page.evaluate("document.querySelector('li.alert').getBoundingClientRect().top + window.scrollY")
        assert top < PHONE["height"], top
        badge = page.inner_text("#factory-state")
        assert "SO₂" in badge  # the badge names what is wrong
        values = page.locator('#latest tr[data-channel="boiler-1/so2"]')
        assert values.get_attribute("data-above") == "true" and "60" in values.inner_text()  # the limit
    finally:
        context.close()
