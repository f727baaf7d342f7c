"""Import options for custom fields: how an import job reads values and groups rows
(decimal separator, empty cells, group column, variant names), and the same saved with a
mapping. NULL is every option at its default, as for the jobs and mappings that exist.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("import_jobs", sa.Column("options", sa.JSON(), nullable=True))
    op.add_column("import_mappings", sa.Column("options", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("import_mappings") as batch:
        batch.drop_column("options")
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("options")
