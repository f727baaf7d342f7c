import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from product_importer import migrate
from product_importer.catalog.models import Product, sku_key
from product_importer.db import Database
from product_importer.settings import Settings
from tests.factories import make_product


def test_sqlite_runs_in_wal_mode_with_foreign_keys(database: Database) -> None:
    if database.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_timestamps_come_back_as_aware_utc(database: Database) -> None:
    product_id = make_product(database, "TS-1")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with database.session() as session:
        product = session.get(Product, product_id)
        assert product is not None
        product.updated_at = moment
    with database.session() as session:
        stored = session.scalar(select(Product.updated_at).where(Product.id == product_id))
    assert stored == moment
    assert stored is not None and stored.tzinfo is not None
    assert stored.astimezone(UTC).hour == 1


def test_unit_of_work_rolls_back_on_error(database: Database) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(Product(sku="RB-1", sku_key="rb-1", name="x", description=""))
        session.flush()
        raise RuntimeError("boom")
    with database.session() as session:
        assert session.scalar(select(Product).where(Product.sku == "RB-1")) is None


@pytest.mark.parametrize(
    ("first", "second"),
    [("ABC-1", "abc-1"), ("Äpfel", "äpfel"), ("STRASSE", "straße"), (" pad-1 ", "PAD-1")],
)
def test_sku_is_unique_case_insensitively(database: Database, first: str, second: str) -> None:
    make_product(database, first)
    with pytest.raises(IntegrityError):
        make_product(database, second)


def test_sku_key_trims_and_casefolds() -> None:
    assert sku_key("  ÄPFEL-Straße ") == "äpfel-strasse"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (files 0644, folders 0755), whatever the test runner's is."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_a_new_sqlite_database_and_its_wal_files_are_the_owners_only(tmp_path: Path) -> None:
    """It holds password and token hashes and webhook secrets."""
    path = tmp_path / "home" / "deeper" / "products.db"
    database = Database(f"sqlite:///{path}")
    try:
        migrate.upgrade(database)
        with database.engine.connect() as connection:  # open: its -wal and -shm files exist
            connection.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            connection.execute(text("INSERT INTO probe VALUES (1)"))
            connection.commit()
            files = [path, path.with_name("products.db-wal"), path.with_name("products.db-shm")]
            assert all(file.exists() for file in files)
            assert {file.name: _mode(file) for file in files} == {
                file.name: 0o600 for file in files
            }
        assert _mode(path.parent) == 0o700
    finally:
        database.dispose()


@pytest.mark.usefixtures("open_umask")
def test_an_existing_sqlite_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "products.db"
    path.touch(mode=0o640)
    database = Database(f"sqlite:///{path}")
    try:
        database.ping()
    finally:
        database.dispose()
    assert _mode(path) == 0o640


@pytest.mark.usefixtures("open_umask")
def test_a_new_home_folder_and_its_secrets_are_the_owners_only(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from product_importer.app import create_app
    from tests.factories import make_token

    home = tmp_path / "home"
    settings = Settings(_env_file=None, home=home)  # type: ignore[call-arg]
    database = Database(settings.resolved_database_url)
    try:
        migrate.upgrade(database)
        token = make_token(database)
        with TestClient(create_app(settings, database)) as client:
            response = client.post(
                "/api/imports",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("p.csv", b"sku,name\nA-1,One\n", "text/csv")},
            )
            assert response.status_code == 202, response.text
            assert settings.session_secret
    finally:
        database.dispose()
    assert _mode(home) == 0o700
    assert _mode(home / "products.db") == 0o600
    assert _mode(home / "secret_key") == 0o600
    folders = [entry for entry in home.iterdir() if entry.is_dir()]
    uploads = [folder for folder in folders if folder.name == "uploads"]
    assert uploads, folders
    assert _mode(uploads[0]) == 0o700
