"""The "no worker" banner and the System page in a real Chromium, against real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.a11y import assert_accessible
from tests.browser import LiveServer, screenshot, sign_in_page
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.system.conftest import HeartbeatFleet

pytestmark = pytest.mark.browser


@pytest.fixture
def fleet_page(browser: Browser, system_fleet: HeartbeatFleet) -> Iterator[tuple[Page, str]]:
    base = system_fleet.web()
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    make_user(system_fleet.database, "alice")
    page.goto("/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    yield page, base
    context.close()


def test_banner_until_a_worker_starts_and_the_system_page_lists_it(
    fleet_page: tuple[Page, str], system_fleet: HeartbeatFleet
) -> None:
    page, _base = fleet_page
    page.goto("/import")
    banner = page.locator("#worker-banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_contain_text(
        "No worker is running: imports and webhook deliveries wait until one starts."
    )
    expect(banner.locator("code")).to_have_text("product-importer worker")
    screenshot(page, "system-banner-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(banner).to_be_visible()
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    screenshot(page, "system-banner-390")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert_accessible(page, "import: no-worker banner (distributed)")

    banner.get_by_role("link", name="System page").click()
    expect(page.get_by_role("heading", name="System", exact=True)).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="System")).to_have_attribute("aria-current", "page")
    expect(page.locator("#sys-warnings")).to_contain_text("No worker is alive")
    expect(page.locator("#sys-workers")).to_contain_text("No worker has been seen yet")
    expect(page.locator("#sys-facts")).to_contain_text("Distributed")
    expect(page.locator("#sys-queues tbody tr")).to_have_count(3)
    assert_accessible(page, "system: distributed, no worker alive")

    worker = system_fleet.worker("worker-1", "--concurrency", "2")
    name = f"product-importer-{worker.pid}@"
    row = page.locator("#sys-workers tbody tr", has_text=name)
    expect(row).to_contain_text("Alive", timeout=15_000)  # the page refreshes every 5 s
    expect(row).to_contain_text("imports, webhooks, default")
    expect(page.locator("#sys-warnings")).to_contain_text("1 worker is alive")
    expect(banner).to_be_hidden(timeout=20_000)  # the banner polls every 15 s
    screenshot(page, "system-page-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    screenshot(page, "system-page-390")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert_accessible(page, "system: distributed, a worker alive")

    with page.expect_response(lambda response: "/api/system" in response.url):
        page.goto("/products")
    expect(banner).to_be_hidden()


def test_system_page_is_keyboard_usable_and_embedded_mode_never_warns(
    page: Page, live_server: LiveServer
) -> None:
    sign_in_page(page, live_server)
    with page.expect_response(lambda response: "/api/system" in response.url):
        page.goto("/import")
    expect(page.locator("#worker-banner")).to_be_hidden()
    page.goto("/system")
    expect(page.locator("#sys-warnings")).to_contain_text("embedded mode")
    expect(page.locator("#sys-workers tbody tr")).to_contain_text("embedded@")
    refresh = page.get_by_role("button", name="Refresh now")
    refresh.focus()
    with page.expect_response(lambda response: "/api/system" in response.url):
        page.keyboard.press("Enter")
    expect(page.locator("#sys-updated")).to_contain_text("Updated")
    expect(page.locator("#worker-banner")).to_be_hidden()
    screenshot(page, "system-embedded-1280")
