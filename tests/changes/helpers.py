"""Helpers for change-set tests: the catalogue as comparable values, and waiting for undos."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from product_importer.catalog.models import Product
from product_importer.db import Database

Catalogue = dict[str, tuple[str, str, str, bool]]


def catalogue(database: Database) -> Catalogue:
    """SKU key -> (sku, name, description, active): what must survive an undo (ids may not)."""
    with database.session() as session:
        rows = session.execute(
            select(Product.sku_key, Product.sku, Product.name, Product.description, Product.active)
        ).all()
    return {key: (sku, name, desc, bool(active)) for key, sku, name, desc, active in rows}


def wait_for_change(client: TestClient, change_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        change: dict[str, Any] = client.get(f"/api/changes/{change_id}").json()
        if change["status"] in ("completed", "failed"):
            return change
        time.sleep(0.05)
    raise AssertionError(f"change {change_id} did not finish in {timeout}s")


def undo(client: TestClient, change_id: int) -> dict[str, Any]:
    response = client.post(f"/api/changes/{change_id}/undo")
    assert response.status_code == 202, response.text
    return wait_for_change(client, response.json()["id"])


def csv_of(rows: list[tuple[str, ...]], header: str = "sku,name,description") -> bytes:
    lines = [header, *(",".join(row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()
