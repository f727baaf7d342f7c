"""Empty databases to restore into (of the kind the test runs on), and every row of one."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from product_importer.backups import service
from product_importer.db import Base, Database
from product_importer.models import import_all_models
from product_importer.settings import Settings
from tests.conftest import PG_ADMIN_URL, _unavailable, make_settings

# The processes that served a database are not part of what a restore brings back.
NOT_RESTORED = {"worker_heartbeats"}


@pytest.fixture(autouse=True)
def _postgres_tools(request: pytest.FixtureRequest) -> None:
    """PostgreSQL backups need pg_dump and pg_restore here (scripts/test installs them)."""
    if "postgresql" in request.node.name and not (
        shutil.which("pg_dump") and shutil.which("pg_restore")
    ):
        _unavailable("pg_dump and pg_restore (Debian: postgresql-client)")


@pytest.fixture(autouse=True)
def _compact_sqlite(request: pytest.FixtureRequest) -> None:
    """The shared SQLite file keeps the space a large import used (free pages, and the search
    table's deleted segments until FTS5 merges them), and every backup would copy it: give it
    back before each test that uses the file."""
    if "database" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("database")
    path = database.engine.url.database
    if database.dialect != "sqlite" or not path or Path(path).stat().st_size < 20_000_000:
        return
    with database.engine.connect() as connection:
        connection.exec_driver_sql("INSERT INTO product_search(product_search) VALUES('optimize')")
        connection.commit()
        connection.exec_driver_sql("VACUUM")
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


@contextmanager
def empty_database(kind: str, home: Path) -> Iterator[Database]:
    """A new, empty database of `kind`; for PostgreSQL dropped afterwards with any scratch
    database a restore left beside it."""
    home.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        database = Database(f"sqlite:///{home / 'products.db'}")
        yield database
        database.dispose()
        return
    name = f"pi_bk_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database(make_url(PG_ADMIN_URL).set(database=name).render_as_string(False))
    try:
        yield database
    finally:
        database.dispose()
        with admin.connect() as connection:
            left = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :name"),
                {"name": f"{name}%"},
            ).scalars()
            for leftover in list(left):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{leftover}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def target(database: Database, tmp_path: Path) -> Iterator[Database]:
    """An empty database of the same kind as `database`, in a home of its own."""
    with empty_database(database.dialect, tmp_path / "restored") as restored:
        yield restored


@pytest.fixture
def target_settings(target: Database, tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "restored", target.engine.url.render_as_string(hide_password=False)
    )


def rows_of(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the models know, in primary key order."""
    import_all_models()
    found = {}
    with database.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_RESTORED:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            found[table.name] = [
                tuple(row) for row in connection.execute(select(table).order_by(*order))
            ]
    return found


def count(database: Database, table: str) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def never_asked(_plan: service.RestorePlan) -> bool:
    raise AssertionError("a restore into an empty database asked to confirm")


def backup_file(settings: Settings, database: Database) -> Path:
    record = service.back_up(settings, database, "manual")
    assert record.status == "completed", record.error
    return service.folder(settings).path / record.file_name
