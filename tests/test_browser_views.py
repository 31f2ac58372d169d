"""What officers, operators and the public see, in a real headless Chromium (Debian's, driven by
Playwright) on the example town, at 390x844 and 1440x900, in Thai and English: the monthly report
opened and downloaded from the web app (PDF and XLSX read back), the charts (running hour,
exceeding hours, gaps with reasons, axis basis, export), the pages naming what is wrong. Screenshots
go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.test_browser import (  # noqa: F401  (fixtures: served, browser)
    DESKTOP,
    PHONE,
    Served,
    Watch,
    browser,
    fits,
    loaded,
    log_in,
    served,
    shot,
)

pytestmark = pytest.mark.integration


def _this_month() -> str:
    return datetime.now(ZoneInfo("Asia/Bangkok")).strftime("%Y-%m")


def _context(chromium: Any, viewport: dict[str, int], lang: str) -> Any:
    return chromium.new_context(
        viewport=viewport,
        timezone_id="Asia/Bangkok",
        locale="th-TH" if lang == "th" else "en-GB",
        accept_downloads=True,
    )


def _download(page: Any, fmt: str, folder: Path) -> Path:
    with page.expect_download(timeout=60000) as info:
        page.click(f"#report-form button[data-format={fmt}]")
    path: Path = folder / str(info.value.suggested_filename)
    info.value.save_as(str(path))
    return path


@pytest.mark.parametrize(("who", "lang", "viewport"), [("olivia", "th", PHONE), ("kk-op", "en", DESKTOP)])
def test_officers_and_operators_open_and_download_the_monthly_report(
    browser: Any,  # noqa: F811 (the fixture)
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
    browser: Any,  # noqa: F811 (the fixture)
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
    browser: Any,  # noqa: F811 (the fixture)
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
    browser: Any,  # noqa: F811 (the fixture)
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
