"""Product search and sort indexes; delete-all jobs.

SQLite: an FTS5 trigram index (external content on `products`, kept in step by triggers) for
substring search; PostgreSQL: a pg_trgm GIN index over sku, name and description, and a
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

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE products_fts USING fts5(sku, name, description, "
    "content='products', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER products_fts_ai AFTER INSERT ON products BEGIN "
    "INSERT INTO products_fts (rowid, sku, name, description) "
    "VALUES (new.id, new.sku, new.name, new.description); END",
    "CREATE TRIGGER products_fts_ad AFTER DELETE ON products BEGIN "
    "INSERT INTO products_fts (products_fts, rowid, sku, name, description) "
    "VALUES ('delete', old.id, old.sku, old.name, old.description); END",
    # Only when searchable text changed: an import that flips `active` pays nothing here.
    "CREATE TRIGGER products_fts_au AFTER UPDATE OF sku, name, description ON products "
    "WHEN old.sku IS NOT new.sku OR old.name IS NOT new.name "
    "OR old.description IS NOT new.description BEGIN "
    "INSERT INTO products_fts (products_fts, rowid, sku, name, description) "
    "VALUES ('delete', old.id, old.sku, old.name, old.description); "
    "INSERT INTO products_fts (rowid, sku, name, description) "
    "VALUES (new.id, new.sku, new.name, new.description); END",
    "INSERT INTO products_fts (products_fts) VALUES ('rebuild')",
]

# Must stay identical to catalog.repository.PG_SEARCH_TEXT for the planner to use the index.
_PG_SEARCH_TEXT = "((sku || ' ' || name || ' ' || description))"


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

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.create_index("ix_products_active_sku_key", "products", ["active", "sku_key"])
        # The narrowest index: SQLite's count(*) walks the smallest b-tree.
        op.create_index("ix_products_active", "products", ["active"])
        for statement in _SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_products_search_trgm ON products "
            f"USING gin ({_PG_SEARCH_TEXT} gin_trgm_ops)"
        )
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
        for name in ("products_fts_ai", "products_fts_ad", "products_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS products_fts")
        op.drop_index("ix_products_active_sku_key", table_name="products")
        op.drop_index("ix_products_active", table_name="products")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_products_search_trgm")
        op.execute("DROP INDEX IF EXISTS ix_products_sku_key_c")
        op.execute("DROP INDEX IF EXISTS ix_products_active_sku_key_c")
    op.drop_index("ix_products_updated_at", table_name="products")
    op.drop_index("ix_products_name", table_name="products")
    op.drop_index("ix_product_delete_jobs_status", table_name="product_delete_jobs")
    op.drop_table("product_delete_jobs")
