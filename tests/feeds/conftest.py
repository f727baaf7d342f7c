from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from product_importer.db import Database
from product_importer.settings import Settings
from tests.conftest import make_settings
from tests.feeds.file_server import FileServer, file_server

FINAL = ("imported", "unchanged", "failed", "refused")


@pytest.fixture
def settings(tmp_path: Path, database: Database) -> Settings:
    """The test servers listen on loopback, which feeds refuse unless allowed."""
    return make_settings(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        feed_allowed_hosts=("127.0.0.0/8",),
    )


@pytest.fixture
def files() -> Iterator[FileServer]:
    with file_server() as server:
        yield server


def make_feed(client: TestClient, url: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Nightly ERP", "url": url, "schedule": "0 2 * * *"} | fields
    response = client.post("/api/feeds", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def run_feed(client: TestClient, feed_id: int, query: str = "") -> dict[str, Any]:
    """Run a feed now and wait for the run's outcome."""
    response = client.post(f"/api/feeds/{feed_id}/run{query}")
    assert response.status_code == 202, response.text
    return wait_for_run(client, feed_id, response.json()["id"])


def wait_for_run(
    client: TestClient, feed_id: int, run_id: int, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/api/feeds/{feed_id}/runs/{run_id}").json()
        if run["status"] in FINAL:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
        time.sleep(0.1)
