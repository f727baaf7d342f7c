"""Custom fields: their definitions (`custom_fields`), every product's values (`products.fields`,
a JSON object, `{}` for the products that exist), and the fields before and after in change
records, so history and undo carry them.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from product_importer.db import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VALUES = sa.JSON().with_variant(JSONB(), "postgresql")


def _own_record_tables(bind: sa.engine.Connection) -> list[str]:
    """Changes whose records have a table of their own (history.record_tables)."""
    listed = bind.execute(
        sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE 'change\\_records\\_%'"
        )
    )
    return [str(name) for name in listed.scalars()]


def upgrade() -> None:
    op.create_table(
        "custom_fields",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_custom_fields_key", "custom_fields", ["key"], unique=True)
    # A constant default: PostgreSQL (11+) and SQLite add the column without rewriting rows.
    op.add_column(
        "products",
        sa.Column("fields", _VALUES, nullable=False, server_default=sa.text("'{}'")),
    )
    op.add_column("product_changes", sa.Column("before_fields", _VALUES, nullable=True))
    op.add_column("product_changes", sa.Column("after_fields", _VALUES, nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in _own_record_tables(bind):
            bind.execute(
                sa.text(
                    f'ALTER TABLE "{table}" ADD COLUMN before_fields jsonb, '
                    "ADD COLUMN after_fields jsonb"
                )
            )


def downgrade() -> None:
    bind = op.get_bind()
    for (field_id,) in bind.execute(sa.text("SELECT id FROM custom_fields")).all():
        op.execute(f"DROP INDEX IF EXISTS ix_products_field_{int(field_id)}")
        op.execute(f"DROP INDEX IF EXISTS ix_products_field_{int(field_id)}_items")
    if bind.dialect.name == "postgresql":
        for table in _own_record_tables(bind):
            bind.execute(
                sa.text(
                    f'ALTER TABLE "{table}" DROP COLUMN before_fields, DROP COLUMN after_fields'
                )
            )
    with op.batch_alter_table("product_changes") as batch:
        batch.drop_column("after_fields")
        batch.drop_column("before_fields")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("fields")
    op.drop_index("ix_custom_fields_key", "custom_fields")
    op.drop_table("custom_fields")
