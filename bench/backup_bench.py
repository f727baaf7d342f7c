"""Backup and restore benchmark: seconds and sizes of catalogues of given sizes, on both databases.

    python bench/backup_bench.py [--rows 100000 500000] [--skip-postgres] [--skip-sqlite]

For each database and size it imports a sample catalogue with `product-importer import` (the real
pipeline, so the database holds the search index and the import's change records as a user's
would), then times, in this process:
  backup         service.back_up_to: SQLite's backup API or pg_dump, into the zip with its manifest
  restore        into an empty database in a new home (SQLite file; PostgreSQL: pg_restore directly)
  replace        the same backup over that catalogue again (PostgreSQL: into a scratch database,
                 then swapped in by renaming)
and reports the database's size, the backup file's size, and the products counted afterwards.
Generated files live under /tmp/pi-bench (BENCH_DIR) and are reused between runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from product_importer import migrate, sampledata, wiring
from product_importer.backups import service
from product_importer.db import Database
from product_importer.settings import Settings

WORK = Path(os.environ.get("BENCH_DIR", "/tmp/pi-bench"))
PG_ADMIN = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def sample(rows: int) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"sample-{rows}.csv"
    if not path.exists():
        sampledata.write_file(path, sampledata.Options(rows=rows))
    return path


def fresh_database(kind: str, home: Path, name: str) -> str:
    """The URL of a new, empty database of `kind` for the bench (replacing any left over)."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, mode=0o700)
    if kind == "sqlite":
        return f"sqlite:///{home / 'products.db'}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        leftovers = connection.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :name"), {"name": f"{name}%"}
        ).scalars()
        for leftover in list(leftovers):
            connection.execute(text(f'DROP DATABASE "{leftover}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def settings_for(home: Path, url: str) -> Settings:
    return Settings(_env_file=None, home=home, database_url=url)  # type: ignore[call-arg]


def database_bytes(database: Database) -> int:
    if database.dialect == "sqlite":
        path = Path(str(database.engine.url.database))
        return sum(
            Path(f"{path}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if Path(f"{path}{suffix}").exists()
        )
    with database.engine.connect() as connection:
        return int(
            connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        )


def products(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM products")).scalar_one())


def run(kind: str, rows: int) -> dict[str, object]:
    csv = sample(rows)
    home = WORK / f"backup-{kind}-{rows}"
    url = fresh_database(kind, home / "source", f"pi_backup_bench_{rows}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODUCT_IMPORTER_")}
    env |= {"PRODUCT_IMPORTER_HOME": str(home / "source"), "DATABASE_URL": url}
    env.pop("BROKER_URL", None)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "product_importer", "import", str(csv)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    import_seconds = time.monotonic() - started

    source = Database(url)
    out = home / "backup.zip"
    out.unlink(missing_ok=True)
    started = time.monotonic()
    manifest, size = service.back_up_to(source, out)
    backup_seconds = time.monotonic() - started
    source_bytes = database_bytes(source)
    source.dispose()

    target_url = fresh_database(kind, home / "target", f"pi_backup_bench_{rows}_target")
    target_settings = settings_for(home / "target", target_url)
    target = Database(target_url)
    started = time.monotonic()
    service.restore(target_settings, target, out, replace=False, confirm=lambda _plan: True)
    restore_seconds = time.monotonic() - started
    started = time.monotonic()
    service.restore(target_settings, target, out, replace=True, confirm=lambda _plan: True)
    replace_seconds = time.monotonic() - started
    restored = products(target)
    assert migrate.pending(target) == []
    target.dispose()
    assert restored == manifest.contents.products, (restored, manifest.contents.products)
    return {
        "database": kind,
        "rows": rows,
        "products": restored,
        "import_s": import_seconds,
        "database_mb": source_bytes / 1e6,
        "backup_s": backup_seconds,
        "backup_mb": size / 1e6,
        "restore_s": restore_seconds,
        "replace_s": replace_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 500_000])
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    wiring.connect()
    skipped = {"sqlite": args.skip_sqlite, "postgresql": args.skip_postgres}
    kinds = [kind for kind, skip in skipped.items() if not skip]
    print(
        f"{'database':<11} {'products':>9} {'db MB':>8} {'backup s':>9} {'file MB':>8} "
        f"{'restore s':>10} {'replace s':>10}   (import s)",
        flush=True,
    )
    for kind in kinds:
        for rows in args.rows:
            r = run(kind, rows)
            print(
                f"{r['database']:<11} {r['products']:>9,} {r['database_mb']:>8.1f} "
                f"{r['backup_s']:>9.1f} {r['backup_mb']:>8.1f} {r['restore_s']:>10.1f} "
                f"{r['replace_s']:>10.1f}   ({r['import_s']:.0f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
