"""Migration 0010: users and tokens that exist before roles become admins; new ones don't."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from product_importer import migrate
from product_importer.db import Database
from tests.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/old.db")
        yield database
        database.dispose()
        return
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) without PostgreSQL
    name = f"pi_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database(make_url(PG_ADMIN_URL).set(database=name).render_as_string(False))
    try:
        yield database
    finally:
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
