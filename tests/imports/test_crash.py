"""Kill -9 the server in the middle of an import; after a restart the job completes exactly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from product_importer import sampledata
from product_importer.catalog.models import Product
from product_importer.db import Database
from tests.processes import cli_env, free_port, run_cli, start_server

ROWS = 100_000
BLANK_TAIL_BYTES = 64 * 1024 * 1024


def test_killed_server_resumes_the_import_after_restart(database: Database, tmp_path: Path) -> None:
    env = cli_env(tmp_path, database.engine.url.render_as_string(hide_password=False))
    token = run_cli("token", "create", "crash-test", env=env).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    file = tmp_path / "big.csv"
    options = sampledata.Options(rows=ROWS, seed=3)
    sampledata.write_file(file, options)
    # Blank lines after the rows (read, never stored) keep the import reading for seconds after
    # its first progress, so the kill below lands while it reads, however fast the machine.
    with file.open("ab") as handle:
        handle.write(b"\n" * BLANK_TAIL_BYTES)
    distinct_skus = len({sku.casefold() for _name, sku, _description in sampledata.rows(options)})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(env, port)
    try:
        with file.open("rb") as handle:
            response = httpx.post(
                f"{url}/api/imports",
                headers=headers,
                files={"file": ("big.csv", handle)},
                timeout=60,
            )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = httpx.get(f"{url}/api/imports/{job_id}", headers=headers).json()
            if job["status"] == "running" and job["rows_processed"] > 0:
                break
            time.sleep(0.02)
        assert job["status"] == "running", job
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Product)) == 0

    server = start_server(env, port)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = httpx.get(f"{url}/api/imports/{job_id}", headers=headers).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert job["status"] == "completed", job
    assert job["rows_processed"] == ROWS
    # Killed while reading: resumed once, and the job says so (a second kill would fail it).
    assert job["warnings"][0].startswith("The worker stopped while reading this file")
    with database.session() as session:
        stored = session.scalar(select(func.count()).select_from(Product))
    assert stored == job["rows_created"] == distinct_skus
    assert job["rows_rejected"] == 0
    assert distinct_skus < ROWS  # the file repeats some SKUs
