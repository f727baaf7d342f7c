"""axe-core over every page and every dialog or step state, at 1280 and 390 px.

Each state is one line in STATES: a name, the page to open and, when the page alone does not show
it, a function that brings the page there (filling forms, opening dialogs, making data). The sweep
visits them in order with one signed-in browser, runs axe-core (WCAG 2.0/2.1 A and AA plus best
practices) at both widths, and fails at the end listing every offending element of every state.

A11Y_SCREENSHOTS=1 keeps a screenshot of every state at both widths in test-artifacts/;
A11Y_ONLY=REGEX visits only the states whose name matches (mind the states they build on).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from product_importer.accounts import service as accounts_service
from product_importer.auth.roles import Role
from product_importer.catalog import custom_fields
from product_importer.catalog import service as catalog_service
from product_importer.catalog.locking import CatalogueLock
from product_importer.catalog.models import Product
from product_importer.catalog.schemas import ProductUpdate
from product_importer.db import Database, utcnow
from product_importer.feeds import service as feed_service
from product_importer.feeds.models import FeedRun
from product_importer.feeds.schemas import FeedCreate
from product_importer.imports.models import ImportJob
from tests.a11y import WIDTHS, assert_accessible, check_accessible
from tests.browser import LiveServer, screenshot, sign_in_page, wait_until
from tests.factories import DEFAULT_PASSWORD, make_product, make_user
from tests.webhooks import conftest as webhook_fixtures
from tests.webhooks.receiver import Receiver, Reply

pytestmark = pytest.mark.browser

Reach = Callable[[Page, "Sweep"], None]


@dataclass(frozen=True)
class State:
    name: str
    path: str
    reach: Reach | None = None
    signed_in: bool = True
    # Run after the state is checked, to leave nothing behind for the next one.
    after: Callable[[Sweep], None] | None = None


@dataclass
class Sweep:
    server: LiveServer
    receiver: Receiver
    files: Path
    lock: CatalogueLock | None = None

    @property
    def database(self) -> Database:
        return self.server.database


# --- helpers that make data or bring a page to a state ---------------------------------------


def csv_file(sweep: Sweep, name: str, text: str) -> str:
    path = sweep.files / name
    path.write_text(text)
    return str(path)


def upload(page: Page, path: str) -> None:
    page.get_by_label("Drop a CSV file here").set_input_files(path)
    page.get_by_role("button", name="Import", exact=True).click()


def import_file_chosen(page: Page, sweep: Sweep) -> None:
    page.get_by_label("Drop a CSV file here").set_input_files(
        csv_file(sweep, "chosen.csv", "sku,name\nA-1,One\n")
    )
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_enabled()


def import_mapping_step(page: Page, sweep: Sweep) -> None:
    page.get_by_label("Drop a CSV file here").set_input_files(
        csv_file(sweep, "export.csv", "Variant SKU,Title,Status\nA-1,One,draft\n,Two,maybe\n")
    )
    step = page.get_by_role("group", name="Match your columns")
    expect(step.locator("#preview-table tbody tr")).to_have_count(2)
    expect(step).to_contain_text("Rejected: SKU is empty.")


def import_mapping_error(page: Page, sweep: Sweep) -> None:
    import_mapping_step(page, sweep)
    page.get_by_role("group", name="Match your columns").get_by_label("SKU").select_option("")
    expect(page.locator("#mapping-error").get_by_role("alert")).to_be_visible()


def import_refused(page: Page, sweep: Sweep) -> None:
    # Refused when chosen, next to the drop zone, before any upload.
    image = sweep.files / "photo.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    page.get_by_label("Drop a CSV file here").set_input_files(str(image))
    expect(page.locator("#file-refusal")).to_contain_text("PNG image")


def import_every_row_rejected(page: Page, sweep: Sweep) -> None:
    page.get_by_label("Drop a CSV file here").set_input_files(
        csv_file(sweep, "no-names.csv", "sku,name\nA-1,\nA-2,\n")
    )
    expect(page.locator("#import-blocked")).to_contain_text("Import is off")


def import_undone_and_dry_run(page: Page, sweep: Sweep) -> None:
    page.get_by_label("Dry run: check and count, change nothing").check()
    upload(page, csv_file(sweep, "dry.csv", "sku,name\nD-1,Dry\n"))
    expect(page.locator("#job-status")).to_have_text("Dry run")
    page.get_by_label("Dry run: check and count, change nothing").uncheck()
    row = page.locator("#history tbody tr", has_text="chairs.csv").first
    row.get_by_role("button", name=re.compile("^Undo")).click()
    dialog = page.get_by_role("dialog", name=re.compile("^Undo import"))
    dialog.get_by_role("button", name="Undo", exact=True).click()
    expect(dialog).to_contain_text("Undone:", timeout=30_000)
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator("#history tbody tr", has_text="chairs.csv").first).to_contain_text("undone")


def changes_listed(page: Page, _sweep: Sweep) -> None:
    expect(page.locator(".change").first).to_be_visible()
    expect(page.locator(".change-state-undone").first).to_contain_text("Undone by")


def changes_undo_confirm(page: Page, _sweep: Sweep) -> None:
    page.locator(".change").get_by_role("button", name=re.compile("^Undo")).first.click()
    expect(page.get_by_role("dialog", name=re.compile("^Undo"))).to_contain_text("This")


def changes_one_shown(page: Page, _sweep: Sweep) -> None:
    page.locator(".change-state-undone").first.get_by_role("link").click()
    expect(page.locator(".change.is-focus")).to_be_visible()
    expect(page.get_by_role("link", name="Show all changes")).to_be_visible()


def products_undo_toast(page: Page, sweep: Sweep) -> None:
    make_product(sweep.database, "TOAST-1", "Toast", "")
    page.goto("/products?sku=TOAST-1")
    page.get_by_role("switch", name="Active: TOAST-1").click()
    expect(page.locator(".toast-undo")).to_contain_text("TOAST-1 is now inactive.")


def import_queued(page: Page, sweep: Sweep) -> None:
    sweep.lock = CatalogueLock(sweep.database)
    assert sweep.lock.try_acquire()
    upload(page, csv_file(sweep, "queued.csv", "sku,name\nQ-1,Queued\n"))
    expect(page.locator("#job-status")).to_have_text("Queued", timeout=15_000)


def release_lock(sweep: Sweep) -> None:
    if sweep.lock is not None:
        sweep.lock.release()
        sweep.lock = None


def import_cancelled(page: Page, _sweep: Sweep) -> None:
    # The page follows the queued import of the state before; cancel it.
    page.get_by_role("button", name="Cancel import").click()
    expect(page.locator("#job-outcome")).to_contain_text("Import cancelled")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()


def import_running(page: Page, sweep: Sweep) -> None:
    # A real import is over too soon to look at: record one halfway through, and hold the
    # catalogue lock so that the recovery sweep leaves it alone.
    release_lock(sweep)
    sweep.lock = CatalogueLock(sweep.database)
    assert sweep.lock.try_acquire()
    now = utcnow()
    with sweep.database.session() as session:
        session.add(
            ImportJob(
                filename="catalogue.csv",
                status="running",
                phase="Reading and checking rows",
                total_bytes=50_000_000,
                bytes_read=21_000_000,
                percent=42.0,
                rows_processed=210_000,
                rows_rejected=3,
                warnings=["Column 'colour' is not used."],
                created_at=now,
                started_at=now,
                heartbeat_at=now,
                attempts=1,
            )
        )
    page.reload()
    expect(page.locator("#job-status")).to_have_text("Running")


def end_running_import(sweep: Sweep) -> None:
    with sweep.database.session() as session:
        session.execute(
            update(ImportJob)
            .where(ImportJob.status == "running")
            .values(status="cancelled", phase="Cancelled", finished_at=utcnow())
        )
    release_lock(sweep)


def import_completed(page: Page, sweep: Sweep) -> None:
    lines = ["sku,name,description"] + [f"C-{i},Chair {i},Oak" for i in range(50)] + [",No sku,x"]
    upload(page, csv_file(sweep, "chairs.csv", "\n".join(lines) + "\n"))
    expect(page.locator("#job-outcome")).to_contain_text("Import finished")
    expect(page.get_by_role("link", name="Download rejected rows")).to_be_visible()


def import_failed(page: Page, sweep: Sweep) -> None:
    upload(page, csv_file(sweep, "header-only.csv", "sku,name\n"))
    expect(page.locator("#job-card").get_by_role("alert")).to_contain_text("Import failed")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()


def toasts(page: Page, _sweep: Sweep) -> None:
    page.evaluate("PI.toast('Saved CHAIR-1.', 'success', 0)")
    page.evaluate("PI.toast('Something went wrong.', 'error', 0)")
    page.evaluate("PI.toast('Heads up.', 'info', 0)")
    expect(page.get_by_text("Heads up.")).to_be_visible()


def products_listed(page: Page, sweep: Sweep) -> None:
    for i in range(60):
        make_product(sweep.database, f"SKU-{i:03}", f"Product {i}", f"Description of product {i}")
    page.reload()
    expect(page.locator("#products-body tr")).to_have_count(50)


def products_selected(page: Page, _sweep: Sweep) -> None:
    expect(page.locator("#products-body tr")).to_have_count(50)
    page.get_by_label("Select all products on this page").check()
    expect(page.locator("#bulk-count")).to_have_text("50 products selected.")


def bulk_confirm(page: Page, sweep: Sweep) -> None:
    products_selected(page, sweep)
    page.get_by_role("button", name="Deactivate", exact=True).click()
    expect(page.get_by_role("dialog", name="Deactivate 50 products")).to_be_visible()


def product_history(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Edit SKU-000").click()
    page.get_by_role("tab", name="History").click()
    expect(page.locator("#history-status")).to_contain_text("recorded")


def import_undo_confirm(page: Page, _sweep: Sweep) -> None:
    page.locator("#history tbody tr").first.get_by_role("button", name=re.compile("^Undo")).click()
    expect(page.get_by_role("dialog", name=re.compile("^Undo import"))).to_contain_text("delete")


def products_no_match(page: Page, _sweep: Sweep) -> None:
    page.get_by_label("Search").fill("nothing matches this")
    expect(page.get_by_text("No products match these filters.")).to_be_visible()


def new_product(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="New product").click()
    expect(page.get_by_role("dialog", name="New product")).to_be_visible()


def new_product_errors(page: Page, sweep: Sweep) -> None:
    new_product(page, sweep)
    dialog = page.get_by_role("dialog", name="New product")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("Enter a SKU.")).to_be_visible()


def new_product_conflict(page: Page, sweep: Sweep) -> None:
    new_product(page, sweep)
    dialog = page.get_by_role("dialog", name="New product")
    dialog.get_by_label("SKU").fill("sku-001")
    dialog.get_by_label("Name").fill("Twin")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator("#p-sku-error")).to_contain_text("already")


def edit_product(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Edit SKU-000").click()
    expect(page.get_by_role("dialog", name="Edit SKU-000")).to_be_visible()


def delete_product(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Delete SKU-000").click()
    expect(page.get_by_role("dialog", name="Delete product")).to_be_visible()


def delete_all_confirm(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Delete all products").click()
    dialog = page.get_by_role("dialog", name="Delete all products")
    expect(dialog.get_by_role("button", name=re.compile(r"Delete all \d+"))).to_be_enabled()


def delete_all_done(page: Page, sweep: Sweep) -> None:
    delete_all_confirm(page, sweep)
    dialog = page.get_by_role("dialog", name="Delete all products")
    dialog.get_by_role("button", name=re.compile(r"Delete all \d+")).click()
    expect(dialog.get_by_text(re.compile(r"Deleted all \d+ products"))).to_be_visible()


def fields_defined(page: Page, sweep: Sweep) -> None:
    """One field of each type, and values on the first product."""
    with sweep.database.session() as session:
        for key, label, kind, choices in [
            ("vendor", "Vendor", "text", None),
            ("stock", "Stock", "integer", None),
            ("price", "Price", "decimal", None),
            ("featured", "Featured", "boolean", None),
            ("launch", "Launch date", "date", None),
            ("site", "Web page", "url", None),
            ("tags", "Tags", "list", None),
            ("colour", "Colour", "choice", ["Red", "Green", "Blue"]),
        ]:
            custom_fields.create(session, key, label, kind, choices)
        first = session.scalar(select(Product.id).where(Product.sku == "SKU-000"))
        assert first is not None
        values = {"vendor": "Acme", "stock": 4, "price": "19.99", "tags": ["oak", "sale"]}
        catalog_service.update(session, first, ProductUpdate(fields=values))
    page.reload()
    expect(page.locator("#fields-body tr")).to_have_count(8)


def field_form_errors(page: Page, _sweep: Sweep) -> None:
    form = page.get_by_role("region", name="Add a field")
    form.get_by_label("Type", exact=True).select_option("choice")
    form.get_by_role("button", name="Add field").click()
    expect(page.get_by_text("Enter at least one choice.")).to_be_visible()


def field_type_refused(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Edit field vendor").click()
    dialog = page.get_by_role("dialog", name="Edit field vendor")
    dialog.get_by_label("Type").select_option("integer")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("convert")


def field_remove_confirm(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Remove field tags").click()
    expect(page.get_by_role("dialog", name="Remove field tags")).to_be_visible()


def products_field_columns(page: Page, _sweep: Sweep) -> None:
    page.locator("#columns-chooser summary").click()
    chooser = page.get_by_role("group", name="Show fields as columns")
    for label in ("Vendor", "Stock", "Price", "Tags"):
        chooser.get_by_label(label).check()
    filters = page.get_by_role("search", name="Filter products")
    filters.get_by_label("Field", exact=True).select_option(label="Stock")
    filters.get_by_label("Condition").select_option(label="is more than")
    filters.get_by_label("Value", exact=True).fill("3")
    expect(page.locator("#products-body tr")).to_have_count(1)
    expect(page.locator("#products-body")).to_contain_text("oak, sale")


def edit_product_fields(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Edit SKU-000").click()
    dialog = page.get_by_role("dialog", name="Edit SKU-000")
    expect(dialog.get_by_role("spinbutton", name="Stock")).to_have_value("4")
    dialog.get_by_role("spinbutton", name="Stock").fill("4.5")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("Enter a whole number")).to_be_visible()


def bulk_set_field(page: Page, sweep: Sweep) -> None:
    products_selected(page, sweep)
    page.get_by_role("button", name="Set a field").click()
    dialog = page.get_by_role("dialog", name="Set a field on 50 products")
    dialog.get_by_label("Field").select_option(label="Launch date")
    expect(dialog.get_by_role("button", name="Set Launch date on 50 products")).to_be_visible()


def import_new_fields(page: Page, sweep: Sweep) -> None:
    page.get_by_label("Drop a CSV file here").set_input_files(
        csv_file(
            sweep,
            "shop.csv",
            "Variant SKU,Title,Vendor,Variant Price,Barcode\nA-1,One,Acme,19.99,0001\n",
        )
    )
    step = page.get_by_role("group", name="Match your columns")
    expect(step.locator("#custom-mapping-grid select")).to_have_count(8)
    proposal = step.get_by_role("group", name="Variant Price")
    proposal.get_by_label("Keep as a new field").check()
    expect(proposal.get_by_label("Key")).to_be_enabled()


def add_endpoint(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("dialog", name="Add endpoint")).to_be_visible()


def add_endpoint_errors(page: Page, sweep: Sweep) -> None:
    add_endpoint(page, sweep)
    dialog = page.get_by_role("dialog", name="Add endpoint")
    dialog.get_by_label("Endpoint URL").fill("ftp://example.com/hook")
    for checkbox in dialog.get_by_role("checkbox").all():
        if checkbox.get_attribute("name") == "events":
            checkbox.uncheck()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("The URL must start with http:// or https://.")).to_be_visible()
    dialog.get_by_label("Endpoint URL").fill(sweep.receiver.url)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("Choose at least one event.")).to_be_visible()


def signing_secret(page: Page, sweep: Sweep) -> None:
    add_endpoint(page, sweep)
    dialog = page.get_by_role("dialog", name="Add endpoint")
    dialog.get_by_label("Endpoint URL").fill(sweep.receiver.url)
    dialog.get_by_label("Description").fill("Storefront cache")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("dialog", name="Signing secret")).to_be_visible()


def endpoints_tested(page: Page, sweep: Sweep) -> None:
    """One healthy endpoint with its delivery log open, one failing, one disabled."""
    card = page.get_by_role("article", name=sweep.receiver.url, exact=True)
    sweep.receiver.script(Reply(status=200, body=b'{"pong": true}'))
    card.get_by_role("button", name="Send test").click()
    expect(card.get_by_text("Healthy")).to_be_visible()
    card.get_by_role("button", name="Deliveries").click()
    log = card.get_by_role("region", name="Delivery log")
    log.get_by_text("Attempts (1)").click()
    expect(log.get_by_text(re.compile(r"HTTP 200 · \d+ ms"))).to_be_visible()

    failing = f"{sweep.receiver.url}/failing"
    add_endpoint(page, sweep)
    dialog = page.get_by_role("dialog", name="Add endpoint")
    dialog.get_by_label("Endpoint URL").fill(failing)
    dialog.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="I have saved it").click()
    failing_card = page.get_by_role("article", name=failing, exact=True)
    sweep.receiver.script(Reply(status=500, body=b"upstream exploded"))
    failing_card.get_by_role("button", name="Send test").click()
    expect(failing_card.get_by_text("Last test failed")).to_be_visible()
    failing_card.get_by_role("switch", name="Enabled").uncheck()
    expect(failing_card.get_by_text("Disabled by a user.")).to_be_visible()


def rotated_secret(page: Page, sweep: Sweep) -> None:
    card = page.get_by_role("article", name=sweep.receiver.url, exact=True)
    card.get_by_role("button", name="Rotate secret").click()
    dialog = page.get_by_role("dialog", name="Signing secret")
    expect(dialog.get_by_text("The previous secret keeps signing for 24 hours")).to_be_visible()


def edit_endpoint(page: Page, sweep: Sweep) -> None:
    page.get_by_role("article", name=sweep.receiver.url, exact=True).get_by_role(
        "button", name="Edit"
    ).click()
    expect(page.get_by_role("dialog", name="Edit endpoint")).to_be_visible()


def delete_endpoint(page: Page, sweep: Sweep) -> None:
    card = page.get_by_role("article", name=sweep.receiver.url, exact=True)
    card.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog", name="Delete endpoint?")).to_be_visible()


def feed_form_errors(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("button", name="Add feed").click()
    form = page.get_by_role("region", name="Add feed")
    form.get_by_label("When to run (cron)").fill("")
    form.get_by_role("button", name="Save feed").click()
    expect(form.locator("#fd-name-error")).to_have_text("Feed name: enter a name.")


def feed_with_history(page: Page, sweep: Sweep) -> None:
    """A failing feed (no network is needed: its runs are recorded directly), history open."""
    data = FeedCreate(
        name="Supplier ERP",
        url="https://erp.example.com/export/products.csv",
        schedule="0 2 * * *",
        missing="delete",
        failure_alert_after=2,
    )
    now = utcnow()
    with sweep.database.session() as session:
        feed = feed_service.create(session, sweep.server.settings, data, "alice")
        session.flush()
        runs = [
            ("imported", None, 200),
            ("failed", "the server answered 503 Service Unavailable", 503),
            ("failed", "the server answered 503 Service Unavailable", 503),
            ("refused", "Refused: the file leaves out 10 of 12 products (83.3 %).", 200),
        ]
        for status, reason, http_status in runs:
            session.add(
                FeedRun(
                    feed_id=feed.id,
                    status=status,
                    reason=reason,
                    http_status=http_status,
                    filename="products.csv",
                    bytes=48_213,
                    created_at=now,
                    started_at=now,
                    finished_at=now,
                )
            )
        feed.consecutive_failures = 2
    page.reload()
    card = page.get_by_role("article", name="Supplier ERP")
    card.get_by_role("button", name="History").click()
    expect(card.locator("tbody tr")).to_have_count(4)
    expect(card.get_by_role("button", name="Run with confirmation")).to_be_visible()


def feed_delete_confirm(page: Page, _sweep: Sweep) -> None:
    page.get_by_role("article", name="Supplier ERP").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog", name="Delete feed?")).to_be_visible()


def wrong_password(page: Page, _sweep: Sweep) -> None:
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")


def user_created(page: Page, _sweep: Sweep) -> None:
    page.fill("#u-name", "viewer-vera")
    page.select_option("#u-role", "viewer")
    page.click("#u-create")
    page.wait_for_selector("#once:not([hidden])")


def user_form_error(page: Page, _sweep: Sweep) -> None:
    page.click("#u-create")
    page.wait_for_selector("#user-error:not([hidden])")


def token_created(page: Page, _sweep: Sweep) -> None:
    page.fill("#t-name", "nightly sync")
    page.click("#t-create")
    page.wait_for_selector("#once:not([hidden])")


def sign_in_as(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def viewer_product_history(page: Page, sweep: Sweep) -> None:
    """The anonymous browser signs in as a viewer (it stays so for the states after)."""
    make_user(sweep.database, "viewer-val", role=Role.viewer)
    sign_in_as(page, "viewer-val", DEFAULT_PASSWORD)
    page.goto("/products")
    page.get_by_role("button", name="Product 1", exact=True).click()
    dialog = page.get_by_role("dialog", name="SKU-001")
    dialog.get_by_role("tab", name="History").click()
    expect(dialog.locator("#history-status")).to_be_visible()


def viewer_not_allowed(page: Page, _sweep: Sweep) -> None:
    expect(page.get_by_text("This needs the admin role")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def one_time_password(page: Page, sweep: Sweep) -> None:
    """The anonymous browser signs in with a one-time password: the account page asks for one."""
    with sweep.database.session() as session:
        _user, password = accounts_service.create_user(session, "new-nina", Role.editor)
    page.get_by_role("button", name="Sign out").click()
    sign_in_as(page, "new-nina", password)
    expect(page.get_by_text("Your password is a one-time password from an admin")).to_be_visible()


def audit_listed(page: Page, _sweep: Sweep) -> None:
    page.wait_for_selector("#audit-filters")
    page.locator("tbody tr").first.wait_for()


def system_loaded(page: Page, _sweep: Sweep) -> None:
    expect(page.locator("#sys-facts")).to_contain_text("Embedded")


# Every page and every state of it. Add one line per new page, dialog or step; the sweep visits
# them in this order (some states build on the data of earlier ones).
STATES = [
    State("sign-in", "/login", signed_in=False),
    State("sign-in: wrong password", "/login", wrong_password, signed_in=False),
    State("products: empty catalogue", "/products"),
    State("products: list", "/products", products_listed),
    State("products: page selected, bulk bar", "/products", products_selected),
    State("products: bulk deactivate confirmation", "/products", bulk_confirm),
    State("products: edit dialog, history tab", "/products", product_history),
    State("products: no match", "/products", products_no_match),
    State("products: new product dialog", "/products", new_product),
    State("products: new product, missing fields", "/products", new_product_errors),
    State("products: new product, SKU taken", "/products", new_product_conflict),
    State("products: edit dialog", "/products", edit_product),
    State(
        "products: a viewer reads a product's history",
        "/login",
        viewer_product_history,
        signed_in=False,
    ),
    State("not allowed: a viewer on an admin page", "/users", viewer_not_allowed, signed_in=False),
    State(
        "account: a one-time password to replace", "/products", one_time_password, signed_in=False
    ),
    State("fields: list and add form", "/fields", fields_defined),
    State("fields: add form, choices missing", "/fields", field_form_errors),
    State("fields: edit dialog, type change refused", "/fields", field_type_refused),
    State("fields: remove confirmation", "/fields", field_remove_confirm),
    State("products: field columns and a field filter", "/products", products_field_columns),
    State("products: edit dialog, a custom field wrong", "/products", edit_product_fields),
    State("products: bulk set a field", "/products", bulk_set_field),
    State("products: delete dialog", "/products", delete_product),
    State("products: delete-all confirmation", "/products", delete_all_confirm),
    State("products: delete-all finished", "/products", delete_all_done),
    State("import: idle, no history", "/import"),
    State("import: file chosen", "/import", import_file_chosen),
    State("import: mapping step with a preview", "/import", import_mapping_step),
    State("import: mapping that does not fit", "/import", import_mapping_error),
    State("import: custom fields and proposed new fields", "/import", import_new_fields),
    State("import: upload refused", "/import", import_refused),
    State("import: queued behind another", "/import", import_queued),
    State("import: cancelled", "/import", import_cancelled),
    State("import: running", "/import", import_running, after=end_running_import),
    State("import: completed, with rejected rows", "/import", import_completed),
    State("import: undo confirmation", "/import", import_undo_confirm),
    State("import: failed", "/import", import_failed),
    State("import: every row of the preview rejected", "/import", import_every_row_rejected),
    State("import: a dry run and an undone import", "/import", import_undone_and_dry_run),
    State("feeds: no feeds", "/feeds"),
    State("feeds: add form, missing fields", "/feeds", feed_form_errors),
    State("feeds: a failing feed and its run history", "/feeds", feed_with_history),
    State("feeds: delete confirmation", "/feeds", feed_delete_confirm),
    State("changes: list with an undone change", "/changes", changes_listed),
    State("changes: undo confirmation", "/changes", changes_undo_confirm),
    State("changes: one change shown", "/changes", changes_one_shown),
    State("products: toast offering Undo", "/products", products_undo_toast),
    State("import: toasts", "/import", toasts),
    State("webhooks: no endpoints", "/webhooks"),
    State("webhooks: add dialog", "/webhooks", add_endpoint),
    State("webhooks: add dialog, invalid", "/webhooks", add_endpoint_errors),
    State("webhooks: signing secret dialog", "/webhooks", signing_secret),
    State("webhooks: endpoints, tested, log open", "/webhooks", endpoints_tested),
    State("webhooks: secret rotated", "/webhooks", rotated_secret),
    State("webhooks: edit dialog", "/webhooks", edit_endpoint),
    State("webhooks: delete confirmation", "/webhooks", delete_endpoint),
    State("system: embedded mode", "/system", system_loaded),
    State("users: list", "/users"),
    State("users: add, name missing", "/users", user_form_error),
    State("users: one-time password shown", "/users", user_created),
    State("tokens: list", "/tokens"),
    State("tokens: new token shown", "/tokens", token_created),
    State("account: own password and sessions", "/account"),
    State("audit: log listed", "/audit", audit_listed),
    State("audit: filtered and paged from the URL", "/audit?action=auth&page=1", audit_listed),
]


# The webhook tests' fixtures: targets on loopback allowed, as the sweep sends test events to a
# real receiver.
settings = webhook_fixtures.settings
receiver = webhook_fixtures.receiver


# The pages look the same on both databases: the sweep runs on SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_and_state_passes_axe(
    browser: Browser,
    page: Page,
    live_server: LiveServer,
    receiver: Receiver,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    sweep = Sweep(server=live_server, receiver=receiver, files=tmp_path)
    anonymous = browser.new_context(base_url=live_server.url)
    anonymous.set_default_timeout(15_000)
    anon_page = anonymous.new_page()
    sign_in_page(page, live_server)
    shots = os.environ.get("A11Y_SCREENSHOTS") == "1"
    failures: list[str] = []
    try:
        only = re.compile(os.environ.get("A11Y_ONLY", ""))
        for state in STATES:
            if not only.search(state.name):
                continue
            current = page if state.signed_in else anon_page
            current.set_viewport_size({"width": WIDTHS[0], "height": 800})
            current.goto(state.path)
            try:
                if state.reach is not None:
                    try:
                        state.reach(current, sweep)
                    except Exception:
                        screenshot(current, "a11y-sweep-stuck")
                        print(f"The sweep could not reach {state.name!r}.", *failures, sep="\n\n")
                        raise
                failures += check_accessible(current, state.name)
                if shots:
                    slug = re.sub(r"[^a-z0-9]+", "-", state.name.lower()).strip("-")
                    for width in WIDTHS:
                        current.set_viewport_size({"width": width, "height": 800})
                        screenshot(current, f"a11y-{slug}-{width}")
            finally:
                if state.after is not None:
                    state.after(sweep)
    finally:
        release_lock(sweep)
        anonymous.close()
    record_property("a11y_states", len(STATES))
    assert not failures, "\n\n".join(failures)


BROKEN_PAGE = """<!doctype html>
<html lang="en"><head><title>Broken</title></head>
<body>
  <p>Outside every landmark.</p>
  <main>
    <h1>Broken</h1>
    <div id="toasts" aria-label="Notifications"></div>
    <p style="color: #aaaaaa; background: #ffffff">Faint text</p>
  </main>
</body></html>"""


def test_the_check_fails_naming_each_offending_element(browser: Browser) -> None:
    """The checker itself: a page with the three faults of the issue fails, at both widths."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.set_content(BROKEN_PAGE)
        failures = check_accessible(page, "broken page", record=False)
        assert [failure.split(":")[0] for failure in failures] == [
            "broken page at 1280 px",
            "broken page at 390 px",
        ]
        for failure in failures:
            assert "- aria-prohibited-attr (serious)" in failure
            assert "- color-contrast (serious)" in failure
            assert "- region (moderate)" in failure
            assert "at #toasts" in failure
            assert "<p>Outside every landmark.</p>" in failure
            assert "Faint text" in failure
        assert page.viewport_size == {"width": 1280, "height": 800}

        page.set_content(
            BROKEN_PAGE.replace('aria-label="Notifications"', 'role="status"')
            .replace("#aaaaaa", "#595959")
            .replace("<p>Outside every landmark.</p>", "")
        )
        assert check_accessible(page, "mended page", record=False) == []
        page.set_content(BROKEN_PAGE)
        with pytest.raises(pytest.fail.Exception, match="aria-prohibited-attr"):
            assert_accessible(page, "broken page", widths=(390,), record=False)
    finally:
        context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_table_wider_than_the_screen_takes_focus_to_scroll(
    page: Page, live_server: LiveServer
) -> None:
    # The product list turns into cards on a phone; the audit log stays a table, and an entry
    # on a long unbroken name makes it wider than the screen.
    from product_importer.audit import service as audit_service

    with live_server.database.session() as session:
        for i in range(3):
            audit_service.record(
                session,
                None,
                "product.update",
                target=f"product:{'W' * 20}-{i}",
                actor_name="robot",
            )
    sign_in_page(page, live_server)
    page.goto("/audit")
    wrap = page.locator(".table-wrap")
    expect(page.locator("#audit-body tr")).to_have_count(4)
    expect(wrap).not_to_have_attribute("tabindex", "0")  # fits: no empty tab stop
    page.set_viewport_size({"width": 390, "height": 844})
    region = page.get_by_role("region", name="Audit log table")
    expect(region).to_have_attribute("tabindex", "0")
    region.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # scrolls the focused box sideways
    wait_until(lambda: wrap.evaluate("(box) => box.scrollLeft") > 0, what="scrolled sideways")
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(wrap).not_to_have_attribute("role", "region")
