"""The Import page in Chromium against the real server: upload, live progress, summary, retry."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from product_importer.imports.locking import CatalogueLock
from tests.browser import LiveServer, screenshot, sign_in_page

pytestmark = pytest.mark.browser


def catalogue_file(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "catalogue.csv"
    lines = ["sku,name,description"]
    lines += [f"SKU-{i},Product {i},Description {i}" for i in range(rows)]
    lines += [",Missing sku,x"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_upload_shows_progress_and_a_summary(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    expect(page.get_by_text("No imports yet.")).to_be_visible()
    screenshot(page, "import-empty")
    import_button = page.get_by_role("button", name="Import", exact=True)
    expect(import_button).to_be_disabled()
    page.get_by_label("Drop a CSV file here").set_input_files(str(catalogue_file(tmp_path, 60_000)))
    expect(page.get_by_text("catalogue.csv (")).to_be_visible()
    import_button.click()

    card = page.locator("#job-card")
    expect(card.get_by_role("progressbar")).to_be_visible()
    expect(card.get_by_role("status").filter(has_text="Import finished")).to_be_visible(
        timeout=60_000
    )
    expect(card.get_by_text("created 60,000")).to_be_visible()
    expect(card.get_by_text("rejected 1 of 60,001 rows")).to_be_visible()
    expect(card.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(card.get_by_role("link", name="Download rejected rows")).to_be_visible()
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("completed")
    screenshot(page, "import-completed-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "import-completed-390")
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the import page scrolls sideways at 390 px"

    with page.expect_download() as download:
        card.get_by_role("link", name="Download rejected rows").click()
    rejected = Path(download.value.path()).read_text()
    assert "SKU is empty." in rejected


def test_progress_is_live_while_the_import_waits_and_runs(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    lock = CatalogueLock(live_server.database)
    assert lock.try_acquire()  # another import holds the catalogue
    try:
        page.get_by_label("Drop a CSV file here").set_input_files(str(catalogue_file(tmp_path, 10)))
        page.get_by_role("button", name="Import", exact=True).click()
        card = page.locator("#job-card")
        expect(card.locator("#job-status")).to_have_text("Queued")
        expect(card.get_by_role("button", name="Cancel import")).to_be_visible()
        screenshot(page, "import-queued")
    finally:
        lock.release()
    expect(card.get_by_role("status").filter(has_text="Import finished")).to_be_visible()
    expect(card.get_by_role("button", name="Cancel import")).to_be_hidden()


def test_refused_and_failed_imports_say_why_and_can_be_retried(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    image = tmp_path / "photo.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    page.get_by_label("Drop a CSV file here").set_input_files(str(image))
    page.get_by_role("button", name="Import", exact=True).click()
    card = page.locator("#job-card")
    expect(card.get_by_role("alert")).to_contain_text("This is a PNG image, not a CSV file or")
    screenshot(page, "import-refused")

    header_only = tmp_path / "header-only.csv"
    header_only.write_text("sku,name\n")
    page.get_by_label("Drop a CSV file here").set_input_files(str(header_only))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(card.get_by_role("alert")).to_contain_text(
        "Import failed: The file has a header but no data rows."
    )
    retry = card.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    screenshot(page, "import-failed")
    retry.click()
    expect(card.get_by_role("alert")).to_contain_text("no data rows")
    expect(page.locator("#history tbody tr").first).to_contain_text("failed")


def test_the_drop_zone_works_from_the_keyboard(page: Page, live_server: LiveServer) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    page.locator("#main").focus()
    page.keyboard.press("Tab")
    file_input = page.get_by_label("Drop a CSV file here")
    expect(file_input).to_be_focused()
    # The focus ring shows on the drop zone around the (visually hidden) file input.
    ring = page.locator("#dropzone").evaluate("el => getComputedStyle(el).boxShadow")
    assert ring != "none"
    page.keyboard.press("Tab")
    expect(page.get_by_label("Dry run")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.get_by_label("Dry run")).to_be_checked()
