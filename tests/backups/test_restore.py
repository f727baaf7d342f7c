"""Backups restored, on SQLite and PostgreSQL: into a fresh home with every row as it was; over a
catalogue only when asked; never when the backup is damaged, of the other kind or of a newer
schema; an older schema comes out migrated."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from product_importer import migrate
from product_importer.app import create_app
from product_importer.auth.roles import Role
from product_importer.backups import archive, service
from product_importer.backups.errors import (
    DamagedBackup,
    NotABackup,
    RestoreCancelled,
    RestoreRefused,
)
from product_importer.db import Database
from product_importer.settings import Settings
from tests.backups.conftest import backup_file, count, empty_database, never_asked, rows_of
from tests.changes.helpers import csv_of, undo
from tests.conftest import make_settings
from tests.factories import make_token, make_user, make_webhook, sign_in
from tests.imports.conftest import run_import

CATALOGUE = csv_of([(f"SKU-{i:04d}", f"Oak chair {i}", f"seat {i}") for i in range(300)])


def _build_catalogue(client: TestClient, database: Database) -> int:
    """A catalogue with history, users, tokens and webhooks; answers the import's change id."""
    job = run_import(client, CATALOGUE)
    assert job["status"] == "completed", job
    created = client.post("/api/products", json={"sku": "EXTRA-1", "name": "Walnut table"})
    assert created.status_code == 201, created.text
    product = client.get("/api/products", params={"sku": "SKU-0007"}).json()["items"][0]
    assert client.delete(f"/api/products/{product['id']}").status_code == 204
    make_user(database, "bob", role=Role.editor)
    make_token(database, "deploy", Role.viewer)
    make_webhook(database, "https://receiver.example/hook", ["product.created"], enabled=False)
    change_id: int = job["change_id"]
    return change_id


def test_a_restore_into_a_fresh_home_holds_every_row_and_works(
    client: TestClient,
    database: Database,
    settings: Settings,
    target: Database,
    target_settings: Settings,
) -> None:
    change_id = _build_catalogue(client, database)
    before = rows_of(database)
    path = backup_file(settings, database)
    assert rows_of(database) == before, "the catalogue changed while it was backed up"

    result = service.restore(target_settings, target, path, replace=False, confirm=never_asked)

    assert result.replaced is None and result.migrated_to == migrate_head()
    restored = rows_of(target)
    assert restored == before
    assert len(restored["products"]) == 300  # 300 imported, one created, one deleted
    assert len(restored["change_sets"]) == 3 and len(restored["users"]) == 2
    assert len(restored["webhook_endpoints"]) == 1 and len(restored["api_tokens"]) == 1
    assert result.manifest.contents.products == 300

    # The restored installation signs in, searches and undoes the import it holds.
    with TestClient(create_app(target_settings, target)) as restored_client:
        sign_in(restored_client, target, create=False)
        found = restored_client.get("/api/products", params={"q": "Oak chair 123"}).json()
        assert [item["sku"] for item in found["items"]][:1] == ["SKU-0123"]
        assert undo(restored_client, change_id)["status"] == "completed"
        skus = [p["sku"] for p in restored_client.get("/api/products").json()["items"]]
        assert skus == ["EXTRA-1"]


def migrate_head() -> str:
    return service.known_revisions()[-1]


def test_over_a_catalogue_only_with_replace_after_naming_what_is_lost(
    database: Database,
    settings: Settings,
    target: Database,
    target_settings: Settings,
    tmp_path: Path,
) -> None:
    for number in range(3):
        make_user(database, f"user-{number}")
    first = backup_file(settings, database)
    service.restore(target_settings, target, first, replace=False, confirm=never_asked)
    make_user(database, "latecomer")
    second = backup_file(settings, database)

    with pytest.raises(RestoreRefused, match=r"not empty: it holds 0 products, .*3 users"):
        service.restore(target_settings, target, second, replace=False, confirm=never_asked)
    asked: list[service.RestorePlan] = []

    def decline(plan: service.RestorePlan) -> bool:
        asked.append(plan)
        return False

    with pytest.raises(RestoreCancelled):
        service.restore(target_settings, target, second, replace=True, confirm=decline)
    assert asked[0].current.users == 3 and asked[0].manifest.contents.users == 4
    assert count(target, "users") == 3

    service.restore(target_settings, target, second, replace=True, confirm=lambda _plan: True)
    assert count(target, "users") == 4
    assert rows_of(target)["users"] == rows_of(database)["users"]


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "end cut off":
        path.write_bytes(data[:-10])
    elif how == "flipped byte":
        # In the payload, past the zip's local header (30 bytes and the name).
        data[len(data) // 3] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "empty":
        path.write_bytes(b"")
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "end cut off", "flipped byte", "empty"])
def test_a_damaged_backup_is_refused_and_the_database_is_untouched(
    database: Database, settings: Settings, target: Database, target_settings: Settings, how: str
) -> None:
    make_user(database)
    path = backup_file(settings, database)
    service.restore(target_settings, target, path, replace=False, confirm=never_asked)
    make_user(database, "bob")
    newer = backup_file(settings, database)
    _damage(newer, how)
    before = rows_of(target)

    with pytest.raises((DamagedBackup, NotABackup)) as refused:
        service.restore(target_settings, target, newer, replace=True, confirm=lambda _p: True)

    assert ("empty" if how == "empty" else "damaged") in str(refused.value)
    assert rows_of(target) == before
    leftovers = [p.name for p in target_settings.home.iterdir() if p.name.startswith(".restore")]
    assert leftovers == []


def _rewrite_manifest(path: Path, **changes: object) -> Path:
    """A copy of the backup at `path` whose manifest says something else."""
    copy = path.with_name("altered.zip")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == archive.MANIFEST:
                data = json.dumps(json.loads(data) | changes).encode()
            target.writestr(item, data)
    return copy


def test_a_backup_of_a_newer_schema_is_refused(
    database: Database, settings: Settings, target: Database, target_settings: Settings
) -> None:
    newer = _rewrite_manifest(
        backup_file(settings, database), schema_revision="9999", app_version="9.0.0"
    )
    with pytest.raises(RestoreRefused, match=r"revision 9999.*newer than this version knows"):
        service.restore(target_settings, target, newer, replace=False, confirm=never_asked)
    assert count_tables(target) == 0


def count_tables(database: Database) -> int:
    with database.engine.connect() as connection:
        return len(service.inventory.table_names(connection))


def test_a_backup_of_the_other_kind_of_database_is_refused(
    database: Database, target: Database, target_settings: Settings, tmp_path: Path
) -> None:
    other = "sqlite" if database.dialect == "postgresql" else "postgresql"
    with empty_database(other, tmp_path / "other") as elsewhere:
        migrate.upgrade(elsewhere)
        other_settings = make_settings(
            tmp_path / "other", elsewhere.engine.url.render_as_string(hide_password=False)
        )
        path = backup_file(other_settings, elsewhere)
    kind = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[other]
    with pytest.raises(RestoreRefused, match=f"This is a backup of a {kind} database"):
        service.restore(target_settings, target, path, replace=False, confirm=never_asked)
    assert count_tables(target) == 0


def test_a_running_server_keeps_its_database(
    client: TestClient, database: Database, settings: Settings
) -> None:
    path = backup_file(settings, database)
    with pytest.raises(RestoreRefused, match="A server or worker is using the database"):
        service.restore(settings, database, path, replace=True, confirm=lambda _p: True)


def test_an_older_schema_comes_out_migrated(fresh_database: Database, tmp_path: Path) -> None:
    migrate.upgrade(fresh_database, "0013")
    with fresh_database.engine.begin() as connection:
        for number in range(20):
            connection.execute(
                text(
                    "INSERT INTO products (sku, sku_key, name, description, active, created_at, "
                    "updated_at) VALUES (:sku, :key, :name, 'd', true, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"sku": f"OLD-{number}", "key": f"old-{number}", "name": f"Old {number}"},
            )
    url = fresh_database.engine.url.render_as_string(hide_password=False)
    path = backup_file(make_settings(tmp_path / "old", url), fresh_database)
    assert archive.read_manifest(path).schema_revision == "0013"

    with empty_database(fresh_database.dialect, tmp_path / "new") as target:
        target_settings = make_settings(
            tmp_path / "new", target.engine.url.render_as_string(hide_password=False)
        )
        result = service.restore(target_settings, target, path, replace=False, confirm=never_asked)
        assert result.migrated_to == migrate_head() != "0013"
        assert migrate.pending(target) == []
        with target.engine.connect() as connection:
            rows = connection.execute(text("SELECT sku, fields FROM products ORDER BY id")).all()
        assert [row[0] for row in rows] == [f"OLD-{n}" for n in range(20)]
        assert all(row[1] in ("{}", {}) for row in rows)


def test_a_backup_is_one_zip_with_its_manifest(database: Database, settings: Settings) -> None:
    make_user(database)
    path = backup_file(settings, database)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    with zipfile.ZipFile(path) as zipped:
        payload = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}[database.dialect]
        assert zipped.namelist() == [payload, "manifest.json"]
        manifest = json.load(io.BytesIO(zipped.read("manifest.json")))
        assert zipped.getinfo(payload).file_size == manifest["payload_bytes"]
    assert manifest["format"] == "product-importer-backup"
    assert manifest["database"] == database.dialect
    assert manifest["schema_revision"] == migrate_head()
    assert manifest["product_count"] == 0 and manifest["user_count"] == 1
    assert len(manifest["payload_sha256"]) == 64 and manifest["app_version"]
