"""The UI keeps its promises in Chromium, at 1280 and 390 px: controls fit the role (a viewer
reads a product and its History but sees no Undo, checkboxes or edits; an editor sees no Delete
all), the product list and the import pages fit a phone, and Products and Audit keep their
filters, sort and page in the URL as history entries (Back, reload), rows open by keyboard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from product_importer.auth.roles import Role
from product_importer.catalog.models import Product
from product_importer.catalog.schemas import ProductUpdate
from tests.browser import LiveServer, screenshot, wait_until
from tests.factories import DEFAULT_PASSWORD, make_product, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

WIDTHS = (1280, 390)


def _signed_in(browser: Browser, server: LiveServer, username: str, role: Role, width: int) -> Page:
    make_user(server.database, username, role=role)
    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": 844})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def _catalogue(server: LiveServer, count: int = 60) -> None:
    for i in range(count):
        make_product(server.database, f"SKU-{i:03}", f"Product {i}", f"Description of product {i}")


def _no_sideways_scroll(page: Page) -> None:
    wide = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert wide[0] <= wide[1], f"the page scrolls sideways: {wide}"


@pytest.mark.parametrize("width", WIDTHS)
def test_a_viewer_reads_a_product_and_its_history_without_controls(
    browser: Browser, live_server: LiveServer, width: int
) -> None:
    from product_importer.catalog import service as catalog_service

    _catalogue(live_server, 3)
    with live_server.database.session() as session:
        product_id = session.scalars(select(Product.id).where(Product.sku == "SKU-001")).one()
        catalog_service.update(
            session, product_id, ProductUpdate(description="A long description " * 20)
        )
    viewer = _signed_in(browser, live_server, "vera", Role.viewer, width)
    viewer.goto("/products")
    expect(viewer.locator("#products-body tr")).to_have_count(3)
    assert viewer.locator("#products-table input[type=checkbox]").count() == 0
    assert viewer.get_by_role("button", name=re.compile("^(Edit|Delete|Undo)")).count() == 0
    assert viewer.get_by_role("button", name="New product").count() == 0
    assert viewer.get_by_role("button", name="Delete all products").count() == 0
    expect(viewer.locator("#bulk-bar")).to_be_hidden()
    screenshot(viewer, f"roles-viewer-products-{width}")

    # The row opens the product read-only: all of its description, then its History.
    viewer.get_by_role("button", name="Product 1", exact=True).click()
    dialog = viewer.get_by_role("dialog", name="SKU-001")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Description")).to_have_value("A long description " * 20)
    expect(dialog.get_by_label("Name")).not_to_be_editable()
    expect(dialog.get_by_role("button", name="Save")).to_be_hidden()
    dialog.get_by_role("tab", name="History").click()
    expect(dialog.locator("#history-status")).to_contain_text("recorded")
    expect(dialog.locator("#history-list")).to_contain_text("description")
    screenshot(viewer, f"roles-viewer-history-{width}")
    dialog.get_by_role("button", name="Close").click()

    viewer.goto("/import")
    expect(viewer.locator("#history-empty, #history tbody tr").first).to_be_attached()
    assert viewer.get_by_role("button", name=re.compile("^Undo")).count() == 0
    viewer.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_editor_sees_no_admin_controls(
    browser: Browser, live_server: LiveServer, width: int
) -> None:
    _catalogue(live_server, 3)
    editor = _signed_in(browser, live_server, "eddie", Role.editor, width)
    editor.goto("/products")
    expect(editor.locator("#products-body tr")).to_have_count(3)
    expect(editor.get_by_role("button", name="Edit SKU-000")).to_be_visible()
    assert editor.get_by_role("button", name="Delete all products").count() == 0
    nav = editor.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Users").count() == 0
    editor.get_by_label("Select all products on this page").check()
    expect(editor.locator("#bulk-bar")).to_be_visible()
    screenshot(editor, f"roles-editor-products-{width}")
    editor.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_back_and_reload_restore_a_products_search(
    browser: Browser, live_server: LiveServer, width: int
) -> None:
    _catalogue(live_server, 120)
    page = _signed_in(browser, live_server, "alice", Role.admin, width)
    page.goto("/products")
    first_sku = page.locator("#products-body td.col-sku").first
    expect(first_sku).to_have_text("SKU-000")

    # Next, pressed at the bottom of the list, shows the new page from the top of the table.
    page.get_by_role("button", name="Next page").scroll_into_view_if_needed()
    page.get_by_role("button", name="Next page").click()
    expect(first_sku).to_have_text("SKU-050")
    assert "page=2" in page.url
    top = page.locator("#table-card").evaluate("(card) => card.getBoundingClientRect().top")
    assert abs(top) < 5, top

    page.get_by_label("Name contains").fill("Product 1")
    expect(page.locator("#products-body tr")).to_have_count(31)
    page.wait_for_url(re.compile(r"name=Product\+1"))
    page.get_by_role("button", name="Name", exact=True).click()  # sort by name
    page.wait_for_url(re.compile(r"sort=name"))

    page.go_back()
    page.wait_for_url(lambda url: "sort=name" not in url and "name=Product" in url)
    expect(page.get_by_label("Name contains")).to_have_value("Product 1")
    expect(page.locator("#products-body tr")).to_have_count(31)
    page.go_back()
    page.wait_for_url(re.compile(r"page=2$"))
    expect(page.get_by_label("Name contains")).to_have_value("")
    expect(first_sku).to_have_text("SKU-050")
    page.go_back()
    expect(first_sku).to_have_text("SKU-000")
    assert page.url.endswith("/products")

    page.go_forward()
    page.go_forward()
    expect(page.locator("#products-body tr")).to_have_count(31)
    page.reload()
    expect(page.get_by_label("Name contains")).to_have_value("Product 1")
    expect(page.locator("#products-body tr")).to_have_count(31)
    screenshot(page, f"navigation-products-restored-{width}")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_back_and_reload_restore_an_audit_search(
    browser: Browser, live_server: LiveServer, width: int
) -> None:
    from product_importer.audit import service as audit_service

    with live_server.database.session() as session:
        for i in range(60):
            audit_service.record(
                session, None, "product.update", target=f"product:P-{i}", actor_name="robot"
            )
    page = _signed_in(browser, live_server, "alice", Role.admin, width)
    page.goto("/audit")
    expect(page.locator("#audit-body tr")).to_have_count(50)
    page.get_by_role("button", name="Older ›").click()
    page.wait_for_url(re.compile(r"page=2"))
    page.get_by_label("What").select_option("auth")
    page.wait_for_url(re.compile(r"action=auth"))
    expect(page.locator("#audit-body tr")).to_have_count(1)  # alice's sign-in

    page.go_back()
    page.wait_for_url(re.compile(r"\?page=2$"))
    expect(page.get_by_label("What")).to_have_value("")
    expect(page.locator("#audit-body tr")).to_have_count(11)
    page.go_forward()
    expect(page.locator("#audit-body tr")).to_have_count(1)
    page.reload()
    expect(page.get_by_label("What")).to_have_value("auth")
    expect(page.locator("#audit-body tr")).to_have_count(1)
    screenshot(page, f"navigation-audit-restored-{width}")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_row_opens_by_click_and_by_keyboard(
    browser: Browser, live_server: LiveServer, width: int
) -> None:
    _catalogue(live_server, 3)
    page = _signed_in(browser, live_server, "alice", Role.admin, width)
    page.goto("/products")
    expect(page.locator("#products-body tr")).to_have_count(3)
    page.locator("#products-body tr[data-id] td.col-sku").nth(2).click()
    expect(page.get_by_role("dialog", name="Edit SKU-002")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Edit SKU-002")).to_be_hidden()
    page.get_by_role("button", name="Product 1", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Edit SKU-001")).to_be_visible()
    expect(page.get_by_role("dialog", name="Edit SKU-001").get_by_label("Name")).to_be_focused()
    page.context.close()


def test_the_product_list_fits_a_phone(browser: Browser, live_server: LiveServer) -> None:
    from product_importer.catalog import custom_fields

    _catalogue(live_server, 5)
    with live_server.database.session() as session:
        custom_fields.create(session, "vendor", "Vendor", "text", None)
    make_product(
        live_server.database, "A-VERY-LONG-SKU-WITH-NO-BREAKS-0123456789", "W" * 60, "x" * 300
    )
    page = _signed_in(browser, live_server, "alice", Role.admin, 390)
    page.goto("/products")
    expect(page.locator("#products-body tr")).to_have_count(6)
    page.locator("#columns-chooser summary").click()
    page.get_by_role("group", name="Show fields as columns").get_by_label("Vendor").check()
    page.keyboard.press("Escape")
    _no_sideways_scroll(page)
    for sku in ("SKU-000", "A-VERY-LONG-SKU-WITH-NO-BREAKS-0123456789"):
        edit = page.get_by_role("button", name=f"Edit {sku}")
        edit.scroll_into_view_if_needed()
        box = edit.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        delete = page.get_by_role("button", name=f"Delete {sku}").bounding_box()
        assert delete is not None and delete["x"] + delete["width"] <= 390, delete
    screenshot(page, "phone-products-390")
    page.context.close()


def test_the_import_page_fits_a_phone(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    page = _signed_in(browser, live_server, "alice", Role.admin, 390)
    page.goto("/import")
    done = tmp_path / "chairs.csv"
    done.write_text("sku,name\nC-1,Chair\nC-2,Stool\n,No sku\n")
    page.get_by_label("Drop a CSV file here").set_input_files(str(done))
    page.get_by_role("button", name="Import", exact=True).click()
    # Focus goes to the outcome, not to the page body.
    expect(page.locator("#job-outcome")).to_contain_text("Import finished")
    wait_until(
        lambda: page.evaluate("() => !!document.activeElement.closest('#job-card')"),
        what="focus on the import's outcome",
    )
    row = page.locator("#history tbody tr").first
    # Each count is named in its card (the column's name is shown before it).
    for name in ("Created 2", "Updated 0", "Rejected 1"):
        expect(row.get_by_role("cell", name=name)).to_be_visible()
    show = row.get_by_role("button", name=re.compile("^Show import"))
    undo = row.get_by_role("button", name=re.compile("^Undo import"))
    for button in (show, undo):
        expect(button).to_be_visible()
        box = button.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390, box
    _no_sideways_scroll(page)
    screenshot(page, "phone-import-history-390")

    export = tmp_path / "export.csv"
    export.write_text("Variant SKU,Title,Status\nA-1,One,draft\n,Two,maybe\n")
    page.goto("/import")
    page.get_by_label("Drop a CSV file here").set_input_files(str(export))
    step = page.get_by_role("group", name="Match your columns")
    reason = step.get_by_text("Rejected: SKU is empty.")
    expect(reason).to_be_visible()
    reason.scroll_into_view_if_needed()
    box = reason.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    _no_sideways_scroll(page)
    screenshot(page, "phone-import-preview-390")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_error_in_the_webhook_dialog_is_in_view_with_focus(
    browser: Browser, live_server: LiveServer, width: int
) -> None:
    page = _signed_in(browser, live_server, "alice", Role.admin, width)
    page.set_viewport_size({"width": width, "height": 600})
    page.goto("/webhooks")
    page.get_by_role("button", name="Add endpoint").click()
    dialog = page.get_by_role("dialog", name="Add endpoint")
    dialog.get_by_label("Endpoint URL").fill("http://127.0.0.1:9/hook")  # refused by the server
    dialog.get_by_role("button", name="Save").click()
    error = dialog.locator("#wh-form-error")
    expect(error).to_be_visible()
    expect(error).to_be_focused()
    expect(error).to_be_in_viewport()
    screenshot(page, f"webhook-dialog-error-{width}")
    page.context.close()
