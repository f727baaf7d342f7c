"""The Import page keeps its promises (issue 27), in Chromium at 1280 and 390 px: the summary
accounts for every row, an unreadable file is refused at choice, a dry run and an undone import
look like what they are, and Import stays off while the preview rejects every row."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from product_importer import sampledata
from tests.browser import LiveServer, screenshot, sign_in_page
from tests.changes.helpers import csv_of

pytestmark = pytest.mark.browser

WIDTHS = [1280, 390]
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64


def _open(page: Page, live_server: LiveServer, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    sign_in_page(page, live_server)
    page.goto("/import")


def _choose(page: Page, name: str, content: bytes, mime: str = "text/csv") -> None:
    page.locator("#file-input").set_input_files({"name": name, "mimeType": mime, "buffer": content})


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sample_imports_summary_accounts_for_every_row(
    page: Page, live_server: LiveServer, tmp_path: Path, width: int
) -> None:
    buffer = io.StringIO()
    sampledata.write(buffer, sampledata.Options(rows=2_000, seed=7))
    _open(page, live_server, width)
    _choose(page, "sample.csv", buffer.getvalue().encode())
    page.get_by_role("button", name="Import", exact=True).click()
    outcome = page.locator("#job-outcome")
    expect(outcome).to_contain_text("Import finished", timeout=60_000)
    text = outcome.inner_text()
    created = int(page.locator("#job-created").inner_text().replace(",", ""))
    merged = int(page.locator("#job-merged").inner_text().replace(",", ""))
    assert merged > 0 and created + merged == 2_000, text
    expect(outcome).to_contain_text(
        f"{merged} rows repeated an earlier SKU and were merged; the last one won."
    )
    screenshot(page, f"import-summary-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_png_or_an_empty_file_is_refused_when_chosen(
    page: Page, live_server: LiveServer, width: int
) -> None:
    uploads: list[str] = []
    page.on(
        "request",
        lambda request: (
            uploads.append(request.url)
            if "/api/imports" in request.url and request.method == "POST"
            else None
        ),
    )
    _open(page, live_server, width)
    _choose(page, "logo.png", PNG, "image/png")
    refusal = page.locator("#file-refusal")
    expect(refusal).to_have_text(
        "“logo.png” cannot be imported: it is a PNG image, not a CSV file or a spreadsheet. "
        "Choose a CSV file or a spreadsheet."
    )
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_disabled()
    expect(page.locator("#job-card")).to_be_hidden()
    screenshot(page, f"import-refused-png-{width}")
    # A PNG renamed .csv is refused by its first bytes; an empty file for being empty.
    _choose(page, "renamed.csv", PNG)
    expect(refusal).to_contain_text("it is a PNG image")
    _choose(page, "empty.csv", b"")
    expect(refusal).to_contain_text("“empty.csv” cannot be imported: it is empty.")
    assert uploads == []
    # A good file clears the refusal.
    _choose(page, "good.csv", csv_of([("A-1", "A", "")]))
    expect(refusal).to_be_hidden()
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_enabled()


@pytest.mark.parametrize("width", WIDTHS)
def test_import_is_off_while_the_preview_rejects_every_row(
    page: Page, live_server: LiveServer, width: int
) -> None:
    _open(page, live_server, width)
    _choose(page, "no-names.csv", csv_of([("A-1", "", ""), ("A-2", "", "")]))
    blocked = page.locator("#import-blocked")
    expect(blocked).to_contain_text("Import is off: every row of the preview is rejected")
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_disabled()
    screenshot(page, f"import-blocked-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_dry_run_shows_as_a_dry_run_and_an_undone_import_as_undone(
    page: Page, live_server: LiveServer, width: int
) -> None:
    _open(page, live_server, width)
    content = csv_of([("D-1", "D", "<p>Hello <b>bold</b></p>"), ("D-2", "E", "")])
    _choose(page, "dry.csv", content)
    page.get_by_label("Dry run: check and count, change nothing").check()
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#job-outcome")).to_contain_text("Dry run finished", timeout=30_000)
    expect(page.locator("#job-status")).to_have_text("Dry run")
    row = page.locator("#history tbody tr").first
    expect(row).to_contain_text("dry run")
    expect(row).to_contain_text("would create 2")
    expect(row.get_by_role("button", name="Undo")).to_have_count(0)

    page.get_by_label("Dry run: check and count, change nothing").uncheck()
    _choose(page, "real.csv", content)
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=30_000)
    row = page.locator("#history tbody tr").first
    expect(row).to_contain_text("real.csv")
    row.get_by_role("button", name="Undo").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("This will delete 2 products it created.")
    dialog.get_by_role("button", name="Undo", exact=True).click()
    expect(dialog).to_contain_text("Undone:", timeout=30_000)
    dialog.get_by_role("button", name="Close").click()
    row = page.locator("#history tbody tr").first
    undone = row.get_by_role("link", name="undone: see the undo of real.csv on the Changes page")
    expect(undone).to_be_visible()
    expect(row.get_by_role("button", name="Undo")).to_have_count(0)
    expect(page.locator("#job-status")).to_have_text("Undone")
    expect(page.locator("#job-undo")).to_be_hidden()
    screenshot(page, f"import-history-dry-run-undone-{width}")
    undone.click()
    expect(page.locator(".change.is-focus")).to_contain_text("Undo of import of real.csv")
