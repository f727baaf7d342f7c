"""The Import page in Chromium says what mirror mode did to the products a file left out, and
shows the guard's refusal in its own words."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from product_importer.imports import pipeline, service
from product_importer.imports.mirror import MirrorOptions
from product_importer.imports.storage import UploadStorage
from tests.browser import LiveServer, screenshot, sign_in_page
from tests.catalog.field_helpers import add_with_fields

pytestmark = pytest.mark.browser


def run_feed(live_server: LiveServer, content: bytes, options: MirrorOptions) -> int:
    """An import as a feed starts it, run to its end here."""
    database = live_server.database
    storage = UploadStorage(live_server.settings.home / "uploads")
    key = storage.new_key(".upload")
    with storage.open_write(key) as handle:
        handle.write(content)
    with database.session() as session:
        job_id = service.start_import(
            session,
            filename="nightly.csv",
            storage_key=key,
            total_bytes=len(content),
            dry_run=False,
            created_by="feed: nightly",
            mirror=options,
        ).id
    pipeline.run_import(database, storage, job_id)
    return job_id


def test_the_summary_counts_products_not_in_the_file_and_a_refusal_says_why(
    page: Page, live_server: LiveServer
) -> None:
    add_with_fields(live_server.database, [{"sku": f"P-{i}"} for i in range(4)])
    refused = run_feed(live_server, b"sku,name\nP-0,Chair\n", MirrorOptions("delete"))
    done = run_feed(
        live_server, b"sku,name\nP-0,Chair\nP-1,Lamp\n", MirrorOptions("deactivate", 100.0)
    )
    sign_in_page(page, live_server)
    page.goto("/import")
    card = page.locator("#job-card")

    page.get_by_role("button", name=f"Show import {done} of nightly.csv").click()
    outcome = card.locator("#job-outcome")
    expect(outcome).to_contain_text("Import finished")
    expect(outcome).to_contain_text("2 products not in the file were deactivated.")
    screenshot(page, "import-mirror-deactivated")

    page.get_by_role("button", name=f"Show import {refused} of nightly.csv").click()
    alert = card.get_by_role("alert")
    expect(alert).to_contain_text(
        "Refused: the file leaves out 3 of 4 products (75.0 %), more than the limit of 10 %. "
        "Nothing was changed. Run it again with confirm_missing to delete them."
    )
    expect(alert).not_to_contain_text("Import failed")
    screenshot(page, "import-mirror-refused")
