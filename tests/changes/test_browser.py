"""Undo, bulk actions and history in real Chromium, with screenshots at 1280 and 390 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import LiveServer, screenshot, sign_in_page
from tests.catalog.helpers import add_products, numbered
from tests.changes.helpers import catalogue, csv_of

pytestmark = pytest.mark.browser


def _import(page: Page, content: bytes, name: str) -> None:
    page.locator("#file-input").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": content}
    )
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=30_000)
    expect(page.locator("#history tbody tr").first).to_contain_text(name)


def test_undo_an_import_from_the_history_table(page: Page, live_server: LiveServer) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    _import(page, csv_of([(f"U-{i}", f"First {i}", "") for i in range(4)]), "first.csv")
    _import(page, csv_of([(f"U-{i}", f"Second {i}", "") for i in range(6)]), "second.csv")
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(2)
    expect(page.locator("#job-undo")).to_be_visible()
    history.first.get_by_role("button", name="Undo import 2 of second.csv").click()
    dialog = page.get_by_role("dialog", name="Undo import 2 (second.csv)")
    expect(dialog).to_contain_text(
        "This will delete 2 products it created and restore 4 products to their values before it."
    )
    screenshot(page, "undo-confirm-1280")
    dialog.get_by_role("button", name="Undo", exact=True).click()
    expect(dialog).to_contain_text(
        "Undone: 2 products deleted, 4 products restored, 0 products kept", timeout=30_000
    )
    screenshot(page, "undo-done-1280")
    assert catalogue(live_server.database) == {
        f"u-{i}": (f"U-{i}", f"First {i}", "", True) for i in range(4)
    }
    dialog.get_by_role("button", name="Close").click()
    # The undone import offers no second undo: it shows `undone`, linking to its undo.
    expect(page.get_by_role("button", name="Undo import 2 of second.csv")).to_have_count(0)
    expect(
        page.get_by_role("link", name="undone: see the undo of second.csv on the Changes page")
    ).to_be_visible()


def test_select_all_matching_and_deactivate_then_undo(page: Page, live_server: LiveServer) -> None:
    add_products(live_server.database, numbered(60, prefix="OAK-", name="Oak chair"))
    add_products(live_server.database, numbered(5, prefix="PINE-", name="Pine desk"))
    sign_in_page(page, live_server)
    page.goto("/products?sku=OAK-*&page_size=25")
    expect(page.locator("#products-body tr")).to_have_count(25)
    page.get_by_label("Select all products on this page").check()
    expect(page.locator("#bulk-count")).to_have_text("25 products selected.")
    page.get_by_role("button", name="Select all 60 products matching these filters").click()
    expect(page.locator("#bulk-count")).to_have_text(
        "All 60 products matching these filters are selected."
    )
    screenshot(page, "products-bulk-1280")
    page.get_by_role("button", name="Deactivate", exact=True).click()
    dialog = page.get_by_role("dialog", name="Deactivate 60 products")
    expect(dialog).to_contain_text("Deactivate 60 products matching these filters?")
    dialog.get_by_role("button", name="Deactivate 60 products").click()
    expect(dialog).to_contain_text("Done: 60 products deactivated.")
    rows = catalogue(live_server.database)
    assert sum(not row[3] for row in rows.values()) == 60
    assert all(row[3] for key, row in rows.items() if key.startswith("pine"))
    dialog.get_by_role("button", name="Undo").click()
    undo = page.get_by_role("dialog", name="Undo Bulk: deactivate 60 products")
    expect(undo).to_contain_text("restore 60 products")
    undo.get_by_role("button", name="Undo", exact=True).click()
    expect(undo).to_contain_text("60 products restored", timeout=30_000)
    assert all(row[3] for row in catalogue(live_server.database).values())


def test_history_tab_shows_who_and_when(page: Page, live_server: LiveServer) -> None:
    sign_in_page(page, live_server)
    page.goto("/products")
    form = page.locator("#product-dialog")
    page.get_by_role("button", name="New product").click()
    form.get_by_label("SKU").fill("HIST-1")
    form.get_by_label("Name").fill("Lamp")
    form.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Edit HIST-1").click()
    form.get_by_label("Name").fill("Desk lamp")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#products-body td.col-name")).to_have_text(["Desk lamp"])
    page.get_by_role("button", name="Edit HIST-1").click()
    page.get_by_role("tab", name="History").click()
    entries = page.locator("#history-list > li")
    expect(entries).to_have_count(2)
    expect(entries.first).to_contain_text("Updated")
    expect(entries.first).to_contain_text("alice")
    expect(entries.first).to_contain_text("name: Lamp → Desk lamp")
    expect(entries.nth(1)).to_contain_text("Created")
    expect(page.locator("#history-status")).to_contain_text("2 changes recorded")
    screenshot(page, "product-history-1280")
    page.set_viewport_size({"width": 390, "height": 800})
    screenshot(page, "product-history-390")


def test_the_table_fits_at_1280_and_390(page: Page, live_server: LiveServer) -> None:
    add_products(
        live_server.database,
        numbered(
            30,
            prefix="WIDE-SKU-WITH-A-LONG-NAME-",
            name="A rather long product name " * 3,
            description="A long description that would push the row actions off " * 5,
        ),
    )
    sign_in_page(page, live_server)
    page.goto("/products")
    expect(page.locator("#products-body tr")).to_have_count(30)
    page.get_by_label("Select WIDE-SKU-WITH-A-LONG-NAME-00000").check()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        delete = page.get_by_role("button", name="Delete WIDE-SKU-WITH-A-LONG-NAME-00000")
        card = page.locator("#table-card").bounding_box()
        box = delete.bounding_box()
        assert card and box
        if width == 1280:  # the whole row fits in the card, Delete included
            assert box["x"] + box["width"] <= card["x"] + card["width"], (box, card)
        screenshot(page, f"products-table-{width}")


def test_an_editor_is_not_offered_deleting_every_product(
    page: Page, live_server: LiveServer
) -> None:
    from product_importer.auth.roles import Role
    from tests.factories import DEFAULT_PASSWORD, make_user

    add_products(live_server.database, numbered(30, prefix="OAK-", name="Oak chair"))
    make_user(live_server.database, "ed", role=Role.editor)
    page.goto("/login")
    page.get_by_label("Username").fill("ed")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto("/products?page_size=25")
    # The rows first: checking before they load leaves nothing to select (a flake under load).
    expect(page.locator("#products-body tr")).to_have_count(25)
    page.get_by_label("Select all products on this page").check()
    delete = page.locator("#bulk-delete")
    expect(delete).to_be_visible()  # 25 of 30: an editor may
    page.get_by_role("button", name="Select all 30 products matching these filters").click()
    expect(page.locator("#bulk-count")).to_have_text(
        "All 30 products matching these filters are selected."
    )
    expect(delete).to_be_hidden()
    expect(page.locator("#bulk-delete-note")).to_have_text(
        "Deleting every product needs the admin role."
    )
    expect(page.get_by_role("button", name="Deactivate", exact=True)).to_be_visible()
    screenshot(page, "products-bulk-editor-everything-1280")
    # A filter that leaves some products out gives Delete back.
    page.get_by_role("button", name="Clear selection").click()
    page.goto("/products?sku=OAK-0000*")
    expect(page.locator("#products-body tr")).to_have_count(10)  # OAK-00000 to OAK-00009
    page.get_by_label("Select all products on this page").check()
    expect(delete).to_be_visible()
    expect(page.locator("#bulk-delete-note")).to_be_hidden()
