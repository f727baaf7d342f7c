"""Migration 0012: PostgreSQL's search documents are stored lowercased, and still found."""

from __future__ import annotations

from sqlalchemy import text

from product_importer import migrate
from product_importer.catalog import service
from product_importer.catalog.schemas import ProductFilters, ProductSort
from product_importer.db import Database


def test_existing_documents_are_lowercased_and_found(fresh_database: Database) -> None:
    migrate.upgrade(fresh_database, "0011")
    with fresh_database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO products (sku, sku_key, name, description, active, created_at, "
                "updated_at) VALUES ('ÄB-1', 'äb-1', 'Café STOOL', 'Oiled Walnut', true, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        if fresh_database.dialect == "postgresql":
            # As the application wrote it before: the columns as they are.
            connection.execute(
                text(
                    "INSERT INTO product_search (product_id, document) "
                    "SELECT id, sku || ' ' || name || ' ' || description FROM products"
                )
            )
        else:
            connection.execute(
                text(
                    "INSERT INTO product_search (rowid, sku, name, description) "
                    "SELECT id, sku, name, description FROM products"
                )
            )
    migrate.upgrade(fresh_database)
    if fresh_database.dialect == "postgresql":
        with fresh_database.engine.connect() as connection:
            document = connection.execute(text("SELECT document FROM product_search")).scalar()
        assert document == "ab-1 cafe stool oiled walnut"  # lowercased, and since 0018 unaccented
    for filters in ({"q": "CAFÉ"}, {"q": "äb-1 walnut"}, {"name": "stool"}):
        with fresh_database.session() as session:
            found = service.list_page(
                session, ProductFilters(**filters), ProductSort.SKU, 1, 20, 1_000
            )
        assert [item.sku for item in found.items] == ["ÄB-1"], filters
