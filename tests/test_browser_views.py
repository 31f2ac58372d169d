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
