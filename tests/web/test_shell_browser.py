"""The UI shell in a real Chromium: sign-in, navigation, sign-out, keyboard, two widths."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import LiveServer, screenshot, sign_in_page

pytestmark = pytest.mark.browser


def test_sign_in_navigate_and_sign_out(page: Page, live_server: LiveServer) -> None:
    page.goto("/products")
    expect(page).to_have_url(f"{live_server.url}/login?next=/products")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "shell-sign-in")

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")

    sign_in_page(page, live_server)
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Import", "Products", "Webhooks"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    nav.get_by_role("link", name="Webhooks").click()
    expect(page).to_have_url(f"{live_server.url}/webhooks")
    expect(nav.get_by_role("link", name="Webhooks")).to_have_attribute("aria-current", "page")
    screenshot(page, "shell-1280")
    # An admin's every page and the sign-out fit one row of the bar at 1280 px.
    audit = nav.get_by_role("link", name="Audit").bounding_box()
    sign_out = page.get_by_role("button", name="Sign out").bounding_box()
    assert audit is not None and sign_out is not None
    assert abs(audit["y"] + audit["height"] / 2 - sign_out["y"] - sign_out["height"] / 2) < 10

    page.set_viewport_size({"width": 390, "height": 844})
    expect(nav.get_by_role("link", name="Import")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the shell scrolls sideways at 390 px"
    screenshot(page, "shell-390")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/login")
    page.goto("/import")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_shell_is_keyboard_usable(page: Page, live_server: LiveServer) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Product Importer home")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Feeds")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Products")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/products")


def test_toasts_show_messages(page: Page, live_server: LiveServer) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    page.evaluate("PI.toast('Saved the thing', 'success')")
    expect(page.get_by_role("status").filter(has_text="Saved the thing")).to_be_visible()
    # Errors go to the assertive live region, which is there (empty) before any toast.
    alerts = page.locator("#toast-alerts")
    expect(alerts).to_have_attribute("aria-live", "assertive")
    page.evaluate("PI.toast('It broke', 'error')")
    expect(alerts).to_contain_text("It broke")
    expect(page.get_by_role("status")).not_to_contain_text("It broke")
    alerts.get_by_role("button", name="Dismiss").click()
    expect(alerts).to_be_empty()
