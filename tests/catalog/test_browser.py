"""The Products page in real Chromium: filter, page, sort, create, edit, 409, delete, delete all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser import LiveServer, screenshot, sign_in_page
from tests.catalog.helpers import add_products, numbered
from tests.factories import make_product

pytestmark = pytest.mark.browser


def rows(page: Page) -> list[str]:
    return page.locator("#products-body td.col-sku").all_inner_texts()


def test_filter_sort_and_page_through_the_catalogue(page: Page, live_server: LiveServer) -> None:
    add_products(live_server.database, numbered(120, prefix="BULK-", description="Plain widget"))
    add_products(
        live_server.database,
        [
            {"sku": "OAK-CHAIR-1", "name": "Oak chair", "description": "=cmd|' /C calc'!A0"},
            {
                "sku": "oak-table-2",
                "name": "Oak table",
                "description": "Seats six",
                "active": False,
            },
        ],
    )
    sign_in_page(page, live_server)
    page.goto("/products")
    expect(page.locator("#results-summary")).to_have_text("Showing 1\u201350 of 122 products")
    expect(page.locator("#products-body tr")).to_have_count(50)
    screenshot(page, "products-1280")

    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#results-summary")).to_have_text("Showing 51\u2013100 of 122 products")
    expect(page).to_have_url(re.compile(r"page=2"))

    page.get_by_label("Name contains").fill("oak")
    expect(page.locator("#results-summary")).to_have_text("Showing 1\u20132 of 2 products")
    assert rows(page) == ["OAK-CHAIR-1", "oak-table-2"]
    expect(page).to_have_url(re.compile(r"name=oak"))
    expect(page).not_to_have_url(re.compile(r"page=2"))

    page.get_by_label("Status").select_option("Inactive")
    expect(page.locator("#products-body tr")).to_have_count(1)
    assert rows(page) == ["oak-table-2"]

    # A bookmarked, filtered URL opens the same view.
    page.goto("/products?q=oak&sort=-sku")
    expect(page.get_by_label("Search")).to_have_value("oak")
    expect(page.locator("#products-body tr")).to_have_count(2)
    assert rows(page) == ["oak-table-2", "OAK-CHAIR-1"]
    expect(page.locator("th[data-sort=sku]")).to_have_attribute("aria-sort", "descending")
    page.get_by_role("button", name="SKU").click()
    expect(page.locator("th[data-sort=sku]")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#products-body td.col-sku").first).to_have_text("OAK-CHAIR-1")

    export = page.get_by_role("link", name="Export CSV")
    expect(export).to_have_attribute("href", "/api/products/export?q=oak")
    with page.expect_download() as download:
        export.click()
    content = Path(download.value.path()).read_text(encoding="utf-8")
    assert content.splitlines()[0] == "name,sku,description,active"
    assert "'=cmd" in content and "OAK-CHAIR-1" in content and "BULK-" not in content

    page.get_by_label("Search").fill("no such thing")
    expect(page.get_by_text("No products match these filters.")).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    expect(page.locator("#products-body tr")).to_have_count(50)
    expect(page.get_by_label("Search")).to_have_value("")

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator("#products-body tr").first).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the Products page scrolls sideways at 390 px"
    screenshot(page, "products-390")


def test_create_edit_conflict_and_delete(page: Page, live_server: LiveServer) -> None:
    make_product(live_server.database, "TAKEN-1", name="Already here")
    sign_in_page(page, live_server)
    page.goto("/products")
    expect(page.locator("#products-body tr")).to_have_count(1)

    page.get_by_role("button", name="New product").click()
    dialog = page.get_by_role("dialog", name="New product")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("SKU")).to_be_focused()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("Enter a SKU.")).to_be_visible()
    expect(dialog.get_by_text("Enter a name.")).to_be_visible()

    dialog.get_by_label("SKU").fill("taken-1")
    dialog.get_by_label("Name").fill("Clashing product")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator("#p-sku-error")).to_contain_text(
        "SKU 'taken-1' is already used by product"
    )
    expect(dialog.get_by_label("SKU")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "products-409")

    dialog.get_by_label("SKU").fill("NEW-1")
    dialog.get_by_label("Description").fill("Made in the browser")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status").filter(has_text="Created NEW-1.")).to_be_visible()
    expect(page.locator("#products-body tr")).to_have_count(2)

    page.get_by_role("button", name="Edit NEW-1").click()
    edit = page.get_by_role("dialog", name="Edit NEW-1")
    expect(edit.get_by_label("Name")).to_have_value("Clashing product")
    edit.get_by_label("Name").fill("Renamed in the browser")
    edit.get_by_label("Active").uncheck()
    screenshot(page, "products-edit")
    edit.get_by_role("button", name="Save").click()
    expect(edit).to_be_hidden()
    row = page.locator("#products-body tr", has_text="NEW-1")
    expect(row).to_contain_text("Renamed in the browser")
    expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "false")

    row.get_by_role("switch").click()
    expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")

    # Someone else edits while this user has the form open: the save is refused (412).
    page.get_by_role("button", name="Edit NEW-1").click()
    edit = page.get_by_role("dialog", name="Edit NEW-1")
    expect(edit.get_by_label("Name")).to_have_value("Renamed in the browser")
    other_id = page.locator("#products-body tr", has_text="NEW-1").get_attribute("data-id")
    page.evaluate(
        "id => PI.api(`/api/products/${id}`, {method: 'PATCH', json: {name: 'Edited elsewhere'}})",
        other_id,
    )
    edit.get_by_label("Name").fill("My stale edit")
    edit.get_by_role("button", name="Save").click()
    expect(edit.get_by_role("alert").first).to_contain_text("Someone else changed this product")
    edit.get_by_role("button", name="Cancel").click()

    page.get_by_role("button", name="Delete NEW-1").click()
    confirm = page.get_by_role("dialog", name="Delete product")
    expect(confirm).to_contain_text("Delete NEW-1")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").filter(has_text="Deleted NEW-1.")).to_be_visible()
    expect(page.locator("#products-body tr")).to_have_count(1)
    assert rows(page) == ["TAKEN-1"]


def test_delete_all_asks_shows_the_count_and_reports_success(
    page: Page, live_server: LiveServer
) -> None:
    add_products(live_server.database, numbered(75))
    sign_in_page(page, live_server)
    page.goto("/products?q=SKU-00007")
    expect(page.locator("#products-body tr")).to_have_count(1)
    page.get_by_role("button", name="Delete all products").click()
    dialog = page.get_by_role("dialog", name="Delete all products")
    expect(dialog).to_contain_text("The deletion can be undone for 30 days")
    expect(dialog).to_contain_text("This deletes all 75 products in the catalogue")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    screenshot(page, "products-delete-all")

    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert page.evaluate("fetch('/api/products').then(r => r.json()).then(b => b.total)") == 75

    page.get_by_role("button", name="Delete all products").click()
    dialog.get_by_role("button", name="Delete all 75 products").click()
    expect(dialog.get_by_role("status")).to_have_text(
        "Deleted all 75 products. This can be undone for 30 days. See it on the Changes page."
    )
    expect(dialog.get_by_role("link", name="See it on the Changes page.")).to_be_visible()
    expect(page.locator(".toast").filter(has_text="Deleted all 75 products.")).to_be_visible()
    expect(dialog.get_by_role("button", name="Undo this deletion")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    page.get_by_role("button", name="Clear").first.click()
    expect(page.get_by_text("No products yet.")).to_be_visible()
    expect(page.get_by_role("link", name="Import a CSV file")).to_have_attribute("href", "/import")
    screenshot(page, "products-empty")

    # The result's Undo (closed above, for the empty state) runs PI.undo.change: the
    # confirmation shows the dry run's counts, then the products come back.
    job = page.evaluate("fetch('/api/products/delete-jobs/latest').then(r => r.json())")
    page.evaluate(f"PI.undo.change({job['change_id']}, 'the deletion of all products')")
    undo = page.get_by_role("dialog", name="Undo the deletion of all products")
    expect(undo).to_contain_text("This will restore 75 products to their values before it.")
    undo.get_by_role("button", name="Undo", exact=True).click()
    expect(undo).to_contain_text("75 products restored", timeout=30_000)
    assert page.evaluate("fetch('/api/products').then(r => r.json()).then(b => b.total)") == 75


def test_keyboard_only_create(page: Page, live_server: LiveServer) -> None:
    sign_in_page(page, live_server)
    page.goto("/products")
    expect(page.get_by_text("No products yet.")).to_be_visible()
    page.get_by_role("button", name="New product").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="New product").get_by_label("SKU")).to_be_focused()
    page.keyboard.type("KEY-1")
    page.keyboard.press("Tab")
    page.keyboard.type("Typed with the keyboard")
    page.keyboard.press("Enter")  # submits the form
    expect(page.locator("#products-body td.col-sku")).to_have_text(["KEY-1"])
    page.get_by_role("button", name="Edit KEY-1").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Edit KEY-1")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Edit KEY-1")).to_be_hidden()


def test_a_search_typed_while_the_page_starts_is_kept(page: Page, live_server: LiveServer) -> None:
    """The list waits for the custom fields before its first load; what the user typed into a
    filter meanwhile is searched for, not wiped by the first load (a flake of the axe sweep)."""
    add_products(live_server.database, numbered(3, name="Plain stool"))
    add_products(live_server.database, [{"sku": "OAK-1", "name": "Oak table"}])
    sign_in_page(page, live_server)
    held: list[Route] = []
    page.route("**/api/fields*", lambda route: held.append(route))
    page.goto("/products")
    page.get_by_label("Search").fill("oak")
    expect(page.get_by_label("Search")).to_have_value("oak")
    assert held, "the page asked for the custom fields"
    # The fields come before the typed search's debounce (300 ms) is over: the list's first
    # load used to reset the filters to the URL's, wiping the text.
    with page.expect_response(lambda response: "/api/products?" in response.url):
        for route in held:
            route.continue_()
    page.unroute("**/api/fields*")
    expect(page.locator("#products-body tr")).to_have_count(1)
    expect(page.get_by_label("Search")).to_have_value("oak")
    expect(page.locator("#products-body")).to_contain_text("OAK-1")
