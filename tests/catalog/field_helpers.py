"""Helpers for custom-field tests: define fields and add products that have values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select

from product_importer.catalog import custom_fields
from product_importer.catalog.models import Product, sku_key
from product_importer.db import Database, utcnow
from tests.factories import index_everything

# One field of every type, as an admin would define them.
EVERY_TYPE: dict[str, tuple[str, list[str] | None]] = {
    "vendor": ("text", None),
    "stock": ("integer", None),
    "price": ("decimal", None),
    "featured": ("boolean", None),
    "launch": ("date", None),
    "site": ("url", None),
    "tags": ("list", None),
    "colour": ("choice", ["Red", "Green", "Blue"]),
}


def define(database: Database, fields: dict[str, tuple[str, list[str] | None]]) -> None:
    """Create the fields (key: (type, choices)) through the service, indexes included."""
    with database.session() as session:
        for key, (kind, choices) in fields.items():
            custom_fields.create(session, key, key.replace("_", " ").title(), kind, choices)


def add_with_fields(database: Database, rows: Iterable[dict[str, Any]]) -> None:
    """Products in one statement, each row `{"sku": ..., "fields": {...}}` with stored values."""
    now = utcnow()
    values = [
        {
            "sku": row["sku"],
            "sku_key": sku_key(row["sku"]),
            "name": row.get("name", f"Product {row['sku']}"),
            "description": row.get("description", ""),
            "active": row.get("active", True),
            "fields": row.get("fields", {}),
            "created_at": now,
            "updated_at": now,
        }
        for row in rows
    ]
    with database.session() as session:
        session.execute(insert(Product), values)
        index_everything(session)


def fields_by_sku(database: Database) -> dict[str, dict[str, Any]]:
    with database.session() as session:
        rows = session.execute(select(Product.sku, Product.fields)).all()
    return {sku: dict(fields or {}) for sku, fields in rows}
