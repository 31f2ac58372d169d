"""The duties and the integrity findings in the web pages, in a real headless Chromium served by
`eit api` on the example town: an officer disposes of an integrity finding from the console, an
operator enters a lab check with its PDF report from the operator's page (and sees no integrity
finding there)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from alerts.duties.rules import load_duty_rules
from alerts.duties.store import DutyStore
from alerts.integrity.findings import finding
from eit.timeutil import now_ns
from statedb import open_state_db
from testbed.services import EitProcess, wait_for
from testbed.town import Town, build_town
from tests.test_browser import PHONE, Watch, log_in, shot

pytestmark = pytest.mark.integration
BKK = ZoneInfo("Asia/Bangkok")
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n"


def duty_store(town: Town) -> tuple[Any, DutyStore]:
    db = open_state_db(town.config.state_url, town.config.state_path)
    return db, DutyStore(db, load_duty_rules(), BKK)


@pytest.fixture(scope="module")
def town_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Town, str]]:
    workdir = tmp_path_factory.mktemp("duties-browser")
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
        yield town, url
    finally:
        code = process.terminate()
        assert code == 0, process.output()
        assert "Traceback" not in process.output(), process.output()


@pytest.fixture(scope="module")
def chromium(browser: Any) -> Any:
    return browser  # the test process's one Chromium (tests/conftest.py)


class _Served:
    def __init__(self, url: str) -> None:
        self.url = url


def test_an_officer_disposes_of_an_integrity_finding_from_the_console(
    chromium: Any, town_url: tuple[Town, str]
) -> None:
    town, url = town_url
    db, duties = duty_store(town)
    month = datetime.now(BKK).strftime("%Y-%m")
    f = finding(
        "o2_manipulation",
        "o2_floor",
        "kaeng-khoi-biomass",
        "boiler-1",
        "o2",
        month,
        1.8,
        {"floor": 4.0, "hours_below": 90, "running_hours": 300, "share": 0.3, "preset": "boiler"},
        [now_ns() - k * 3600 * 1_000_000_000 for k in (1, 2, 3)],
    )
    duties.record_findings([f.to_json()], now_ns())
    context = chromium.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    page = context.new_page()
    watch = Watch(url)
    watch.attach(page)
    try:
        log_in(page, _Served(url), "olivia")  # type: ignore[arg-type]
        page.wait_for_url("**/console**")
        page.wait_for_selector("body[data-duties-loaded=true]", timeout=20000)
        item = f'li.finding-item[data-finding-id="{f.id}"]'
        assert "O2 was below 4 %" in page.inner_text(item)
        # The chart marks the hours the evidence names (those of this month: up to three).
        marks = page.eval_on_selector_all(f"{item} svg.evidence rect.mark", "els => els.length")
        assert marks == len([h for h in f.hours if h.startswith(month)])
        page.click(f'{item} button[data-disposition="inspect"]')
        page.wait_for_selector(
            f'li.finding-item[data-finding-id="{f.id}"][data-disposition="inspect"]', timeout=10000
        )
        [stored] = [x for x in duties.findings([month]) if x.id == f.id]
        assert (stored.disposition, stored.disposed_by) == ("inspect", "olivia")
        shot(page, "console-integrity-en-phone")
        watch.clean()
    finally:
        context.close()
        db.close()


def test_an_operator_enters_a_lab_check_with_its_report_and_sees_no_integrity_finding(
    chromium: Any, town_url: tuple[Town, str], tmp_path: Path
) -> None:
    town, url = town_url
    report = tmp_path / "lab-report.pdf"
    report.write_bytes(PDF)
    sampled = (datetime.now(BKK) - timedelta(hours=2)).replace(second=0, microsecond=0)
    context = chromium.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    page = context.new_page()
    watch = Watch(url)
    watch.attach(page)
    db, duties = duty_store(town)
    try:
        log_in(page, _Served(url), "sc-op")  # type: ignore[arg-type]
        page.wait_for_url("**/operator**")
        page.wait_for_selector("body[data-duties-loaded=true]", timeout=20000)
        assert page.query_selector("#integrity-findings") is None
        page.click("#duties details:has(#duty-lab) summary")
        page.select_option("#duty-lab select[name=channel]", "cod")
        page.fill("#duty-lab input[name=sampled]", sampled.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#duty-lab input[name=lab_value]", "118")
        page.fill("#duty-lab input[name=laboratory]", "Rayong lab")
        page.set_input_files("#duty-lab input[name=report]", str(report))
        page.click("#duty-lab button[type=submit]")
        page.wait_for_selector("#duty-lab-result:has-text('E = M - T')", timeout=10000)
        [check] = duties.lab_checks("siam-cassava-starch")
        assert check.channel == "cod" and check.lab_value == 118.0 and check.online_value is not None
        assert check.sampled_ns == int(sampled.timestamp()) * 1_000_000_000
        assert check.attachment_id is not None
        meta, content = duties.attachment(check.attachment_id)
        assert content == PDF and meta.filename == "lab-report.pdf" and meta.uploaded_by == "sc-op"
        shot(page, "operator-lab-check-en-phone")
        watch.clean()
    finally:
        context.close()
        db.close()


def test_a_factory_page_shows_its_accepted_shutdown_windows_to_the_public(
    chromium: Any, town_url: tuple[Town, str]
) -> None:
    town, url = town_url
    db, duties = duty_store(town)
    now = now_ns()
    day = 86_400 * 1_000_000_000
    filed = duties.file_notice(
        "cems", "shutdown", "kaeng-khoi-biomass", "boiler-1", now + day, now + 2 * day, "", "kk-op", now
    )
    rejected = duties.file_notice(
        "cems", "shutdown", "kaeng-khoi-biomass", "boiler-1", now + 3 * day, now + 4 * day, "", "kk-op", now
    )
    duties.decide_shutdown(filed.id, True, "olivia", now)
    duties.decide_shutdown(rejected.id, False, "olivia", now)
    context = chromium.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    page = context.new_page()
    watch = Watch(url)
    watch.attach(page)
    try:
        page.goto(f"{url}/factory/kaeng-khoi-biomass?lang=en")
        page.wait_for_selector("body[data-shutdowns-loaded=true]", timeout=20000)
        assert page.is_visible("#factory-shutdowns")
        items = page.eval_on_selector_all("#factory-shutdowns li", "els => els.map(e => e.dataset.device)")
        assert items == ["boiler-1"]  # the accepted window only
        assert "Planned shutdowns" in page.inner_text("#factory-shutdowns")
        shot(page, "factory-shutdown-en-phone")
        watch.clean()
    finally:
        context.close()
        db.close()


def test_an_operator_enters_the_substitute_stack_test_of_a_cems_malfunction(
    chromium: Any, town_url: tuple[Town, str], tmp_path: Path
) -> None:
    town, url = town_url
    report = tmp_path / "stack-test.pdf"
    report.write_bytes(PDF)
    db, duties = duty_store(town)
    down = now_ns() - 16 * 86_400 * 1_000_000_000
    n = duties.file_notice(
        "cems", "malfunction", "kaeng-khoi-biomass", "boiler-1", down, None, "analyser", "kk-op", down
    )
    tested = (datetime.now(BKK) - timedelta(hours=3)).replace(second=0, microsecond=0)
    context = chromium.new_context(viewport=PHONE, timezone_id="Asia/Bangkok")
    page = context.new_page()
    watch = Watch(url)
    watch.attach(page)
    try:
        log_in(page, _Served(url), "kk-op")  # type: ignore[arg-type]
        page.wait_for_url("**/operator**")
        page.wait_for_selector("body[data-duties-loaded=true]", timeout=20000)
        item = f'li.duty-item[data-notice-id="{n.id}"]'
        page.click(f"{item} details summary")
        page.fill(f"{item} input[name=tested]", tested.strftime("%Y-%m-%dT%H:%M"))
        page.fill(f"{item} input[name=results]", "so2=41.5, nox=120")
        page.set_input_files(f"{item} input[name=report]", str(report))
        page.click(f"{item} button[type=submit]")
        wait_for(lambda: bool(duties.stack_tests([n.id])), 10, "the stack test to be stored")
        [test] = duties.stack_tests([n.id])
        assert test.results == {"nox": 120.0, "so2": 41.5} and test.entered_by == "kk-op"
        assert test.attachment_id is not None and duties.attachment(test.attachment_id)[1] == PDF
        watch.clean()
    finally:
        context.close()
        db.close()
