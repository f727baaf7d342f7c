"""Kill -9 the server in the middle of an undo: the catalogue is either fully undone or
untouched, never half; after a restart the undo runs again and completes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from product_importer.db import Database
from tests.changes.helpers import catalogue, csv_of
from tests.processes import cli_env, free_port, run_cli, start_server

ROWS = 150_000


def _wait(url: str, headers: dict[str, str], path: str, done: set[str], timeout: float) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}{path}", headers=headers, timeout=10).json()
        if body["status"] in done:
            return body  # type: ignore[no-any-return]
        time.sleep(0.01)
    raise AssertionError(f"{path} did not reach {done} in {timeout}s: {body}")


def test_killed_during_undo_leaves_all_or_nothing(database: Database, tmp_path: Path) -> None:
    env = cli_env(tmp_path, database.engine.url.render_as_string(hide_password=False))
    token = run_cli("token", "create", "crash-test", env=env).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    content = csv_of([(f"K-{i:06d}", f"Product {i}", "x" * 40) for i in range(ROWS)])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(env, port)
    try:
        response = httpx.post(
            f"{url}/api/imports",
            headers=headers,
            files={"file": ("big.csv", content, "text/csv")},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        _wait(url, headers, f"/api/imports/{response.json()['id']}", {"completed"}, 180)
        response = httpx.delete(f"{url}/api/products?confirm=true", headers=headers, timeout=30)
        job = _wait(
            url, headers, f"/api/products/delete-jobs/{response.json()['id']}", {"completed"}, 120
        )
        full = catalogue(database) or None
        assert full is None  # all deleted
        response = httpx.post(f"{url}/api/changes/{job['change_id']}/undo", headers=headers)
        assert response.status_code == 202, response.text
        undo_id = response.json()["id"]
        running = _wait(url, headers, f"/api/changes/{undo_id}", {"running", "completed"}, 60)
        assert running["status"] == "running", "the undo finished before it could be killed"
        time.sleep(0.3)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    after_kill = len(catalogue(database))
    assert after_kill in (0, ROWS), f"half an undo: {after_kill} products"

    server = start_server(env, port)
    try:
        result = _wait(url, headers, f"/api/changes/{undo_id}", {"completed", "failed"}, 180)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert result["status"] == "completed", result
    assert result["restored"] == ROWS
    restored = catalogue(database)
    assert len(restored) == ROWS
    assert restored["k-000123"] == ("K-000123", "Product 123", "x" * 40, True)
