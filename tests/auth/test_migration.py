"""Migration 0010: users and tokens that exist before roles become admins; new ones don't."""

from __future__ import annotations

from sqlalchemy import text

from product_importer import migrate
from product_importer.db import Database


def test_existing_users_and_tokens_become_admins(fresh_database: Database) -> None:
    migrate.upgrade(fresh_database, "0007")
    with fresh_database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (username, password_hash, created_at) "
                "VALUES ('old', 'x', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO api_tokens (name, token_hash, prefix, created_at) "
                "VALUES ('old-token', 'h', 'pi_', CURRENT_TIMESTAMP)"
            )
        )
    migrate.upgrade(fresh_database)
    with fresh_database.engine.begin() as connection:
        user = connection.execute(text("SELECT role, active, session_generation FROM users")).one()
        assert tuple(user) == ("admin", True, 0)
        assert connection.execute(text("SELECT role FROM api_tokens")).scalar_one() == "admin"
        connection.execute(
            text(
                "INSERT INTO users (username, password_hash, created_at) "
                "VALUES ('new', 'x', CURRENT_TIMESTAMP)"
            )
        )
        new = connection.execute(text("SELECT role FROM users WHERE username = 'new'"))
        assert new.scalar_one() == "viewer"  # a user added later starts with the least role
