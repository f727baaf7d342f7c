"""The mapping step in Chromium: a foreign header, a suggestion, a preview, a saved mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser import LiveServer, screenshot, sign_in_page
from tests.imports.test_mapping_routes import shopify_export
from tests.imports.test_routes import catalogue

pytestmark = pytest.mark.browser


def test_map_preview_save_and_import_a_shopify_export(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    export = tmp_path / "products_export.csv"
    export.write_bytes(shopify_export())
    sign_in_page(page, live_server)
    page.goto("/import")
    page.get_by_label("Drop a CSV file here").set_input_files(str(export))

    step = page.get_by_role("group", name="Match your columns")
    expect(step).to_be_visible()
    expect(step.get_by_label("SKU")).to_have_value("Variant SKU")
    expect(step.get_by_label("Name", exact=False).first).to_have_value("Title")
    expect(step.get_by_label("Description")).to_have_value("Body (HTML)")
    expect(step.get_by_label("Active")).to_have_value("Status")
    rows = step.locator("#preview-table tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.nth(0)).to_contain_text("OAK-CH-01")
    expect(rows.nth(1)).to_contain_text("no")  # Shopify's "draft" read as not active
    expect(rows.nth(3)).to_contain_text("Rejected: SKU is empty.")
    screenshot(page, "import-mapping-1280")

    # By keyboard: the next column (Variant Grams) for sku, the preview follows; and back.
    step.get_by_label("SKU").focus()
    page.keyboard.press("ArrowDown")
    expect(step.get_by_label("SKU")).to_have_value("Variant Grams")
    expect(rows.nth(0)).to_contain_text("5400")
    page.keyboard.press("ArrowUp")
    expect(rows.nth(0)).to_contain_text("OAK-CH-01")
    step.get_by_label("SKU").select_option("")
    expect(step.locator("#mapping-error")).to_contain_text("must name a column for sku")
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_disabled()
    step.get_by_label("SKU").select_option("Variant SKU")
    expect(step.locator("#mapping-error")).to_be_empty()
    expect(rows.nth(0)).to_contain_text("OAK-CH-01")

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "import-mapping-390")
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the mapping step scrolls sideways at 390 px"
    page.set_viewport_size({"width": 1280, "height": 900})

    page.keyboard.press("Tab")
    step.get_by_label("Save this mapping").check()
    step.get_by_label("Name of the saved mapping").fill("Shopify export")
    page.get_by_role("button", name="Import", exact=True).click()
    card = page.locator("#job-card")
    expect(card.locator("#job-outcome")).to_contain_text("Import finished", timeout=60_000)
    expect(card.get_by_text("created 3")).to_be_visible()
    screenshot(page, "import-mapping-done")
    assert set(catalogue(live_server.database)) == {"oak-ch-01", "pine-dk-02", "00123"}

    # The same header set next time: the saved mapping is filled in and named.
    page.reload()
    page.get_by_label("Drop a CSV file here").set_input_files(str(export))
    expect(step).to_be_visible()
    expect(step).to_contain_text("saved mapping “Shopify export”")
    expect(step.get_by_label("SKU")).to_have_value("Variant SKU")


def test_a_matching_header_needs_no_step_and_a_workbook_offers_its_sheets(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    from tests.imports import workbooks

    plain = tmp_path / "plain.csv"
    plain.write_bytes(b"sku,name\nA-1,One\n")
    book = tmp_path / "book.xlsx"
    book.write_bytes(
        workbooks.xlsx(
            {
                "Notes": [["hello"]],
                "Products": [["Artikelnummer", "Bezeichnung"], ["0042", "Tisch"]],
            }
        )
    )
    sign_in_page(page, live_server)
    page.goto("/import")
    page.get_by_label("Drop a CSV file here").set_input_files(str(plain))
    review = page.get_by_role("button", name="Review mapping and preview")
    expect(review).to_be_visible()
    expect(page.get_by_role("group", name="Match your columns")).to_be_hidden()
    page.get_by_label("Drop a CSV file here").set_input_files(str(book))
    step = page.get_by_role("group", name="Match your columns")
    expect(step.get_by_label("Sheet")).to_have_value("Notes")
    step.get_by_label("Sheet").select_option("Products")
    expect(step.get_by_label("SKU")).to_have_value("Artikelnummer")
    expect(step.locator("#preview-table tbody tr")).to_contain_text("0042")
    screenshot(page, "import-mapping-workbook")
    page.get_by_role("button", name="Import", exact=True).click()
    card = page.locator("#job-card")
    expect(card.locator("#job-outcome")).to_contain_text("Import finished", timeout=60_000)
    assert set(catalogue(live_server.database)) == {"0042"}
