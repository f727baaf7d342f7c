"""`product-importer import FILE`, run as a subprocess against each database."""

from __future__ import annotations

import gzip
from pathlib import Path

from sqlalchemy import func, select

from product_importer.catalog.models import Product
from product_importer.db import Database
from tests.processes import cli_env, run_cli


def env_for(database: Database, home: Path) -> dict[str, str]:
    return cli_env(home, database.engine.url.render_as_string(hide_password=False))


def count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Product)) or 0


def test_import_and_dry_run_from_the_command_line(database: Database, tmp_path: Path) -> None:
    file = tmp_path / "products.csv.gz"
    file.write_bytes(gzip.compress(b"sku,name\nA-1,Alpha\nB-1,Beta\n,No sku\n"))
    env = env_for(database, tmp_path)
    dry = run_cli("import", str(file), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was written" in dry.stdout
    assert "created 2, updated 0, unchanged 0, rejected 1" in dry.stdout
    assert count(database) == 0
    real = run_cli("import", str(file), env=env)
    assert real.returncode == 0, real.stderr
    assert "completed" in real.stdout
    assert "created 2, updated 0, unchanged 0, rejected 1" in real.stdout
    assert count(database) == 2


def test_bad_files_and_arguments_exit_non_zero_with_a_message(
    database: Database, tmp_path: Path
) -> None:
    env = env_for(database, tmp_path)
    missing = run_cli("import", str(tmp_path / "nope.csv"), env=env)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    directory = run_cli("import", str(tmp_path), env=env)
    assert directory.returncode == 2
    image = tmp_path / "photo.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    refused = run_cli("import", str(image), env=env)
    assert refused.returncode == 2
    assert "PNG image, not a CSV file" in refused.stderr
    header_only = tmp_path / "empty.csv"
    header_only.write_bytes(b"sku,name\n")
    failed = run_cli("import", str(header_only), env=env)
    assert failed.returncode == 1
    assert "error: The file has a header but no data rows." in failed.stdout
    for result in (missing, directory, refused, failed):
        assert "Traceback" not in result.stdout + result.stderr
