"""The Import page in Chromium against the real server: upload, live progress, summary, retry."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from product_importer.catalog.locking import CatalogueLock
from product_importer.db import utcnow
from product_importer.imports.models import ImportJob
from tests.browser import LiveServer, screenshot, sign_in_page

pytestmark = pytest.mark.browser


def catalogue_file(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "catalogue.csv"
    lines = ["sku,name,description"]
    lines += [f"SKU-{i},Product {i},Description {i}" for i in range(rows)]
    lines += [",Missing sku,x"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_upload_shows_progress_and_a_summary(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    expect(page.get_by_text("No imports yet.")).to_be_visible()
    screenshot(page, "import-empty")
    import_button = page.get_by_role("button", name="Import", exact=True)
    expect(import_button).to_be_disabled()
    page.get_by_label("Drop a CSV file here").set_input_files(str(catalogue_file(tmp_path, 60_000)))
    expect(page.get_by_text("catalogue.csv (")).to_be_visible()
    import_button.click()

    card = page.locator("#job-card")
    expect(card.get_by_role("progressbar")).to_be_visible()
    expect(card.locator("#job-outcome")).to_contain_text("Import finished", timeout=60_000)
    # Screen readers hear the outcome through the page's live region.
    expect(page.locator("#announcer")).to_contain_text("catalogue.csv: Import finished")
    expect(card.get_by_text("created 60,000")).to_be_visible()
    expect(card.get_by_text("rejected 1 of 60,001 rows")).to_be_visible()
    expect(card.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(card.get_by_role("link", name="Download rejected rows")).to_be_visible()
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("completed")
    screenshot(page, "import-completed-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "import-completed-390")
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the import page scrolls sideways at 390 px"

    with page.expect_download() as download:
        card.get_by_role("link", name="Download rejected rows").click()
    rejected = Path(download.value.path()).read_text()
    assert "SKU is empty." in rejected


def test_progress_is_live_while_the_import_waits_and_runs(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    lock = CatalogueLock(live_server.database)
    assert lock.try_acquire()  # another import holds the catalogue
    try:
        page.get_by_label("Drop a CSV file here").set_input_files(str(catalogue_file(tmp_path, 10)))
        page.get_by_role("button", name="Import", exact=True).click()
        card = page.locator("#job-card")
        expect(card.locator("#job-status")).to_have_text("Queued")
        expect(card.get_by_role("button", name="Cancel import")).to_be_visible()
        screenshot(page, "import-queued")
    finally:
        lock.release()
    expect(card.locator("#job-outcome")).to_contain_text("Import finished")
    expect(card.get_by_role("button", name="Cancel import")).to_be_hidden()


def test_refused_and_failed_imports_say_why_and_can_be_retried(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    image = tmp_path / "photo.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    page.get_by_label("Drop a CSV file here").set_input_files(str(image))
    # Refused when chosen, next to the drop zone, before any upload (the server refuses it too).
    expect(page.locator("#file-refusal")).to_contain_text("it is a PNG image, not a CSV file")
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_disabled()
    screenshot(page, "import-refused")
    card = page.locator("#job-card")

    header_only = tmp_path / "header-only.csv"
    header_only.write_text("sku,name\n")
    page.get_by_label("Drop a CSV file here").set_input_files(str(header_only))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(card.get_by_role("alert")).to_contain_text(
        "Import failed: The file has a header but no data rows."
    )
    retry = card.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    screenshot(page, "import-failed")
    retry.click()
    expect(card.get_by_role("alert")).to_contain_text("no data rows")
    expect(page.locator("#history tbody tr").first).to_contain_text("failed")


def test_the_drop_zone_works_from_the_keyboard(page: Page, live_server: LiveServer) -> None:
    sign_in_page(page, live_server)
    page.goto("/import")
    page.locator("#main").focus()
    page.keyboard.press("Tab")
    file_input = page.get_by_label("Drop a CSV file here")
    expect(file_input).to_be_focused()
    # The focus ring shows on the drop zone around the (visually hidden) file input.
    ring = page.locator("#dropzone").evaluate("el => getComputedStyle(el).boxShadow")
    assert ring != "none"
    page.keyboard.press("Tab")
    expect(page.get_by_label("Dry run")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.get_by_label("Dry run")).to_be_checked()


# Collects what the page's live region says, and how often the progress figures change.
LISTEN = """() => {
  window.heard = [];
  window.ticks = 0;
  const announcer = document.getElementById("announcer");
  if (announcer.textContent) window.heard.push(announcer.textContent);  // said before we listened
  new MutationObserver(() => {
    if (announcer.textContent) window.heard.push(announcer.textContent);
  }).observe(announcer, { childList: true, characterData: true, subtree: true });
  const percent = document.getElementById("job-percent");
  new MutationObserver(() => window.ticks++).observe(
    percent, { childList: true, characterData: true, subtree: true });
}"""


def test_screen_readers_hear_milestones_not_every_tick(page: Page, live_server: LiveServer) -> None:
    """A job moved through its phases step by step: the live region speaks at each new phase,
    each quarter of the file and the end; the figures on screen change at every step."""
    database = live_server.database
    lock = CatalogueLock(database)
    assert lock.try_acquire()  # keeps the recovery sweep away from the hand-made job
    try:
        now = utcnow()
        with database.session() as session:
            job = ImportJob(
                filename="big.csv",
                status="running",
                phase="Reading and validating",
                percent=5.0,
                total_bytes=1000,
                started_at=now,
                heartbeat_at=now,
                attempts=1,
            )
            session.add(job)
            session.flush()
            job_id = job.id
        sign_in_page(page, live_server)
        page.goto("/import")
        page.evaluate(LISTEN)
        card = page.locator("#job-card")
        expect(card.locator("#job-percent")).to_have_text("5.0%")
        steps: list[tuple[float, str, str]] = [
            (10.0, "Reading and validating", "running"),
            (20.0, "Reading and validating", "running"),
            (30.0, "Reading and validating", "running"),
            (40.0, "Reading and validating", "running"),
            (55.0, "Reading and validating", "running"),
            (60.0, "Reading and validating", "running"),
            (70.0, "Reading and validating", "running"),
            (80.0, "Reading and validating", "running"),
            (90.0, "Reading and validating", "running"),
            (95.0, "Merging", "running"),
            (100.0, "Completed", "completed"),
        ]
        for percent, phase, status in steps:
            with database.session() as session:
                session.execute(
                    update(ImportJob)
                    .where(ImportJob.id == job_id)
                    .values(
                        percent=percent,
                        phase=phase,
                        status=status,
                        rows_processed=int(percent * 100),
                        rows_created=int(percent * 100),
                        heartbeat_at=utcnow(),
                        finished_at=utcnow() if status == "completed" else None,
                    )
                )
            expect(card.locator("#job-percent")).to_have_text(
                f"{percent:.{0 if percent == 100 else 1}f}%"
            )
        expect(card.locator("#job-outcome")).to_contain_text("Import finished")
    finally:
        lock.release()
    heard = page.evaluate("window.heard")
    ticks = page.evaluate("window.ticks")
    assert heard[0] == "big.csv: Reading and validating, 5% done."
    assert heard[1:5] == [
        "big.csv: 25% done.",
        "big.csv: 50% done.",
        "big.csv: 75% done.",
        "big.csv: Merging, 95% done.",
    ]
    assert heard[5].startswith("big.csv: Import finished. It created 10,000")
    assert len(heard) == 6, heard
    assert ticks >= len(steps), "the figures on screen changed less often than the job did"
