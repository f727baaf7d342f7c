"""The Feeds page in a real Chromium, fetching from a real HTTP server on loopback and
importing through the real import."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from product_importer.auth.roles import Role
from product_importer.db import Database, utcnow
from product_importer.feeds import service as feed_service
from product_importer.feeds.models import FeedRun
from product_importer.feeds.schemas import FeedCreate
from tests.a11y import assert_accessible
from tests.browser import LiveServer, screenshot
from tests.factories import DEFAULT_PASSWORD, make_product, make_user
from tests.feeds.file_server import FileServer
from tests.feeds.servers import SftpServer

pytestmark = pytest.mark.browser

CSV = b"Variant SKU,Title,Notes\nFD-1,Oak chair,Solid oak\nFD-2,Pine table,\n"
# A run goes through the task queue and the import: time enough on a loaded machine.
RUN_TIMEOUT = 60_000
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpServer]:
    root = tmp_path / "sftp"
    (root / "out").mkdir(parents=True)
    (root / "out" / "products.csv").write_bytes(b"sku,name\nSF-1,From SFTP\n")
    server = SftpServer(root)
    server.start()
    yield server
    server.stop()


def sign_in_as(page: Page, live_server: LiveServer, username: str, role: Role) -> None:
    make_user(live_server.database, username, role=role)
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def add_feed(live_server: LiveServer, url: str, **fields: Any) -> int:
    """A feed saved directly, as if an editor had added it."""
    data = FeedCreate.model_validate(
        {"name": "Nightly ERP", "url": url, "schedule": "0 2 * * *"} | fields
    )
    with live_server.database.session() as session:
        feed = feed_service.create(session, live_server.settings, data, "erin")
        return feed.id


def add_run(database: Database, feed_id: int, status: str, **fields: Any) -> None:
    now = utcnow()
    values: dict[str, Any] = {"started_at": now, "finished_at": now} | fields
    with database.session() as session:
        session.add(FeedRun(feed_id=feed_id, status=status, created_at=now, **values))


def products(page: Page) -> dict[str, dict[str, Any]]:
    answer = page.request.get("/api/products?page_size=100&sort=sku")
    assert answer.ok, answer.text()
    return {item["sku"]: item for item in answer.json()["items"]}


def no_sideways_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def history_row(card: Locator, status: str) -> Locator:
    return card.locator("tbody tr").filter(has=card.page.locator(f".fd-status-{status}"))


def test_an_editor_adds_tests_saves_and_runs_a_feed(
    page: Page, live_server: LiveServer, files: FileServer
) -> None:
    url = files.serve("/export/products.csv", CSV)
    sign_in_as(page, live_server, "erin", Role.editor)
    page.goto("/import")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Feeds").click()
    expect(page).to_have_url(re.compile(r"/feeds$"))
    expect(page.get_by_text("No feeds yet.")).to_be_visible()

    # Focus goes to the form and back to the button that opened it.
    add = page.get_by_role("button", name="Add feed")
    add.click()
    form = page.get_by_role("region", name="Add feed")
    expect(form.get_by_label("Feed name")).to_be_focused()
    # The schedule's clock is the browser's until changed.
    browser_zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    expect(form.get_by_label("Time zone")).to_have_value(browser_zone)
    form.get_by_role("button", name="Cancel").click()
    expect(form).to_be_hidden()
    expect(add).to_be_focused()

    page.keyboard.press("Enter")
    form.get_by_label("Feed name").fill("Supplier list")
    form.get_by_label("File address (URL)").fill(url)
    form.get_by_label("When to run (cron)").fill("30 3 * * *")
    form.get_by_label("Time zone").fill("Europe/Berlin")
    form.get_by_role("button", name="Add header").click()
    form.get_by_label("Header 1 name").fill("X-Api-Key")
    form.get_by_label("Header 1 value").fill("key-123")

    form.get_by_role("button", name="Test connection").click()
    expect(form.get_by_text("Connected.")).to_be_visible()
    expect(
        form.get_by_text(re.compile(r"Fetched products\.csv, \d+ bytes, HTTP 200"))
    ).to_be_visible()
    assert files.requests[-1][1].get("x-api-key") == "key-123"
    # The file's own column names: a suggested mapping, and the first rows as they will be read.
    expect(form.get_by_label("SKU")).to_have_value("Variant SKU")
    expect(form.locator("#fd-map-name")).to_have_value("Title")
    table = form.locator("#fd-preview-table tbody tr")
    expect(table).to_have_count(2)
    expect(table.first).to_contain_text("Oak chair")
    # Mapping another column previews again with it.
    form.get_by_label("Description").select_option("Notes")
    expect(table.first).to_contain_text("Solid oak")
    form.get_by_label("Deactivate them").check()
    expect(form.get_by_label(re.compile("^Refuse a run that would remove"))).to_be_enabled()
    screenshot(page, "feeds-form-1280")

    form.get_by_role("button", name="Save feed").click()
    expect(form).to_be_hidden()
    card = page.get_by_role("article", name="Supplier list")
    expect(card.get_by_role("button", name="Edit")).to_be_focused()
    expect(card).to_contain_text("At 03:30, every day (Europe/Berlin)")
    expect(card).to_contain_text(f"127.0.0.1:{files.port}/export/products.csv")
    next_run = card.locator("dd time").first
    expect(next_run).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    expect(card).to_contain_text("Not run yet")
    expect(
        page.get_by_role("status").filter(has_text="Feed “Supplier list” added.")
    ).to_be_visible()

    # What was saved: the mapping from the form; the header's value never comes back.
    [saved] = page.request.get("/api/feeds").json()
    assert saved["mapping"] == {"sku": "Variant SKU", "name": "Title", "description": "Notes"}
    assert saved["credentials"] == ["header:X-Api-Key"]
    assert saved["missing"] == "deactivate"
    assert saved["timezone"] == "Europe/Berlin"

    card.get_by_role("button", name="Run now").click()
    history = card.get_by_role("region", name="Run history of Supplier list")
    expect(history).to_be_visible()
    imported = history_row(card, "imported")
    expect(imported).to_have_count(1, timeout=RUN_TIMEOUT)
    expect(imported).to_contain_text("2 created, 0 updated")
    link = imported.get_by_role("link", name=re.compile("^Import"))
    job_id = page.request.get(f"/api/feeds/{saved['id']}/runs").json()[0]["import_job_id"]
    expect(link).to_have_attribute("href", f"/import?job={job_id}")
    expect(card.locator(".fd-facts")).to_contain_text("Imported")
    expect(page.locator("#announcer")).to_contain_text("Supplier list: Run imported.")
    assert products(page)["FD-1"]["name"] == "Oak chair"
    assert products(page)["FD-1"]["description"] == "Solid oak"
    assert products(page)["FD-2"]["name"] == "Pine table"
    screenshot(page, "feeds-list-1280")
    # The link opens that import on the Import page.
    link.click()
    expect(page.locator("#job-card")).to_be_visible()
    expect(page.locator("#job-card")).to_contain_text("(feed Supplier list)")
    page.go_back()
    card = page.get_by_role("article", name="Supplier list")

    # Edit: the saved header is named, its value is not shown; saving keeps it.
    card.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("region", name="Edit feed: Supplier list")
    expect(edit.get_by_label("Feed name")).to_be_focused()
    expect(edit.get_by_label("Header 1 name")).to_have_value("X-Api-Key")
    expect(edit.get_by_label("Header 1 value")).to_have_value("")
    edit.get_by_label("When to run (cron)").fill("0 6 * * 1-5")
    edit.get_by_role("button", name="Save changes").click()
    expect(edit).to_be_hidden()
    expect(card).to_contain_text("monday through friday", ignore_case=True)
    [saved] = page.request.get("/api/feeds").json()
    assert saved["credentials"] == ["header:X-Api-Key"]
    assert saved["mapping"] == {"sku": "Variant SKU", "name": "Title", "description": "Notes"}


@sqlite_only
def test_errors_are_shown_next_to_the_form_and_a_refused_run_can_be_confirmed(
    page: Page, live_server: LiveServer, files: FileServer
) -> None:
    for n in range(10):
        make_product(live_server.database, f"OLD-{n}", f"Old {n}")
    url = files.serve("/two.csv", b"sku,name\nNEW-1,New one\nNEW-2,New two\n")
    add_feed(live_server, url, name="Taken name")
    sign_in_as(page, live_server, "erin", Role.editor)
    page.goto("/feeds")
    page.get_by_role("button", name="Add feed").click()
    form = page.get_by_role("region", name="Add feed")

    # Checked in the page first: what is missing, next to each field, focus on the first.
    form.get_by_label("When to run (cron)").fill("0 2 * *")
    form.get_by_role("button", name="Save feed").click()
    expect(form.get_by_label("Feed name")).to_be_focused()
    expect(form.locator("#fd-name-error")).to_have_text("Feed name: enter a name.")
    expect(form.locator("#fd-schedule-error")).to_contain_text("give five fields")
    expect(form.get_by_label("When to run (cron)")).to_have_attribute("aria-invalid", "true")

    # Then by the server: a schema failure (FastAPI's list), a service refusal, a taken name.
    form.get_by_label("Feed name").fill("Mirror")
    form.get_by_label("File address (URL)").fill(url)
    form.get_by_label("When to run (cron)").fill("61 2 * * *")
    form.get_by_role("button", name="Save feed").click()
    expect(form.get_by_label("When to run (cron)")).to_be_focused()
    expect(form.locator("#fd-schedule-error")).to_contain_text("Schedule:")
    expect(form.locator("#fd-form-error")).to_contain_text("The feed was not saved:")
    form.get_by_label("When to run (cron)").fill("0 2 * * *")
    form.get_by_label("File address (URL)").fill("ftp://example.com/products.csv")
    form.get_by_role("button", name="Save feed").click()
    expect(form.locator("#fd-url-error")).to_contain_text("https://, http:// or sftp://")
    expect(form.get_by_label("File address (URL)")).to_be_focused()
    form.get_by_label("File address (URL)").fill(url)
    form.get_by_label("Feed name").fill("Taken name")
    form.get_by_role("button", name="Save feed").click()
    expect(form.locator("#fd-name-error")).to_contain_text("exists already")
    screenshot(page, "feeds-form-errors-1280")
    assert_accessible(page, "feeds: form with errors")

    # A failed connection test says why, next to the button.
    form.get_by_label("Feed name").fill("Mirror")
    form.get_by_label("File address (URL)").fill(files.url("/missing.csv"))
    form.get_by_role("button", name="Test connection").click()
    expect(form.locator("#fd-test-result")).to_contain_text("The file could not be read.")
    expect(form.locator("#fd-test-result")).to_contain_text("404")

    # Mirror mode with its guard: a file listing 2 of 12 products would delete 10 (83 %).
    form.get_by_label("File address (URL)").fill(url)
    form.get_by_label("Delete them").check()
    form.get_by_label(re.compile("^Refuse a run that would remove")).fill("20")
    form.get_by_role("button", name="Save feed").click()
    card = page.get_by_role("article", name="Mirror")
    expect(card).to_contain_text("more than 20 % of the catalogue is refused")

    card.get_by_role("button", name="Run now").click()
    refused = history_row(card, "refused")
    expect(refused).to_have_count(1, timeout=RUN_TIMEOUT)
    confirm = refused.get_by_role("button", name="Run with confirmation")
    expect(confirm).to_be_visible()
    screenshot(page, "feeds-refused-1280")
    assert_accessible(page, "feeds: a refused run")
    confirm.click()
    expect(history_row(card, "imported")).to_have_count(1, timeout=RUN_TIMEOUT)
    expect(history_row(card, "imported")).to_contain_text("10 not in the file deleted")
    assert sorted(products(page)) == ["NEW-1", "NEW-2"]

    # Delete, through a confirmation dialog; focus comes back to Add feed.
    card.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete feed?")
    expect(dialog).to_contain_text("This cannot be undone.")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    assert_accessible(page, "feeds: delete confirmation")
    dialog.get_by_role("button", name="Delete").click()
    expect(card).to_have_count(0)
    expect(page.get_by_role("button", name="Add feed")).to_be_focused()
    assert [feed["name"] for feed in page.request.get("/api/feeds").json()] == ["Taken name"]


@sqlite_only
def test_a_viewer_sees_the_feeds_and_their_runs_but_no_controls(
    page: Page, live_server: LiveServer, files: FileServer
) -> None:
    url = files.serve("/export/products.csv", CSV)
    feed_id = add_feed(live_server, url, failure_alert_after=2)
    add_run(live_server.database, feed_id, "imported", filename="products.csv", bytes=60)
    for _ in range(2):
        add_run(
            live_server.database,
            feed_id,
            "failed",
            http_status=503,
            reason="The server answered 503 Service Unavailable.",
        )
    with live_server.database.session() as session:
        feed_service.get(session, feed_id).consecutive_failures = 2

    sign_in_as(page, live_server, "vera", Role.viewer)
    page.goto("/feeds")
    card = page.get_by_role("article", name="Nightly ERP")
    expect(card).to_contain_text("At 02:00, every day (UTC)")
    expect(card.locator(".fd-alerting")).to_contain_text("Failing: the last 2 runs failed.")
    expect(card.locator(".fd-alerting")).to_contain_text("503 Service Unavailable")
    expect(page.get_by_role("note")).to_contain_text("needs the editor role")
    for name in ("Add feed", "Edit", "Run now", "Dry run", "Delete"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    assert page.locator("#fd-form-card").count() == 0

    card.get_by_role("button", name="History").click()
    history = card.get_by_role("region", name="Run history of Nightly ERP")
    expect(history.locator("tbody tr")).to_have_count(3)
    expect(history_row(card, "failed").first).to_contain_text("HTTP 503")
    expect(card.get_by_role("button", name="History")).to_have_attribute("aria-expanded", "true")
    expect(card.get_by_role("button", name="History")).to_be_focused()
    assert_accessible(page, "feeds: a viewer, a failing feed and its history")

    # A viewer cannot run it through the API either.
    answer = page.request.post(f"/api/feeds/{feed_id}/run")
    assert answer.status == 403


@sqlite_only
def test_the_page_fits_a_phone(page: Page, live_server: LiveServer, files: FileServer) -> None:
    url = files.serve(
        "/exports/a-rather-long-folder-name/products-of-the-supplier.csv",
        b"sku,name,description,active\nPH-1,Phone chair,Made for a narrow screen,yes\n",
    )
    feed_id = add_feed(live_server, url, name="Supplier with a long name for a phone")
    add_run(
        live_server.database,
        feed_id,
        "refused",
        filename="products-of-the-supplier.csv",
        bytes=2048,
        http_status=200,
        reason="The run would delete 83 % of the catalogue (10 products), more than 20 %.",
    )
    sign_in_as(page, live_server, "erin", Role.editor)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/feeds")
    card = page.get_by_role("article", name="Supplier with a long name for a phone")
    card.get_by_role("button", name="History").click()
    expect(card.get_by_role("button", name="Run with confirmation")).to_be_visible()
    assert no_sideways_scroll(page), "the feed list scrolls sideways at 390 px"
    screenshot(page, "feeds-list-390")
    page.set_viewport_size({"width": 1280, "height": 800})
    screenshot(page, "feeds-history-1280")
    page.set_viewport_size({"width": 390, "height": 844})

    card.get_by_role("button", name="Edit").click()
    form = page.get_by_role("region", name=re.compile("^Edit feed"))
    expect(form.get_by_label("Feed name")).to_be_focused()
    form.get_by_role("button", name="Add header").click()
    form.get_by_role("button", name="Test connection").click()
    expect(form.locator("#fd-preview-table tbody tr")).to_have_count(1)
    expect(form.locator("#fd-preview-table tbody tr")).to_contain_text("Phone chair")
    assert no_sideways_scroll(page), "the feed form scrolls sideways at 390 px"
    screenshot(page, "feeds-form-390")
    assert_accessible(page, "feeds: edit form with a preview")


@sqlite_only
def test_an_sftp_server_key_is_shown_trusted_and_kept(
    page: Page, live_server: LiveServer, sftp: SftpServer
) -> None:
    sign_in_as(page, live_server, "erin", Role.editor)
    page.goto("/feeds")
    page.get_by_role("button", name="Add feed").click()
    form = page.get_by_role("region", name="Add feed")
    form.get_by_label("Feed name").fill("SFTP supplier")
    form.get_by_label("File address (URL)").fill(sftp.url("/out/products.csv"))
    form.get_by_label("Password", exact=True).fill(sftp.password)
    form.get_by_role("button", name="Test connection").click()

    # An unknown server: its fingerprint, to check and trust; nothing was sent to it.
    trust = form.get_by_role("group", name="The SFTP server's key is not trusted yet.")
    expect(trust).to_contain_text(sftp.fingerprint)
    assert sftp.auth_attempts == []
    screenshot(page, "feeds-sftp-host-key-1280")
    assert_accessible(page, "feeds: an SFTP server key to trust")
    trust.get_by_role("button", name="Trust this key").click()
    expect(form.get_by_label("SFTP server key fingerprint")).to_have_value(sftp.fingerprint)
    expect(form.get_by_text("Connected.")).to_be_visible()
    expect(form.get_by_text("The server's key matches the trusted fingerprint")).to_be_visible()
    expect(form.locator("#fd-preview-table tbody tr")).to_contain_text("From SFTP")
    form.get_by_role("button", name="Save feed").click()

    card = page.get_by_role("article", name="SFTP supplier")
    expect(card.locator(".fd-facts")).to_contain_text(f"127.0.0.1:{sftp.port}/out/products.csv")
    expect(card.locator(".fd-facts")).to_contain_text("SFTP")
    expect(card.locator(".fd-facts")).not_to_contain_text("feeds@")
    [saved] = page.request.get("/api/feeds").json()
    assert saved["host_key"] == sftp.fingerprint
    assert saved["credentials"] == ["password"]

    # Editing: the saved password is kept unless replaced, and the test uses it.
    card.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("region", name="Edit feed: SFTP supplier")
    expect(edit.get_by_text("A password is saved: leave this empty to keep it.")).to_be_visible()
    expect(edit.get_by_label("Password", exact=True)).to_have_value("")
    edit.get_by_role("button", name="Test connection").click()
    expect(edit.get_by_text("Connected.")).to_be_visible()
    edit.get_by_role("button", name="Save changes").click()
    expect(edit).to_be_hidden()

    card.get_by_role("button", name="Run now").click()
    expect(history_row(card, "imported")).to_have_count(1, timeout=RUN_TIMEOUT)
    assert products(page)["SF-1"]["name"] == "From SFTP"
