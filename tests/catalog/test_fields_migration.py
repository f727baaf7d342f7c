"""Migration 0014 on a catalogue that exists: every product and its history are kept, products
get empty fields, and a large change's own records table (PostgreSQL) gains the new columns."""

from __future__ import annotations

from sqlalchemy import text

from product_importer import migrate
from product_importer.db import Database


def test_upgrading_a_catalogue_keeps_every_product_and_record(fresh_database: Database) -> None:
    migrate.upgrade(fresh_database, "0013")
    postgres = fresh_database.dialect == "postgresql"
    with fresh_database.engine.begin() as connection:
        for number in range(50):
            connection.execute(
                text(
                    "INSERT INTO products (sku, sku_key, name, description, active, created_at, "
                    "updated_at) VALUES (:sku, :key, :name, 'd', :active, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"sku": f"S-{number}", "key": f"s-{number}", "name": f"N {number}",
                 "active": number % 2 == 0},
            )  # fmt: skip
        connection.execute(
            text(
                "INSERT INTO change_sets (kind, status, actor, summary, created, updated, "
                "deleted, restored, kept, percent, attempts, pruned, created_at) VALUES "
                "('edit', 'completed', 'a', 's', 1, 0, 0, 0, 0, 100, 0, false, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO product_changes (change_id, sku_key, product_id, op, after_sku, "
                "after_name) VALUES (1, 's-1', 2, 'created', 'S-1', 'N 1')"
            )
        )
        if postgres:
            connection.execute(
                text(
                    "CREATE TABLE change_records_7 (sku_key text NOT NULL, product_id bigint, "
                    "op varchar(8) NOT NULL, before_sku_key text, before_sku text, "
                    "before_name text, before_description text, before_active boolean, "
                    "after_sku text, after_name text, after_description text, "
                    "after_active boolean)"
                )
            )
            connection.execute(
                text("INSERT INTO change_records_7 (sku_key, op) VALUES ('s-2', 'deleted')")
            )
    migrate.upgrade(fresh_database)
    with fresh_database.engine.begin() as connection:
        rows = connection.execute(
            text("SELECT sku, name, active, fields FROM products ORDER BY id")
        ).all()
        assert len(rows) == 50
        assert rows[3][:3] == ("S-3", "N 3", False)
        assert all(row[3] in ("{}", {}) for row in rows)
        record = connection.execute(
            text("SELECT after_name, before_fields, after_fields FROM product_changes")
        ).one()
        assert tuple(record) == ("N 1", None, None)
        assert connection.execute(text("SELECT count(*) FROM custom_fields")).scalar() == 0
        if postgres:
            own = connection.execute(
                text("SELECT sku_key, before_fields, after_fields FROM change_records_7")
            ).one()
            assert tuple(own) == ("s-2", None, None)
            connection.execute(text("DROP TABLE change_records_7"))
