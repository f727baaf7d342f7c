"""History and undo benchmark: what keeping change records costs, and how fast undo is.

    python bench/changes_bench.py [--rows 500000] [--delete-rows 1000000] [--rounds 3]
                                  [--skip-postgres] [--skip-sqlite]

For each database, in one process and one run:
  import off / on   a ROWS-row import in which every row is an update, with change recording
                    turned off (PRODUCT_IMPORTER_BENCH_RECORD_HISTORY's switch, flipped in
                    process) and then on, alternating for ROUNDS rounds; the ratio of the
                    medians is the cost of history (target <= 1.25). Each run starts from a
                    settled catalogue (PostgreSQL: VACUUM; SQLite: WAL checkpoint).
  undo dry run      the counts for undoing the recorded import (target < 2 s)
  undo              undoing it (target <= the import's own time)
  delete-all        of DELETE_ROWS products, with recording (targets: PostgreSQL < 5 s,
                    SQLite < 19 s), and its undo (target < importing the same rows)
  history p95       GET /api/products/{id}/history's service call for 300 random products,
                    after the imports above (target <= 50 ms)
  peak RSS          of this process (VmHWM), which ran all of the above
The import is the real pipeline (`imports.pipeline.run_import`), the undo and the delete-all the
real task functions; only HTTP is left out. Files live under $BENCH_DIR (/tmp/pi-changes-bench).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from product_importer import migrate, sampledata, wiring
from product_importer.catalog import service as catalog_service
from product_importer.catalog import tasks as catalog_tasks
from product_importer.catalog.models import Product
from product_importer.changes import service as changes_service
from product_importer.changes import tasks as changes_tasks
from product_importer.db import Database
from product_importer.history import recording, repository
from product_importer.imports import pipeline
from product_importer.imports import service as import_service
from product_importer.imports.models import ImportJob
from product_importer.imports.storage import storage_for
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext

# Every domain registers its tasks, as the app and the CLI do at start-up.
wiring.connect()

WORK = Path(os.environ.get("BENCH_DIR", "/tmp/pi-changes-bench"))
PG_ADMIN = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def files(rows: int) -> tuple[Path, Path]:
    """A catalogue without repeated SKUs, and the same SKUs with every name changed."""
    WORK.mkdir(parents=True, exist_ok=True)
    base = WORK / f"products-{rows}.csv"
    changed = WORK / f"products-{rows}-changed.csv"
    if not base.exists():
        sampledata.write_file(base, sampledata.Options(rows=rows, seed=7, dup_rate=0.0))
    if not changed.exists():
        with (
            base.open(newline="", encoding="utf-8") as src,
            changed.open("w", newline="", encoding="utf-8") as dst,
        ):
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow(next(reader))
            for name, sku, description in reader:
                writer.writerow([name + " II", sku, description])
    return base, changed


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(self, url: str, home: Path) -> None:
        self.database = Database(url)
        migrate.upgrade(self.database)
        self.settings = Settings(_env_file=None, home=home, database_url=url)  # type: ignore[call-arg]
        self.storage = storage_for(self.settings, self.database)
        self.context = TaskContext(database=self.database, settings=self.settings)

    def run_import(self, file: Path) -> tuple[float, ImportJob]:
        key = self.storage.new_key(".upload")
        with file.open("rb") as source, self.storage.open_write(key) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
        with self.database.session() as session:
            job_id = import_service.start_import(
                session,
                filename=file.name,
                storage_key=key,
                total_bytes=self.storage.size(key),
                dry_run=False,
                created_by="bench",
            ).id
        started = time.perf_counter()
        pipeline.run_import(self.database, self.storage, job_id)
        seconds = time.perf_counter() - started
        with self.database.session() as session:
            job = session.get(ImportJob, job_id)
            assert job is not None and job.status == "completed", job and job.error
        return seconds, job

    def settle(self) -> None:
        """Start each timed run from the same state: the dead row versions of the previous
        full update vacuumed away (PostgreSQL), the write-ahead log checkpointed (SQLite). In
        real use autovacuum and checkpoints do this between imports; back to back, each run
        found more bloat than the one before (off runs went 16, 18, 24 s)."""
        if self.database.dialect == "postgresql":
            with self.database.engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.execute(text("VACUUM products"))
        else:
            with self.database.engine.connect() as connection:
                connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    def undo(self, change_id: int) -> tuple[float, float, dict[str, int]]:
        with self.database.session() as session:
            started = time.perf_counter()
            counts = repository.dry_run_counts(session, change_id)
            dry = time.perf_counter() - started
            undo_id = changes_service.start_undo(session, change_id, "bench", 30).id
        started = time.perf_counter()
        changes_tasks.run(self.context, undo_id)
        seconds = time.perf_counter() - started
        with self.database.session() as session:
            undo = changes_service.get(session, undo_id)
            assert undo.status == "completed", undo.error
        return dry, seconds, counts

    def delete_all(self) -> tuple[float, int]:
        with self.database.session() as session:
            job, _ = catalog_service.start_delete_all(session, "bench")
            job_id = job.id
        started = time.perf_counter()
        catalog_tasks.delete_all(self.context, job_id)
        seconds = time.perf_counter() - started
        with self.database.session() as session:
            job = catalog_service.get_delete_job(session, job_id)
            assert job.status == "completed" and job.change_id is not None, job.error
            return seconds, job.change_id

    def history_p95(self, samples: int = 300) -> float:
        # Sampled in SQL: a list of a million ids would weigh on the peak RSS this bench reports.
        with self.database.session() as session:
            low, high = session.execute(select(func.min(Product.id), func.max(Product.id))).one()
        rng = random.Random(3)
        picks = [rng.randint(low, high) for _ in range(samples)]
        times = []
        for product_id in picks:
            with self.database.session() as session:
                started = time.perf_counter()
                key = changes_service.product_key(session, product_id)
                if key is not None:  # ids are dense after the imports; skip a rare gap
                    changes_service.history(session, key, 1, 20)
                times.append((time.perf_counter() - started) * 1000)
        return statistics.quantiles(times, n=20)[18]


def _list(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def run(dialect: str, url: str, rows: int, delete_rows: int, rounds: int) -> None:
    home = WORK / f"home-{dialect}"
    home.mkdir(parents=True, exist_ok=True)
    bench = Bench(url, home)
    base, changed = files(rows)
    print(f"\n== {dialect}: {rows:,} rows", flush=True)
    bench.run_import(base)
    # Off and on alternate, each import changing every row back; the medians of several rounds
    # keep one slow run on a shared machine from deciding the ratio.
    offs, ons = [], []
    for _round in range(rounds):
        recording.ENABLED = False
        bench.settle()
        offs.append(bench.run_import(changed)[0])
        recording.ENABLED = True
        bench.settle()
        seconds, job = bench.run_import(base)
        ons.append(seconds)
        assert job.rows_updated == rows and job.change_id is not None
    off, on = statistics.median(offs), statistics.median(ons)
    runs = f"({rounds} runs each: off {_list(offs)}; on {_list(ons)})"
    print(f"import, all updates, history off   {off:7.2f} s   median {runs}")
    ratio = on / off
    print(f"import, all updates, history on    {on:7.2f} s   median, ratio {ratio:.2f} (<= 1.25)")
    bench.settle()
    dry, undo, counts = bench.undo(job.change_id)
    print(f"undo dry run                       {dry:7.2f} s   {counts} (< 2 s)")
    print(f"undo of that import                {undo:7.2f} s   ({undo / on:.2f} x the import)")
    print(f"history p95                        {bench.history_p95():7.1f} ms (<= 50 ms)")
    print(f"peak RSS so far (this process)     {peak_rss_mb():7.0f} MB", flush=True)

    big_base, _ = files(delete_rows)
    bench.delete_all()  # start from an empty catalogue
    import_seconds, _ = bench.run_import(big_base)
    deleted, change_id = bench.delete_all()
    limit = "5 s" if dialect == "postgresql" else "19 s"
    print(f"import of {delete_rows:,} rows           {import_seconds:7.2f} s")
    print(f"delete-all of {delete_rows:,}          {deleted:7.2f} s   (< {limit})")
    _dry, undo_delete, _ = bench.undo(change_id)
    print(f"undo of the delete-all             {undo_delete:7.2f} s   (< the import's time)")
    print(f"peak RSS so far (this process)     {peak_rss_mb():7.0f} MB", flush=True)
    bench.database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--delete-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="off/on import pairs (median)")
    args = parser.parse_args()
    if not args.skip_sqlite:
        path = WORK / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        WORK.mkdir(parents=True, exist_ok=True)
        run("sqlite", f"sqlite:///{path}", args.rows, args.delete_rows, args.rounds)
    if not args.skip_postgres:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"pi_changes_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = admin.url.set(database=name).render_as_string(hide_password=False)
            run("postgresql", url, args.rows, args.delete_rows, args.rounds)
        finally:
            with admin.connect() as connection:
                connection.execute(
                    text(
                        f'DROP DATABASE IF EXISTS "{name}" WITH (FORMAT)'.replace("FORMAT", "FORCE")
                    )
                )
            admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
