"""Migration 0012: PostgreSQL's search documents are stored lowercased, and still found."""

from __future__ import annotations

from sqlalchemy import text

from product_importer import migrate
from product_importer.catalog import service
from product_importer.catalog.schemas import ProductFilters, ProductSort
from product_importer.db import Database


def found_skus(database: Database, filters: dict[str, str]) -> list[str]:
    with database.session() as session:
        chosen = ProductFilters(**filters)  # type: ignore[arg-type]
        page = service.list_page(session, chosen, ProductSort.SKU, 1, 20, 1_000)
    return [item.sku for item in page.items]


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
        assert found_skus(fresh_database, filters) == ["ÄB-1"], filters


def test_0021_turns_pending_backlog_entries_into_fresh_rows(fresh_database: Database) -> None:
    """What an older version had still to index (a backlog entry) is found at once after the
    upgrade, through the fresh set, and by its current text only."""
    migrate.upgrade(fresh_database, "0020")
    with fresh_database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO products (sku, sku_key, name, description, active, created_at, "
                "updated_at) VALUES ('OLD-1', 'old-1', 'Settled chair', '', true, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00'), ('NEW-1', 'new-1', "
                "'Renamed lamp', '', true, '2026-03-01 00:00:00', '2026-03-01 00:00:00')"
            )
        )
        search_row = (
            "INSERT INTO product_search (product_id, document) SELECT id, "
            "lower(sku || ' ' || name) FROM products"
            if fresh_database.dialect == "postgresql"
            else "INSERT INTO product_search (rowid, sku, name, description) "
            "SELECT id, lower(sku), lower(name), '' FROM products"
        )
        connection.execute(text(search_row))
        # NEW-1 was renamed after it was indexed; the backlog still had to index it again.
        connection.execute(text("UPDATE products SET name = 'Brass lamp' WHERE sku = 'NEW-1'"))
        connection.execute(
            text(
                "INSERT INTO search_backlog (changed_since, created_at) "
                "VALUES ('2026-02-01 00:00:00', '2026-02-01 00:00:00')"
            )
        )
    migrate.upgrade(fresh_database)
    with fresh_database.engine.connect() as connection:
        fresh = connection.execute(text("SELECT count(*) FROM search_fresh")).scalar()
    assert fresh == 1
    for filters, expected in (
        ({"q": "brass"}, ["NEW-1"]),
        ({"q": "renamed"}, []),
        ({"name": "settled"}, ["OLD-1"]),
    ):
        assert found_skus(fresh_database, filters) == expected, filters
