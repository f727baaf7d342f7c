"""The search structure's fresh set (`search_fresh`), which replaces the search backlog.

Every writer puts the products it writes there, with their folded document, and a background
catch-up moves them into the index (see catalog.search). Products an unfinished backlog entry
still covered become fresh rows, so nothing is lost; search tables that an import's rebuild
replaced and that were not dropped yet (PostgreSQL) go now: imports no longer rebuild.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from product_importer.db import UTCDateTime, register_sqlite_functions

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "sku || ' ' || name || ' ' || description"
_DOCUMENT = {"sqlite": f"pi_fold({_COLUMNS})", "postgresql": f"lower(unaccent({_COLUMNS}))"}


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        register_sqlite_functions(bind.connection.driver_connection)
        # No foreign key: it would make SQLite empty `products` row by row (delete-all).
        op.execute(
            "CREATE TABLE search_fresh (product_id INTEGER PRIMARY KEY, document TEXT NOT NULL)"
        )
    else:
        op.execute(
            "CREATE TABLE search_fresh (product_id bigint PRIMARY KEY "
            "REFERENCES products (id) ON DELETE CASCADE, document text NOT NULL)"
        )
        retired = bind.exec_driver_sql(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^product_search_old_'"
        )
        for (name,) in retired.all():
            op.execute(f'DROP TABLE "{name}"')
    op.execute(
        f"INSERT INTO search_fresh (product_id, document) SELECT id, {_DOCUMENT[dialect]} "  # noqa: S608
        "FROM products WHERE updated_at >= (SELECT min(changed_since) FROM search_backlog)"
    )
    op.drop_table("search_backlog")


def downgrade() -> None:
    op.create_table(
        "search_backlog",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("changed_since", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        register_sqlite_functions(bind.connection.driver_connection)
        op.execute(
            "INSERT OR REPLACE INTO product_search (rowid, sku, name, description) "
            "SELECT id, pi_fold(sku), pi_fold(name), pi_fold(description) FROM products "
            "WHERE id IN (SELECT product_id FROM search_fresh)"
        )
    else:
        op.execute(
            "INSERT INTO product_search (product_id, document) "
            "SELECT product_id, document FROM search_fresh "
            "ON CONFLICT (product_id) DO UPDATE SET document = excluded.document"
        )
    op.execute("DROP TABLE search_fresh")
