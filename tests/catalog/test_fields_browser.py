"""Custom fields in real Chromium: a foreign file's columns kept as new fields at import, shown
as columns, filtered and sorted on, edited in the product dialog and seen in its History."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from product_importer.auth.roles import Role
from tests.browser import LiveServer, screenshot, sign_in_page
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.browser

# A shop's own export: its names for SKU and title, and columns we have no field for yet.
FOREIGN_CSV = (
    "Variant SKU,Title,Description,Vendor,Variant Price,Inventory,Colour\n"
    "CH-1,Oak chair,Solid oak,Acme,129.00,4,brown\n"
    'TB-1,Oak table,Seats six,Acme,"1,299.50",12,natural\n'
    "ST-1,Stool,,Woodco,19.99,0,black\n"
)


def column_texts(page: Page, key: str) -> list[str]:
    """The cells of a custom field's column, row by row."""
    headers = page.locator("#products-table thead th")
    index = next(
        i for i in range(headers.count()) if headers.nth(i).get_attribute("data-key") == key
    )
    return page.locator(f"#products-body tr td:nth-child({index + 1})").all_inner_texts()


def skus(page: Page) -> list[str]:
    return page.locator("#products-body td.col-sku").all_inner_texts()


def test_keep_columns_as_new_fields_then_show_filter_edit_and_see_history(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    sign_in_page(page, live_server)  # an admin: only admins create fields
    source = tmp_path / "shop-export.csv"
    source.write_text(FOREIGN_CSV, encoding="utf-8")

    # Map the file: its own names for SKU and name; the columns left over are proposed.
    page.goto("/import")
    page.get_by_label("Drop a CSV file here").set_input_files(str(source))
    step = page.get_by_role("group", name="Match your columns")
    expect(step.locator("#map-sku")).to_have_value("Variant SKU")
    expect(step.locator("#map-name")).to_have_value("Title")
    proposals = step.locator("#proposals")
    expect(proposals.get_by_role("group")).to_have_count(4)
    price = proposals.get_by_role("group", name="Variant Price")
    stock = proposals.get_by_role("group", name="Inventory")
    expect(price.get_by_label("Type")).to_have_value("decimal")
    expect(stock.get_by_label("Type")).to_have_value("integer")
    expect(price.get_by_label("Key")).to_be_disabled()

    # Keep two of them, under keys and labels of our own.
    price.get_by_label("Keep as a new field").check()
    price.get_by_label("Key").fill("price")
    price.get_by_label("Label").fill("Price")
    stock.get_by_label("Keep as a new field").check()
    stock.get_by_label("Key").fill("stock")
    stock.get_by_label("Label").fill("Stock")
    screenshot(page, "fields-import-mapping")
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#job-outcome")).to_contain_text("Import finished", timeout=30_000)
    expect(page.locator("#job-created")).to_have_text("3")

    # The fields exist now, and the Fields page lists them.
    page.goto("/fields")
    expect(page.locator("#fields-body tr")).to_have_count(2)
    expect(page.locator("#fields-body tr[data-key=price]")).to_contain_text("Decimal number")
    expect(page.locator("#fields-body tr[data-key=stock]")).to_contain_text("Whole number")

    # Show them as columns; the choice is remembered by the browser.
    page.goto("/products")
    expect(page.locator("#products-body tr")).to_have_count(3)
    page.locator("#columns-chooser summary").click()
    chooser = page.get_by_role("group", name="Show fields as columns")
    chooser.get_by_label("Price").check()
    chooser.get_by_label("Stock").check()
    page.locator("#columns-chooser summary").click()
    expect(page.get_by_role("columnheader", name="Price")).to_be_visible()
    assert skus(page) == ["CH-1", "ST-1", "TB-1"]
    assert column_texts(page, "price") == ["129", "19.99", "1299.5"]
    assert column_texts(page, "stock") == ["4", "0", "12"]
    page.reload()
    expect(page.get_by_role("columnheader", name="Stock")).to_be_visible()
    screenshot(page, "fields-products-columns")

    # Sort by a field's column, both ways (the arrow joins the button's name once sorted).
    sort_by_price = page.get_by_role("columnheader", name=re.compile("^Price")).get_by_role(
        "button"
    )
    sort_by_price.click()
    expect(page).to_have_url(re.compile(r"sort=field\.price"))
    expect(page.locator("#products-body td.col-sku").first).to_have_text("ST-1")
    assert skus(page) == ["ST-1", "CH-1", "TB-1"]
    sort_by_price.click()
    expect(page).to_have_url(re.compile(r"sort=-field\.price"))
    expect(page.locator("#products-body td.col-sku").first).to_have_text("TB-1")

    # Filter by one: stock more than 3.
    filters = page.get_by_role("search", name="Filter products")
    filters.get_by_label("Field", exact=True).select_option(label="Stock")
    filters.get_by_label("Condition").select_option(label="is more than")
    filters.get_by_label("Value", exact=True).fill("3")
    expect(page).to_have_url(re.compile(r"field\.stock\.gt=3"))
    expect(page.locator("#products-body tr")).to_have_count(2)
    assert sorted(skus(page)) == ["CH-1", "TB-1"]
    screenshot(page, "fields-products-filtered")

    # Edit one in the product dialog: its inputs fit the field types.
    page.get_by_role("button", name="Edit CH-1").click()
    dialog = page.get_by_role("dialog", name="Edit CH-1")
    price_input = dialog.get_by_role("spinbutton", name="Price")
    expect(price_input).to_have_value("129")
    expect(dialog.get_by_role("spinbutton", name="Stock")).to_have_value("4")
    price_input.fill("135.50")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    chair = page.locator("#products-body tr", has=page.locator("td.col-sku", has_text="CH-1"))
    expect(chair).to_contain_text("135.5")

    # The change is in the product's History, field by field.
    page.get_by_role("button", name="Edit CH-1").click()
    dialog.get_by_role("tab", name="History").click()
    history = dialog.locator("#history-list")
    expect(history.locator("> li").first).to_contain_text("Price (price): 129 → 135.5")
    expect(history.locator("> li").first).not_to_contain_text("Stock")
    screenshot(page, "fields-product-history")

    # Emptying an input unsets the field.
    dialog.get_by_role("tab", name="Details").click()
    dialog.get_by_role("spinbutton", name="Stock").fill("")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    # Stock 4 is gone, so CH-1 no longer has more than 3.
    expect(page.locator("#products-body tr")).to_have_count(1)
    assert skus(page) == ["TB-1"]


def test_an_editor_sees_the_proposals_and_imports_without_them(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    make_user(live_server.database, "eddie", role=Role.editor)
    page.goto("/login")
    page.get_by_label("Username").fill("eddie")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    source = tmp_path / "shop-export.csv"
    source.write_text(FOREIGN_CSV, encoding="utf-8")
    page.goto("/import")
    page.get_by_label("Drop a CSV file here").set_input_files(str(source))
    new_fields = page.get_by_role("region", name="Columns not imported")
    expect(new_fields).to_contain_text(
        "An admin must create these fields before they can be imported; ask an admin, or "
        "import without them."
    )
    expect(new_fields.get_by_role("listitem")).to_have_count(4)
    expect(new_fields).to_contain_text("Variant Price → variant_price (decimal number)")
    expect(new_fields.get_by_role("checkbox")).to_have_count(0)
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#job-outcome")).to_contain_text("Import finished", timeout=30_000)
    expect(page.locator("#job-created")).to_have_text("3")
    # The Fields page is not in an editor's navigation, but it can be read.
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Fields")
    ).to_have_count(0)
    page.goto("/fields")
    expect(page.get_by_text("No fields yet.")).to_be_visible()
    expect(page.get_by_role("button", name="Add field")).to_have_count(0)
