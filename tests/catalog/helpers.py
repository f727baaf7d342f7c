"""Helpers for catalogue tests: fast bulk products and a look at the event outbox."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from product_importer.catalog.models import Product, sku_key
from product_importer.db import Database, utcnow
from product_importer.webhooks.models import Event
from tests.factories import index_everything


def add_products(database: Database, rows: Iterable[dict[str, Any]], *, index: bool = True) -> None:
    """Insert many products in one statement (like an import), with sensible defaults, and
    make them searchable (unless `index` is false, as right after an import)."""
    now = utcnow()
    values = [
        {
            "sku": row["sku"],
            "sku_key": sku_key(row["sku"]),
            "name": row.get("name", f"Product {row['sku']}"),
            "description": row.get("description", ""),
            "active": row.get("active", True),
            "created_at": row.get("created_at", now),
            "updated_at": row.get("updated_at", now),
        }
        for row in rows
    ]
    with database.session() as session:
        session.execute(insert(Product), values)
        if index:
            index_everything(session)


def numbered(count: int, prefix: str = "SKU-", **fields: Any) -> list[dict[str, Any]]:
    return [{"sku": f"{prefix}{index:05d}", **fields} for index in range(count)]


def events(database: Database, event_type: str | None = None) -> list[Event]:
    with database.session() as session:
        statement = select(Event).order_by(Event.id)
        if event_type:
            statement = statement.where(Event.type == event_type)
        return list(session.scalars(statement))


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def wait_for_delete_job(client: TestClient, job_id: int) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/products/delete-jobs/{job_id}").json()
        return job if job["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_for(finished)
    return result
