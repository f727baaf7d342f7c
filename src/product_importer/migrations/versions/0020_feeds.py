"""Feeds (`feeds`, `feed_runs`), and mirror mode's counts on import jobs (`rows_missing`,
`refused`).

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from product_importer.db import BigIntId, UTCDateTime

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "import_jobs",
        sa.Column("rows_missing", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column(
        "import_jobs",
        sa.Column("refused", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "feeds",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("schedule", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=True),
        sa.Column(
            "mapping_id",
            BigIntId,
            sa.ForeignKey("import_mappings.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("sheet", sa.String(255), nullable=True),
        sa.Column("encoding", sa.String(40), nullable=True),
        sa.Column("options", sa.JSON(), nullable=True),
        sa.Column("missing", sa.String(16), nullable=False),
        sa.Column("max_missing_percent", sa.Float(), nullable=False),
        sa.Column("failure_alert_after", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secrets", sa.LargeBinary(), nullable=True),
        sa.Column("host_key", sa.String(200), nullable=True),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("etag", sa.String(500), nullable=True),
        sa.Column("last_modified", sa.String(100), nullable=True),
        sa.Column("content_sha256", sa.String(64), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(150), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_feeds_next_run_at", "feeds", ["next_run_at"])
    op.create_table(
        "feed_runs",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column(
            "feed_id", BigIntId, sa.ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("confirm_missing", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(150), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("filename", sa.String(500), nullable=True),
        sa.Column("bytes", BigIntId, nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("host_key", sa.String(200), nullable=True),
        sa.Column("etag", sa.String(500), nullable=True),
        sa.Column("last_modified", sa.String(100), nullable=True),
        sa.Column("content_sha256", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "import_job_id",
            BigIntId,
            sa.ForeignKey("import_jobs.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.UniqueConstraint("feed_id", "due_at", name="uq_feed_runs_due"),
    )
    op.create_index("ix_feed_runs_feed_id", "feed_runs", ["feed_id"])
    op.create_index("ix_feed_runs_status", "feed_runs", ["status"])


def downgrade() -> None:
    op.drop_table("feed_runs")
    op.drop_table("feeds")
    op.drop_column("import_jobs", "refused")
    op.drop_column("import_jobs", "rows_missing")
