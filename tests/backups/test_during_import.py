"""Backups taken one after another while a 100,000-row import runs, on both databases: each holds
the catalogue as it was before the import or as it is after, never part of it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from product_importer import sampledata
from product_importer.backups import service
from product_importer.backups.archive import Manifest
from product_importer.db import Database
from product_importer.settings import Settings
from tests.backups.conftest import never_asked
from tests.factories import make_product
from tests.imports.conftest import TERMINAL, upload

ROWS = 100_000


@pytest.fixture(scope="module")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("large") / "products.csv"
    sampledata.write_file(path, sampledata.Options(rows=ROWS, seed=26))
    return path.read_bytes()


def products(database: Database) -> list[tuple[Any, ...]]:
    with database.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT id, sku, sku_key, name, description, active, fields, created_at, "
                    "updated_at FROM products ORDER BY id"
                )
            )
        ]


def test_a_backup_during_an_import_holds_none_or_all_of_it(
    client: TestClient,
    database: Database,
    settings: Settings,
    target: Database,
    target_settings: Settings,
    large_file: bytes,
    tmp_path: Path,
) -> None:
    for number in range(10):
        make_product(database, f"BEFORE-{number}")
    before = products(database)
    response = upload(client, large_file)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    taken: list[tuple[str, str, Manifest, Path]] = []
    while True:
        job = client.get(f"/api/imports/{job_id}").json()
        if job["status"] in TERMINAL:
            break
        path = tmp_path / f"during-{len(taken)}.zip"
        manifest, _size = service.back_up_to(database, path)
        taken.append((job["status"], job["phase"], manifest, path))
    assert job["status"] == "completed", job
    after = products(database)
    assert len(after) > len(before) + ROWS * 0.9

    during = [entry for entry in taken if entry[0] == "running"]
    assert during, f"no backup was taken while the import ran: {taken}"
    for _status, phase, manifest, _path in taken:
        assert manifest.contents.products in (len(before), len(after)), (phase, manifest)
    # The last backup taken while the import ran (the closest to its merge), restored whole.
    _status, phase, manifest, path = during[-1]
    service.restore(target_settings, target, path, replace=False, confirm=never_asked)
    restored = products(target)
    assert len(restored) == manifest.contents.products
    assert restored in (before, after), f"the backup taken at {phase!r} holds half an import"
    seen = Counter((entry[1], entry[2].contents.products) for entry in during)
    print(
        f"{len(taken)} backups, while running: {dict(seen)}; "
        f"restored the one at {phase!r} with {len(restored):,} products"
    )
