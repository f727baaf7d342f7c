"""A web process restart drops no progress page for good: the browser reconnects and shows the
import through to its end. The server is a real `serve` process, killed with SIGKILL in the
middle of an import and started again; the import resumes and the page follows it.

"proxy-502" answers the event stream with 502 while the server is down, as a reverse proxy
would; the browser's EventSource gives up for good on an HTTP error, so the page must reconnect
by itself."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from product_importer import sampledata
from product_importer.db import Database
from product_importer.imports.models import ImportJob
from tests.browser import screenshot
from tests.factories import DEFAULT_PASSWORD
from tests.processes import cli_env, free_port, run_cli, start_server

ROWS = 150_000


def _make_file(path: Path) -> None:
    sampledata.write_file(path, sampledata.Options(rows=ROWS, seed=5))


@pytest.mark.parametrize("outage", ["dropped", "proxy-502"])
def test_the_progress_page_follows_an_import_across_a_server_restart(
    browser: Any, tmp_path: Path, outage: str
) -> None:
    from playwright.sync_api import Browser, Route, expect

    assert isinstance(browser, Browser)
    env = cli_env(tmp_path)
    assert run_cli("migrate", env=env).returncode == 0
    created = run_cli("user", "create", "alice", env=env, input_text=f"{DEFAULT_PASSWORD}\n" * 2)
    assert created.returncode == 0, created.stderr
    token = run_cli("token", "create", "watch", env=env).stdout.strip()
    file = tmp_path / "big.csv"
    _make_file(file)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(env, port)
    server_down = False

    def events(route: Route) -> None:
        if server_down and outage == "proxy-502":
            route.fulfill(status=502, body="Bad Gateway")
        else:
            route.continue_()

    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.route("**/api/imports/*/events", events)
    try:
        page.goto("/login")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda u: "/login" not in u)
        page.goto("/import")
        page.set_input_files("#file-input", str(file))
        page.get_by_role("button", name="Import").click()
        expect(page.locator("#job-status")).to_have_text("running", ignore_case=True)

        headers = {"Authorization": f"Bearer {token}"}
        job = httpx.get(f"{url}/api/imports?page=1", headers=headers).json()["items"][0]
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        server_down = True
        expect(page.locator("#job-connection")).to_be_visible()
        screenshot(page, f"import-reconnecting-{outage}")
        time.sleep(1)

        server = start_server(env, port)
        server_down = False
        expect(page.locator("#job-status")).to_have_text(
            "completed", ignore_case=True, timeout=60_000
        )
        expect(page.locator("#job-connection")).to_be_hidden()
        expect(page.locator("#job-outcome")).to_contain_text("Import finished")
        done = httpx.get(f"{url}/api/imports/{job['id']}", headers=headers).json()
        assert done["status"] == "completed"
        database = Database(f"sqlite:///{tmp_path / 'products.db'}")
        with database.session() as session:
            stored = session.get(ImportJob, job["id"])
            assert stored is not None
            assert stored.attempts == 2  # it really was cut short and run again
        database.dispose()
        expect(page.locator("#job-created")).to_have_text(f"{done['rows_created']:,}")
    finally:
        context.close()
        server.terminate()
        server.wait(timeout=20)
