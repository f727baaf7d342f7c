"""Server-side sessions, so signing out ends a session at once, and user names compared by
their confusables skeleton (`users.username_key`, unique).

Users whose names already collide keep working: the oldest of them holds the key and the
others get none (NULL, which a unique index allows any number of times). Sessions signed in
before this revision carry no session id and end: everyone signs in once more.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from product_importer.auth import usernames
from product_importer.db import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("username_key", sa.String(64), nullable=True))
    users = sa.table(
        "users",
        sa.column("id", sa.Integer()),
        sa.column("username", sa.String()),
        sa.column("username_key", sa.String()),
    )
    bind = op.get_bind()
    taken: set[str] = set()
    for user_id, username in bind.execute(
        sa.select(users.c.id, users.c.username).order_by(users.c.id)
    ):
        key = usernames.key(username)
        if key in taken:
            continue
        taken.add(key)
        bind.execute(users.update().where(users.c.id == user_id).values(username_key=key))
    op.create_index("ix_users_username_key", "users", ["username_key"], unique=True)

    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_index("ix_user_sessions_expires_at", "user_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_user_sessions_expires_at", table_name="user_sessions")
    op.drop_index("ix_user_sessions_user_id", table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_index("ix_users_username_key", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("username_key")
