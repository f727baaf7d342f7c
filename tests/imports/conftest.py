"""Helpers for import tests: upload through the real API and wait for the job to end."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

TERMINAL = {"completed", "failed", "cancelled"}


def upload(
    client: TestClient,
    content: bytes,
    filename: str = "products.csv",
    dry_run: bool = False,
) -> Any:
    return client.post(
        "/api/imports" + ("?dry_run=true" if dry_run else ""),
        files={"file": (filename, content, "text/csv")},
    )


def wait_for(client: TestClient, job_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/imports/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.05)
    raise AssertionError(f"import {job_id} did not finish in {timeout}s")


def run_import(client: TestClient, content: bytes, **kwargs: Any) -> dict[str, Any]:
    response = upload(client, content, **kwargs)
    assert response.status_code == 202, response.text
    return wait_for(client, response.json()["id"])
