"""The notification preferences page in a real headless Chromium (Debian's `chromium`, driven by
Playwright), served by `eit api` on the example town: an officer sees how the registry routes
alerts to them, adds an e-mail address and an Apprise URL (shown back masked), mutes
non-critical items and removes a channel; an operator chooses the language of its
notifications. What the page saved is what the API says; screenshots in
test-artifacts/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.test_browser import (
    DESKTOP,
    PHONE,
    Served,
    Watch,
    fits,
    loaded,
    log_in,
    served,  # noqa: F401  (the fixture, shared with the other browser tests)
    shot,
    toast_says,
    touch_context,
)

pytestmark = pytest.mark.integration


def api_prefs(served: Served, page: Any) -> dict[str, Any]:  # noqa: F811
    token = page.evaluate("JSON.parse(localStorage.getItem('eit.session')).token")
    r = requests.get(
        f"{served.url}/api/v1/me/notifications", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


@pytest.mark.parametrize(
    ("viewport", "lang"), [(PHONE, "th"), (DESKTOP, "en")], ids=["phone-th", "desktop-en"]
)
def test_an_officer_adds_channels_and_mutes_non_critical_items_on_the_preferences_page(
    browser: Any,
    served: Served,  # noqa: F811
    viewport: dict[str, int],
    lang: str,
) -> None:
    context = touch_context(browser, viewport, lang)
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    name = "olivia"
    try:
        log_in(page, served, name, lang)
        page.wait_for_url("**/console?lang=" + lang)
        page.click(".nav a[href^='/preferences']")
        page.wait_for_url(f"**/preferences?lang={lang}")
        loaded(page)
        routing = page.inner_text("#prefs-routing")
        assert "duty-rayong" in routing and "Mueang Rayong" in routing
        assert "duty.rayong@example.org" in page.inner_text("#prefs-registry")
        assert page.is_hidden("#prefs-language-field")  # an officer's language is the registry's
        mail = f"olivia-{lang}@home.example"
        page.fill("#prefs-add input[name=address]", mail)
        page.click("#prefs-add button[type=submit]")
        page.wait_for_selector(f"#prefs-channels li:has-text('{mail}')", timeout=10000)
        page.select_option("#prefs-add select[name=kind]", "apprise")
        page.fill("#prefs-add input[name=address]", "tgram://123456789:abcdefg_hijklmnop/987654321")
        page.click("#prefs-add button[type=submit]")
        page.wait_for_selector("#prefs-channels li:has-text('tgram://…4321')", timeout=10000)
        assert "abcdefg" not in page.inner_text("#prefs-channels")  # the token is not shown back
        # A wrong address is refused with the reason, next to the form.
        page.select_option("#prefs-add select[name=kind]", "email")
        page.fill("#prefs-add input[name=address]", "olivia at home")
        page.click("#prefs-add button[type=submit]")
        page.wait_for_selector("#prefs-error:not([hidden])", timeout=10000)
        assert "is not an e-mail address" in page.inner_text("#prefs-error")
        page.check("#prefs-options input[name=mute_non_critical]")
        page.click("#prefs-options button[type=submit]")
        toast_says(page, "บันทึกการตั้งค่าแล้ว" if lang == "th" else "Preferences saved")
        fits(page, viewport)
        shot(page, f"preferences-officer-{lang}-{'phone' if viewport is PHONE else 'desktop'}")
        saved = api_prefs(served, page)
        assert saved["mute_non_critical"] is True
        kinds = sorted((c["kind"], c["address"]) for c in saved["channels"])
        assert ("email", mail) in kinds and ("apprise", "tgram://…4321") in kinds
        # Removing the Apprise URL leaves the rest.
        page.click("#prefs-channels li:has-text('tgram://') button")
        page.wait_for_function(
            "() => !document.querySelector('#prefs-channels').textContent.includes('tgram://')"
        )
        assert [c["kind"] for c in api_prefs(served, page)["channels"]] == ["email"]
        page.click(f"#prefs-channels li:has-text('{mail}') button")
        page.wait_for_function(
            f"() => !document.querySelector('#prefs-channels').textContent.includes('{mail}')"
        )
        watch.clean(allowed_refusals=("422 ",))
    finally:
        context.close()


def test_an_operator_chooses_the_language_of_its_notifications(browser: Any, served: Served) -> None:  # noqa: F811
    context = touch_context(browser, PHONE, "en")
    page = context.new_page()
    watch = Watch(served.url)
    watch.attach(page)
    try:
        log_in(page, served, "kk-op", "en")
        page.wait_for_url("**/operator?lang=en")
        page.goto(f"{served.url}/preferences?lang=en")
        loaded(page)
        assert "kaeng-khoi-biomass" in page.inner_text("#prefs-routing")
        assert "Environmental manager" in page.inner_text("#prefs-registry")
        page.select_option("#prefs-options select[name=language]", "en")
        page.click("#prefs-options button[type=submit]")
        toast_says(page, "Preferences saved")
        assert api_prefs(served, page)["language"] == "en"
        shot(page, "preferences-operator-en-phone")
        watch.clean()
    finally:
        context.close()
