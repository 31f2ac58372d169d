"""The public "Town indicators" page in a real headless Chromium, served by `eit api` on the example
town (tests/test_browser.py's fixtures): each indicator's figures as the API gives them, Thai and
English, the agency filter, the target's progress, and the open-data download."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import requests

from tests.test_browser import PHONE, Served, Watch, loaded, phone, served, shot  # noqa: F401
from tests.test_browser import touch_context as _touch_context  # noqa: F401


def test_the_indicators_page_shows_each_public_figure_with_its_target_in_thai_and_english(
    phone: tuple[Any, Watch],  # noqa: F811
    served: Served,  # noqa: F811
) -> None:
    page, watch = phone
    board = requests.get(f"{served.url}/api/v1/indicators", timeout=30).json()
    page.goto(f"{served.url}/indicators?lang=en")
    loaded(page)
    cards = page.eval_on_selector_all(".indicator-card", "els => els.map(e => e.dataset.indicator)")
    assert cards == [i["id"] for i in board["indicators"]] and len(cards) == 8
    assert "3 of 3 factories" in page.inner_text("#indicators-intro")

    # The stack hours of the latest month, as the API gives them, with the unit.
    stack = next(i for i in board["indicators"] if i["id"] == "stack_hours_above_limit")
    latest = [p for p in stack["periods"] if p["kind"] == "month" and p["value"] is not None][-1]
    text = page.inner_text('.indicator-card[data-indicator="stack_hours_above_limit"] .figure')
    assert f"Latest month: {latest['period']}" in text and f"{latest['value']:g} h" in text

    # A target: illustrative, with the trajectory's verdict for the period and the progress bar.
    compliant = page.locator('.indicator-card[data-indicator="factories_compliant"]')
    assert "Illustrative target" in compliant.inner_text()
    expected = next(i for i in board["indicators"] if i["id"] == "factories_compliant")
    month = [p for p in expected["periods"] if p["kind"] == "month" and p["value"] is not None][-1]
    verdict = compliant.locator("[data-on-track]").get_attribute("data-on-track")
    assert verdict == ("true" if month["on_track"] else "false")
    assert compliant.locator("progress").count() == 1
    shot(page, "indicators-en-phone")

    # Filter by agency: only DEQP's indicators.
    page.select_option("#agency", "deqp")
    loaded(page)
    owners = page.eval_on_selector_all(".indicator-card", "els => els.map(e => e.dataset.owner)")
    assert owners and set(owners) == {"deqp"}

    # The same page in Thai.
    page.goto(f"{served.url}/indicators?lang=th")
    loaded(page)
    assert "ตัวชี้วัดของเมือง" in page.inner_text("h1")
    assert "การปล่อย CO2 จากไฟฟ้าที่ใช้ในเมือง" in page.inner_text("#indicators")
    shot(page, "indicators-th-phone")

    # The download link gives the open-data package of the page's period.
    href = page.get_attribute("#open-data", "href")
    assert href is not None and href.startswith("/api/v1/open-data.zip?from=")
    package = requests.get(served.url + href, timeout=60)
    assert package.status_code == 200
    with zipfile.ZipFile(io.BytesIO(package.content)) as z:
        assert "datapackage.json" in z.namelist() and "indicators.csv" in z.namelist()
    watch.clean()
