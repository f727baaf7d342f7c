"""The Backups card of the System page in Chromium: an admin backs up now and downloads the file;
a viewer reads when the last backup was made, without the button."""

from __future__ import annotations

import zipfile

import pytest
from playwright.sync_api import Page, expect

from product_importer.auth.roles import Role
from product_importer.backups import service
from tests.a11y import assert_accessible
from tests.browser import LiveServer, screenshot, sign_in_page
from tests.factories import DEFAULT_PASSWORD, make_product, make_user

pytestmark = pytest.mark.browser


def test_an_admin_backs_up_now_and_downloads_it(page: Page, live_server: LiveServer) -> None:
    for number in range(12):
        make_product(live_server.database, f"SKU-{number}")
    sign_in_page(page, live_server)
    page.goto("/system")
    card = page.locator("#sys-backups")
    expect(card).to_contain_text("No backup has been made yet.")
    expect(card).to_contain_text("every day at 03:00")
    expect(page.locator("#sys-backup-table")).to_contain_text("No backups yet.")

    page.get_by_role("button", name="Back up now").click()
    expect(page.locator(".toast")).to_contain_text("Backup started")
    row = page.locator("#sys-backup-table tbody tr").first
    expect(row).to_contain_text("Done", timeout=15_000)
    expect(row).to_contain_text("12")
    expect(card).to_contain_text("12 products", timeout=15_000)  # refreshed every 5 s
    screenshot(page, "backups-system-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    screenshot(page, "backups-system-390")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert_accessible(page, "system: backups, one made now")

    with page.expect_download() as waiting:
        row.get_by_role("link", name="Download").click()
    download = waiting.value
    assert download.suggested_filename.startswith("product-importer-backup-")
    with zipfile.ZipFile(download.path()) as zipped:
        assert "manifest.json" in zipped.namelist()


def test_a_viewer_reads_the_last_backup_and_its_warning(
    page: Page, live_server: LiveServer
) -> None:
    settings, database = live_server.settings, live_server.database
    service.back_up(settings, database, "scheduled")
    holding = service.reserve(settings, "scheduled")
    service.folder(settings).fail(holding, "The disk is full.", holding.created_at)
    holding.release()
    make_user(database, "vera", role=Role.viewer)
    page.goto("/login")
    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto("/system")
    card = page.locator("#sys-backups")
    expect(card).to_contain_text("Last backup:")
    expect(card.locator(".alert-warning")).to_contain_text("failed: The disk is full.")
    expect(page.get_by_role("button", name="Back up now")).to_be_hidden()
    expect(page.locator("#sys-backup-list")).to_be_hidden()
    assert_accessible(page, "system: backups, last one failed (viewer)")
