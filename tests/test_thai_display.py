"""Thai throughout, in display: alert texts end in Thai (the limit's origin, Buddhist-era dates,
parameter and unit symbols) while English texts and stored values stay as they were; every page
word exists in both languages."""

from __future__ import annotations

import re

from alerts.messages import render
from eit.confread import load_yaml
from testbed.services import REPO

LIMIT_HOUR = {
    "bound": "60",
    "channel": "so2",
    "correction": ", corrected to 7 % O2",
    "kind": "standard",
    "o2": "7",
    "origin": "preset th.stack.boiler.biomass, averaging period unconfirmed",
    "period": "2026-11-30 12:00-12:59",
    "points": "60",
    "screening": "",
    "side": "above",
    "unit": "mg/m3",
    "value": "103",
}


def test_a_thai_alert_text_has_no_english_tail_and_dates_in_the_buddhist_era() -> None:
    th = render("limit_hour", LIMIT_HOUR, "th")
    assert th.startswith("SO₂ ค่าเฉลี่ยรายชั่วโมง 30 พ.ย. 2569 12:00-12:59")
    assert "103 mg/m³" in th and "ยังไม่ยืนยันช่วงเวลาเฉลี่ย" in th and "ชุดค่ามาตรฐาน" in th
    assert not re.search(r"unconfirmed|preset|averaging|2026-", th), th
    en = render("limit_hour", LIMIT_HOUR, "en")
    assert en.startswith("so2 103 mg/m3 above the standard limit 60 mg/m3")
    assert "2026-11-30 12:00-12:59" in en and "averaging period unconfirmed" in en


def test_every_page_word_exists_in_thai_and_english_and_the_new_ones_are_thai() -> None:
    words = load_yaml(REPO / "server" / "web" / "i18n.yaml")
    assert set(words["en"]) == set(words["th"])
    for key in (
        "too_many_logins",
        "audit_resolved",
        "chart_running",
        "reports_heading",
        "map_search",
        "above_limit",
    ):
        assert re.search(r"[\u0e00-\u0e7f]", words["th"][key]), key
