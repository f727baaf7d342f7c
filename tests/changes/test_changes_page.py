"""The Changes page and the undo toast in real Chromium, at 1280 and 390 px."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from product_importer.auth.roles import Role
from product_importer.catalog import service as catalog_service
from product_importer.catalog.schemas import ProductCreate
from tests.browser import LiveServer, screenshot, sign_in_page
from tests.catalog.helpers import add_products, numbered
from tests.changes.helpers import catalogue
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.browser

WIDTHS = [1280, 390]


def _sign_in_as(page: Page, live_server: LiveServer, name: str, role: Role) -> None:
    make_user(live_server.database, name, role=role)
    page.goto("/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.mark.parametrize("width", WIDTHS)
def test_close_a_bulk_result_find_it_on_the_changes_page_and_undo_it(
    page: Page, live_server: LiveServer, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    add_products(live_server.database, numbered(40, prefix="OAK-", name="Oak chair"))
    sign_in_page(page, live_server)
    page.goto("/products?page_size=50")
    expect(page.locator("#products-body tr")).to_have_count(40)
    page.get_by_label("Select all products on this page").check()
    page.get_by_role("button", name="Deactivate", exact=True).click()
    dialog = page.get_by_role("dialog", name="Deactivate 40 products")
    dialog.get_by_role("button", name="Deactivate 40 products").click()
    expect(dialog).to_contain_text("Done: 40 products deactivated.")
    expect(dialog.get_by_role("link", name="Changes page")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Changes").click()
    page.wait_for_url("**/changes")
    row = page.locator(".change").first
    expect(row.get_by_role("heading")).to_have_text("Bulk: deactivate 40 products")
    expect(row).to_contain_text("alice")
    screenshot(page, f"changes-list-{width}")
    row.get_by_role("button", name="Undo Bulk: deactivate 40 products").click()
    undo = page.get_by_role("dialog", name="Undo Bulk: deactivate 40 products")
    expect(undo).to_contain_text("This will restore 40 products to their values before it.")
    screenshot(page, f"changes-undo-confirm-{width}")
    undo.get_by_role("button", name="Undo", exact=True).click()
    expect(undo).to_contain_text("40 products restored", timeout=30_000)
    undo.get_by_role("button", name="Close").click()
    assert all(row[3] for row in catalogue(live_server.database).values())

    bulk_row = page.locator(".change[data-kind=bulk]")
    expect(bulk_row).to_contain_text("Undone by Undo of bulk: deactivate 40 products.")
    expect(bulk_row.get_by_role("button", name="Undo")).to_have_count(0)
    expect(page.locator(".change").first.get_by_role("heading")).to_have_text(
        "Undo of bulk: deactivate 40 products"
    )
    screenshot(page, f"changes-undone-{width}")
    # The link names the undo in words and shows it alone; Back returns to the list.
    bulk_row.get_by_role("link", name="Undo of bulk: deactivate 40 products").click()
    expect(page).to_have_url(re.compile(r"change=\d+"))
    expect(page.locator(".change")).to_have_count(1)
    expect(page.locator(".change.is-focus")).to_be_visible()
    page.go_back()
    expect(page.locator(".change")).to_have_count(2)

    # Filters are kept in the URL.
    page.get_by_label("What").select_option("bulk")
    expect(page).to_have_url(re.compile("kind=bulk"))
    expect(page.locator(".change")).to_have_count(1)
    page.reload()
    expect(page.get_by_label("What")).to_have_value("bulk")
    expect(page.locator(".change")).to_have_count(1)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_toast_after_the_active_toggle_and_a_delete_offers_undo(
    page: Page, live_server: LiveServer, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    add_products(live_server.database, [{"sku": f"CHAIR-{i}", "name": "Chair"} for i in range(3)])
    sign_in_page(page, live_server)
    page.goto("/products")
    toggle = page.get_by_role("switch", name="Active: CHAIR-0")
    expect(toggle).to_have_attribute("aria-checked", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-checked", "false")
    expect(toggle).to_have_text("Inactive")
    toast = page.locator(".toast-undo")
    expect(toast).to_contain_text("CHAIR-0 is now inactive.")
    screenshot(page, f"toast-undo-{width}")
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator(".toast").last).to_contain_text("Undone: edit of product CHAIR-0.")
    expect(page.get_by_role("switch", name="Active: CHAIR-0")).to_have_attribute(
        "aria-checked", "true"
    )
    assert catalogue(live_server.database)["chair-0"][3] is True

    page.get_by_role("button", name="Delete CHAIR-1").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    toast = page.locator(".toast-undo")
    expect(toast).to_contain_text("Deleted CHAIR-1.")
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator(".toast").last).to_contain_text("Undone: deletion of product CHAIR-1.")
    expect(page.locator("#products-body")).to_contain_text("CHAIR-1")

    page.goto("/changes?kind=edit")
    edits = page.locator(".change")
    expect(edits).to_have_count(2)
    expect(edits.nth(1)).to_contain_text("Edit of product CHAIR-0")
    expect(edits.nth(1)).to_contain_text("Undone by Undo of edit of product CHAIR-0.")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_viewer_reads_the_changes_page_without_undo(
    page: Page, live_server: LiveServer, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    with live_server.database.session() as session:
        for sku in ("LAMP-1", "LAMP-2"):
            catalog_service.create(session, ProductCreate(sku=sku, name="Lamp"), "alice")
    _sign_in_as(page, live_server, "val", Role.viewer)
    page.goto("/changes")
    expect(page.locator(".change").first).to_contain_text("Creation of product LAMP-")
    expect(page.get_by_role("button", name="Undo")).to_have_count(0)
    expect(page.locator("#changes-intro")).to_contain_text("by an editor or an admin")
    screenshot(page, f"changes-viewer-{width}")


def test_a_description_holding_html_is_shown_as_text(page: Page, live_server: LiveServer) -> None:
    html = '<p>Oak <b>chair</b></p><img src="x" onerror="window.rendered = 1">'
    add_products(live_server.database, [{"sku": "HTML-1", "name": "Html", "description": html}])
    sign_in_page(page, live_server)
    page.goto("/products?sku=HTML-1")
    cell = page.locator("#products-body tr").first.locator("td.col-description")
    expect(cell).to_have_text(html)
    assert cell.locator("b, img, p").count() == 0
    assert page.evaluate("window.rendered === undefined")
