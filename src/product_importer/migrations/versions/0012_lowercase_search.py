"""PostgreSQL: the search document is stored lowercased, so a search tests it with LIKE rather
than ILIKE, which lowercases the whole document again for every row it tests. SQLite: nothing
to do (FTS5 folds case in its own index).

The trigram index is dropped while the documents are rewritten and built again after: one
sorted build is far cheaper than updating every entry.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_product_search_trgm")
    op.execute("UPDATE product_search SET document = lower(document)")
    op.execute(
        "CREATE INDEX ix_product_search_trgm ON product_search USING gin (document gin_trgm_ops)"
    )


def downgrade() -> None:
    # Lowercased documents answer the older ILIKE searches the same way: nothing to undo.
    pass
