"""Column mappings: how a job reads its file (mapping, encoding, sheet) and saved mappings.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from product_importer.db import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("mapping", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("encoding", sa.String(40), nullable=True))
        batch.add_column(sa.Column("sheet", sa.String(255), nullable=True))
    op.create_table(
        "import_mappings",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("header_key", sa.String(64), nullable=False),
        sa.Column("header", sa.JSON(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(150), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_import_mappings_header_key", "import_mappings", ["header_key"])


def downgrade() -> None:
    op.drop_index("ix_import_mappings_header_key", table_name="import_mappings")
    op.drop_table("import_mappings")
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("sheet")
        batch.drop_column("encoding")
        batch.drop_column("mapping")
