"""SQLite: a table of list fields' elements (`product_list_items`), kept by triggers on products,
so that "the list has this element" reads an index instead of every product's JSON
(`catalog.field_sql`). The list fields a catalogue has already get their triggers and elements
here. PostgreSQL has a GIN index per list field instead, and needs nothing.

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

from alembic import op

from product_importer.catalog import field_sql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql(field_sql.LIST_ITEMS_TABLE)
    fields = bind.exec_driver_sql("SELECT id, key FROM custom_fields WHERE type = 'list'").all()
    for field_id, key in fields:
        for statement in field_sql.index_statements("sqlite", field_id, key, "list"):
            if not statement.startswith("CREATE INDEX"):  # the field's index exists already
                bind.exec_driver_sql(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    fields = bind.exec_driver_sql("SELECT id FROM custom_fields WHERE type = 'list'").all()
    for (field_id,) in fields:
        name = field_sql.index_name(field_id)
        for event in ("insert", "update", "delete"):
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}_items_{event}")
    bind.exec_driver_sql("DROP TABLE IF EXISTS product_list_items")
