"""Search folds accents as it folds letter case ("senor" finds "Señor") for the free text and
the name and description filters alike. PostgreSQL: the documents become
`lower(unaccent(...))` (the `unaccent` extension, trusted since PostgreSQL 13); the trigram index
is dropped while they are rewritten and built again after. SQLite: the FTS5 table is rebuilt
holding each column folded by `pi_fold()` (db.fold_text), which every connection registers.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

from alembic import op

from product_importer.db import register_sqlite_functions

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RAW_COLUMNS = "id, sku, name, description"


def _rebuild_sqlite(columns: str) -> None:
    bind = op.get_bind()
    register_sqlite_functions(bind.connection.driver_connection)
    # An FTS5 table empties row by row: drop it and create it again from its stored SQL.
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'product_search'"
    ).scalar_one()
    bind.exec_driver_sql("DROP TABLE product_search")
    bind.exec_driver_sql(sql)
    bind.exec_driver_sql(
        "INSERT INTO product_search (product_search, rank) VALUES ('automerge', 16)"
    )
    bind.exec_driver_sql(
        f"INSERT INTO product_search (rowid, sku, name, description) SELECT {columns} FROM products"  # noqa: S608
    )


def _rebuild_postgresql(document: str) -> None:
    op.execute("DROP INDEX ix_product_search_trgm")
    op.execute(
        f"UPDATE product_search AS s SET document = {document} "  # noqa: S608
        "FROM products AS p WHERE p.id = s.product_id"
    )
    op.execute(
        "CREATE INDEX ix_product_search_trgm ON product_search USING gin (document gin_trgm_ops)"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        _rebuild_postgresql("lower(unaccent(p.sku || ' ' || p.name || ' ' || p.description))")
    else:
        _rebuild_sqlite("id, pi_fold(sku), pi_fold(name), pi_fold(description)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rebuild_postgresql("lower(p.sku || ' ' || p.name || ' ' || p.description)")
    else:
        _rebuild_sqlite(_RAW_COLUMNS)
