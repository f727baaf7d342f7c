"""Product search and sort indexes; delete-all jobs; the search-indexing backlog.

Search lives in its own structure keyed by product id, written by the application (single
edits at once, imports afterwards from `search_backlog`), never by triggers, so an import does
not pay for it. SQLite: a regular FTS5 trigram table `product_search` (rowid = product id);
PostgreSQL: a `product_search` table with a pg_trgm GIN index on its document, and a
"C"-collated SKU index for code-point sorting and prefix ranges. Both: b-tree indexes for the
sortable columns and the active filter.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from product_importer.db import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_SQLITE_SEARCH = [
    # A regular (not external-content) FTS5 table: a row can be removed by rowid alone.
    "CREATE VIRTUAL TABLE product_search USING fts5(sku, name, description, tokenize='trigram')",
    "INSERT INTO product_search (rowid, sku, name, description) "
    "SELECT id, sku, name, description FROM products",
]

_PG_SEARCH = [
    "CREATE TABLE product_search (product_id bigint PRIMARY KEY "
    "REFERENCES products (id) ON DELETE CASCADE, document text NOT NULL)",
    # The document as catalog.repository writes it.
    "INSERT INTO product_search (product_id, document) "
    "SELECT id, sku || ' ' || name || ' ' || description FROM products",
    "CREATE INDEX ix_product_search_trgm ON product_search USING gin (document gin_trgm_ops)",
]


def upgrade() -> None:
    op.create_table(
        "product_delete_jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(150), nullable=False),
        sa.Column("total", BigIntId, nullable=True),
        sa.Column("deleted", BigIntId, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_product_delete_jobs_status", "product_delete_jobs", ["status"])

    op.create_index("ix_products_name", "products", ["name", "id"])
    op.create_index("ix_products_updated_at", "products", ["updated_at", "id"])
    op.create_table(
        "search_backlog",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("changed_since", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    )

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.create_index("ix_products_active_sku_key", "products", ["active", "sku_key"])
        # The narrowest index: SQLite's count(*) walks the smallest b-tree.
        op.create_index("ix_products_active", "products", ["active"])
        for statement in _SQLITE_SEARCH:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for statement in _PG_SEARCH:
            op.execute(statement)
        # Code-point order for SKUs, as on SQLite, so a prefix is a contiguous key range. The
        # included columns let a deep page be skipped in the index alone (index-only scan).
        op.execute(
            'CREATE INDEX ix_products_sku_key_c ON products ((sku_key COLLATE "C")) '
            "INCLUDE (sku_key, id)"
        )
        op.execute(
            'CREATE INDEX ix_products_active_sku_key_c ON products (active, (sku_key COLLATE "C"))'
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS product_search")
        op.drop_index("ix_products_active_sku_key", table_name="products")
        op.drop_index("ix_products_active", table_name="products")
    elif dialect == "postgresql":
        op.execute("DROP TABLE IF EXISTS product_search")
        op.execute("DROP INDEX IF EXISTS ix_products_sku_key_c")
        op.execute("DROP INDEX IF EXISTS ix_products_active_sku_key_c")
    op.drop_table("search_backlog")
    op.drop_index("ix_products_updated_at", table_name="products")
    op.drop_index("ix_products_name", table_name="products")
    op.drop_index("ix_product_delete_jobs_status", table_name="product_delete_jobs")
    op.drop_table("product_delete_jobs")
