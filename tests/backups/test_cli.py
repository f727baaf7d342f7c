"""`product-importer backup` and `restore` as a user runs them (subprocesses), on both databases:
hostile arguments get one clear sentence and a non-zero exit, never a traceback; replacing a
catalogue asks first and names what is lost."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from product_importer import migrate
from product_importer.db import Database
from tests.backups.conftest import count, empty_database
from tests.factories import make_product, make_user
from tests.processes import cli_env, run_cli


def _url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def _clean(result: object) -> str:
    output = f"{result.stdout}{result.stderr}"  # type: ignore[attr-defined]
    assert "Traceback" not in output, output
    return output


@pytest.fixture
def source_env(database: Database, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment for the test database, with a catalogue in it."""
    for number in range(30):
        make_product(database, f"SKU-{number}")
    make_user(database, "alice")
    return cli_env(tmp_path / "source", _url(database))


def test_backup_then_restore_into_an_empty_database(
    database: Database, source_env: dict[str, str], tmp_path: Path
) -> None:
    made = run_cli("backup", env=source_env)
    assert made.returncode == 0, _clean(made)
    assert "Backup written to" in made.stdout and "30 products" in made.stdout
    [path] = (tmp_path / "source" / "backups").glob("*.zip")

    out = tmp_path / "elsewhere.zip"
    copied = run_cli("backup", "--out", str(out), env=source_env)
    assert copied.returncode == 0, _clean(copied)
    assert out.stat().st_mode & 0o777 == 0o600
    again = run_cli("backup", "--out", str(out), env=source_env)
    assert again.returncode == 2 and "exists already" in _clean(again)
    into_folder = run_cli("backup", "--out", str(tmp_path), env=source_env)
    assert into_folder.returncode == 2 and "is a folder" in _clean(into_folder)

    with empty_database(database.dialect, tmp_path / "target") as target:
        env = cli_env(tmp_path / "target", _url(target))
        restored = run_cli("restore", str(path), env=env)
        assert restored.returncode == 0, _clean(restored)
        assert "Restored the backup of" in restored.stdout
        assert count(target, "products") == 30


def test_replacing_a_catalogue_asks_and_names_what_is_lost(
    database: Database, source_env: dict[str, str], tmp_path: Path
) -> None:
    assert run_cli("backup", env=source_env).returncode == 0
    [path] = (tmp_path / "source" / "backups").glob("*.zip")
    with empty_database(database.dialect, tmp_path / "target") as target:
        migrate.upgrade(target)
        for number in range(5):
            make_product(target, f"OTHER-{number}")
        env = cli_env(tmp_path / "target", _url(target))
        target.dispose()  # a PostgreSQL database is swapped only while nobody else uses it

        refused = run_cli("restore", str(path), env=env)
        assert refused.returncode == 2
        assert "not empty: it holds 5 products" in _clean(refused)
        assert "--replace" in refused.stderr

        declined = run_cli("restore", str(path), "--replace", env=env, input_text="n\n")
        assert declined.returncode == 1, _clean(declined)
        assert "holds 5 products, 0 change sets, 0 users and 0 webhook endpoints" in (
            declined.stderr
        )
        assert "what is there now is lost" in declined.stderr
        assert "Nothing was restored" in declined.stderr
        assert count(target, "products") == 5

        no_answer = run_cli("restore", str(path), "--replace", env=env, input_text="")
        assert no_answer.returncode == 1 and count(target, "products") == 5
        target.dispose()

        accepted = run_cli("restore", str(path), "--replace", env=env, input_text="y\n")
        assert accepted.returncode == 0, _clean(accepted)
        assert count(target, "products") == 30
        target.dispose()

        scripted = run_cli("restore", str(path), "--replace", "--yes", env=env)
        assert scripted.returncode == 0, _clean(scripted)
        assert "Replace the database" not in scripted.stderr
        assert count(target, "products") == 30


def test_hostile_arguments_get_a_clear_refusal(
    database: Database, source_env: dict[str, str], tmp_path: Path
) -> None:
    assert run_cli("backup", env=source_env).returncode == 0
    [good] = (tmp_path / "source" / "backups").glob("*.zip")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    not_a_backup = tmp_path / "products.csv"
    not_a_backup.write_text("sku,name\nA,B\n")
    other = "sqlite" if database.dialect == "postgresql" else "postgresql"
    with empty_database(other, tmp_path / "other") as elsewhere:
        migrate.upgrade(elsewhere)
        made = run_cli("backup", env=cli_env(tmp_path / "other", _url(elsewhere)))
        assert made.returncode == 0, _clean(made)
    [other_kind] = (tmp_path / "other" / "backups").glob("*.zip")

    with empty_database(database.dialect, tmp_path / "target") as target:
        env = cli_env(tmp_path / "target", _url(target))
        for arguments, message in (
            ([str(tmp_path / "missing.zip")], "does not exist"),
            ([str(tmp_path)], "is a folder"),
            ([str(not_a_backup)], "is not a Product Importer backup"),
            ([str(truncated)], "is cut short or damaged"),
            ([str(other_kind)], "is a backup of a"),
            ([], "Missing argument 'file'"),
        ):
            result = run_cli("restore", *arguments, env=env)
            assert result.returncode == 2, (arguments, result.stdout, result.stderr)
            assert message in _clean(result), (arguments, result.stderr)
        with target.engine.connect() as connection:
            assert not service_tables(connection)


def service_tables(connection: object) -> set[str]:
    from product_importer.backups import inventory

    return inventory.table_names(connection)  # type: ignore[arg-type]


def test_without_pg_dump_the_backup_says_so_and_leaves_no_file(
    database: Database, source_env: dict[str, str], tmp_path: Path
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite needs no tool of its own")
    env = dict(source_env, PATH=str(Path(sys.executable).parent))  # no pg_dump there
    assert not any(os.access(Path(p) / "pg_dump", os.X_OK) for p in env["PATH"].split(":"))
    result = run_cli("backup", env=env)
    assert result.returncode == 1
    assert "pg_dump was not found on PATH" in _clean(result)
    assert "postgresql-client" in result.stderr
    folder = tmp_path / "source" / "backups"
    assert [p.name for p in folder.glob("*.zip*")] == []
    assert [p.suffixes[-2:] for p in folder.glob("*.failed.json")] == [[".failed", ".json"]]
