"""Products at scale: list/search latency, export throughput, delete-all, index write cost.

Builds a catalogue of --rows products (default 1,000,000) on SQLite (a file under /tmp) and on
PostgreSQL (a scratch database, dropped afterwards), then prints, per database:

- p95 server time of the list API's service call for the issue's queries, next to a bare
  primary-key query measured in the same run (the floor on this machine, right now);
- export rows/s and the exporting process's peak RSS, next to a bare dump (COPY TO on
  PostgreSQL, a plain cursor + csv.writer on SQLite);
- delete-all seconds, and list latency while it runs next to before it;
- what the sort indexes of migration 0004 cost a 500,000-row set-based write, next to the same
  write into a table with only the SKU key, and how long the search catch-up takes to move the
  whole catalogue from the fresh set into the index (`catalog.search.catchup`).

    .venv/bin/python bench/products_bench.py [--rows 1000000] [--only sqlite|postgresql]

Timings are noisy on a shared 2-core machine: compare each figure with its baseline.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from product_importer import migrate, sampledata, wiring
from product_importer.catalog import export as catalog_export
from product_importer.catalog import service as catalog_service
from product_importer.catalog import tasks as catalog_tasks
from product_importer.catalog.models import sku_key
from product_importer.catalog.schemas import ProductFilters, ProductSort
from product_importer.catalog.search import catchup, documents
from product_importer.db import Database
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext

# Every domain registers its tasks, as the app and the CLI do at start-up.
wiring.connect()

PG_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TARGET_MS = 50.0
WRITE_ROWS = 500_000
REPEATS = 40
CHUNK = 100_000
# Words of the sample-data generator: product words in names, everyday words in descriptions.
NAMES = ["chair", "lamp", "kettle", "mirror", "basket", "sofa", "candle", "vase"]
WORDS = ["garden", "kitchen", "window", "market", "winter", "texture", "polish", "storage"]


# --- data -----------------------------------------------------------------------------------


def catalogue_csv(rows: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"pi_products_bench_sample_{rows}.csv"
    if not path.exists():
        print(f"generating {rows:,} rows into {path} ...", flush=True)
        sampledata.write_file(path, sampledata.Options(rows=rows, dup_rate=0.0))
    return path


def read_rows(path: Path) -> list[tuple[str, str, str, str, bool, str]]:
    """(sku, sku_key, name, description, active, updated_at), one per distinct SKU key."""
    seen: set[str] = set()
    rows = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for index, (name, sku, description) in enumerate(reader):
            key = sku_key(sku)
            if key in seen:
                continue
            seen.add(key)
            stamp = f"2024-{1 + index % 12:02d}-{1 + index % 28:02d} 10:{index % 60:02d}:00.000000"
            rows.append((sku, key, name, description, index % 20 != 0, stamp))
    return rows


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def sqlite_load(database: Database, rows: list[Any], table: str) -> float:
    """Stage with executemany, then one set-based INSERT per chunk (the import's shape)."""
    raw = database.engine.raw_connection()
    db: Any = raw.driver_connection
    db.isolation_level = None
    db.execute("PRAGMA cache_size=-65536")
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staging (sku, sku_key, name, description, active, "
        "updated_at)"
    )
    elapsed = 0.0
    for chunk in _chunks(rows, CHUNK):
        db.execute("DELETE FROM temp.staging")
        db.executemany("INSERT INTO temp.staging VALUES (?, ?, ?, ?, ?, ?)", chunk)
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            f"INSERT INTO {table} (sku, sku_key, name, description, active, created_at, "
            "updated_at) SELECT sku, sku_key, name, description, active, updated_at, updated_at "
            "FROM temp.staging"
        )
        db.execute("COMMIT")
        elapsed += time.perf_counter() - started
    db.execute("DROP TABLE temp.staging")
    raw.close()
    return elapsed


def pg_load(database: Database, rows: list[Any], table: str) -> float:
    """COPY into a staging table, then one set-based INSERT per chunk (the import's shape)."""
    raw = database.engine.raw_connection()
    db: Any = raw.driver_connection
    db.autocommit = True
    elapsed = 0.0
    with db.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staging (sku text, sku_key text, name text, "
            "description text, active boolean, updated_at timestamptz)"
        )
        for chunk in _chunks(rows, CHUNK):
            cursor.execute("TRUNCATE staging")
            with cursor.copy("COPY staging FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
            started = time.perf_counter()
            cursor.execute(
                f"INSERT INTO {table} (sku, sku_key, name, description, active, created_at, "
                "updated_at) SELECT sku, sku_key, name, description, active, updated_at, "
                "updated_at FROM staging"
            )
            elapsed += time.perf_counter() - started
        cursor.execute("DROP TABLE staging")
    raw.close()
    return elapsed


def plain_table(database: Database) -> None:
    """A products twin with only the 0001 indexes: the baseline for the write cost."""
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS products_plain"))
        if database.dialect == "sqlite":
            connection.execute(
                text(
                    "CREATE TABLE products_plain (id INTEGER PRIMARY KEY, sku VARCHAR(255) NOT "
                    "NULL, sku_key VARCHAR(765) NOT NULL UNIQUE, name VARCHAR(500) NOT NULL, "
                    "description TEXT NOT NULL, active BOOLEAN NOT NULL, created_at DATETIME, "
                    "updated_at DATETIME)"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE TABLE products_plain (LIKE products INCLUDING DEFAULTS); "
                    "ALTER TABLE products_plain ADD PRIMARY KEY (id); "
                    "CREATE SEQUENCE products_plain_id OWNED BY products_plain.id; "
                    "ALTER TABLE products_plain ALTER id SET DEFAULT nextval('products_plain_id');"
                    "CREATE UNIQUE INDEX ON products_plain (sku_key)"
                )
            )


# --- measuring ------------------------------------------------------------------------------


def p95(samples: list[float]) -> float:
    return (
        statistics.quantiles(samples, n=20, method="inclusive")[18]
        if len(samples) > 1
        else samples[0]
    )


def timed(func: Callable[[], Any], repeats: int = REPEATS) -> list[float]:
    func()  # warm the cache, as a server that has been running would be
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def list_call(
    database: Database, settings: Settings, cycle: list[dict[str, Any]]
) -> Callable[[], Any]:
    state = {"i": 0}

    def call() -> Any:
        params = dict(cycle[state["i"] % len(cycle)])
        state["i"] += 1
        page = params.pop("page", 1)
        sort = ProductSort(params.pop("sort", "sku"))
        with database.session() as session:
            return catalog_service.list_page(
                session,
                ProductFilters(**params),
                sort,
                page,
                50,
                settings.products_exact_count_limit,
            )

    return call


def bench_queries(
    database: Database, settings: Settings, prefixes: list[str], rare: list[str]
) -> list[str]:
    def bare() -> None:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT * FROM products ORDER BY id LIMIT 50")).all()

    baseline = p95(timed(bare))
    lines = [f"  {'baseline: bare SELECT … ORDER BY id LIMIT 50':<44} p95 {baseline:7.1f} ms"]
    cases: list[tuple[str, list[dict[str, Any]]]] = [
        ("first page, unfiltered", [{}]),
        ("sku prefix", [{"sku": p + "*"} for p in prefixes]),
        ("name contains a word", [{"name": n} for n in NAMES]),
        ("q free text (one word)", [{"q": w} for w in WORDS]),
        ("q free text (two words)", [{"q": f"{w} {n}"} for w, n in zip(WORDS, NAMES, strict=True)]),
        ("active=false", [{"active": False}]),
        ("deep page (5,000)", [{"page": 5000}]),
        ("deep page (5,000), sort -updated_at", [{"page": 5000, "sort": "-updated_at"}]),
        ("name contains, sort name", [{"name": n, "sort": "name"} for n in NAMES]),
        ("q = one product's whole SKU (rare)", [{"q": sku} for sku in rare]),
    ]
    for label, cycle in cases:
        call = list_call(database, settings, cycle)
        samples = timed(call)
        page = call()
        verdict = "ok" if p95(samples) <= TARGET_MS else f"MISSES {TARGET_MS:.0f} ms"
        total = f"{page.total:,}{' (est.)' if page.total_is_estimate else ''}"
        lines.append(
            f"  {label:<44} p95 {p95(samples):7.1f} ms  max {max(samples):7.1f}  "
            f"total {total:<16} {verdict}"
        )
    return lines


def export_child(url: str, mode: str) -> None:
    """Run in a subprocess so its peak RSS is the export's own."""
    database = Database(url)
    started = time.perf_counter()
    rows = size = 0
    if mode == "app":
        for chunk in catalog_export.stream_csv(database, ProductFilters()):
            size += len(chunk)
            rows += chunk.count(b"\n")  # close enough: descriptions are single-line here
    elif database.dialect == "postgresql":
        raw: Any = database.engine.raw_connection().driver_connection
        with (
            raw.cursor() as cursor,
            cursor.copy(
                "COPY (SELECT name, sku, description, active FROM products ORDER BY id) "
                "TO STDOUT WITH (FORMAT csv, HEADER)"
            ) as copy,
        ):
            for block in copy:
                size += len(block)
                rows += bytes(block).count(b"\n")
    else:
        raw = database.engine.raw_connection().driver_connection
        sink = _Counter()
        writer = csv.writer(sink)
        cursor = raw.execute("SELECT name, sku, description, active FROM products ORDER BY id")
        while batch := cursor.fetchmany(5000):
            writer.writerows(batch)
        rows, size = sink.lines, sink.size
    seconds = time.perf_counter() - started
    # VmHWM is this process's own peak (ru_maxrss would include the forking parent's).
    status = Path("/proc/self/status").read_text()
    peak_mb = (
        int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1]) / 1024
    )
    print(json.dumps({"rows": rows - 1, "seconds": seconds, "bytes": size, "peak_mb": peak_mb}))


class _Counter:
    def __init__(self) -> None:
        self.lines = 1
        self.size = 0

    def write(self, data: str) -> None:
        self.lines += data.count("\n")
        self.size += len(data)


def bench_export(url: str) -> list[str]:
    lines = []
    for mode, label in (("bare", "baseline: bare dump"), ("app", "GET /api/products/export")):
        output = subprocess.run(
            [sys.executable, __file__, "--export-child", url, mode],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        rate = result["rows"] / result["seconds"]
        verdict = "" if mode == "bare" else ("ok" if rate >= 100_000 else "MISSES 100k rows/s")
        lines.append(
            f"  {label:<44} {result['rows']:>9,} rows in {result['seconds']:5.1f} s = "
            f"{rate:>9,.0f} rows/s, {result['bytes'] / 2**20:6.0f} MiB, "
            f"peak RSS {result['peak_mb']:5.0f} MB {verdict}"
        )
    return lines


def bench_delete_all(database: Database, settings: Settings) -> list[str]:
    probe = list_call(database, settings, [{}, {"q": "garden"}, {"sku": "a*"}])
    before = timed(probe, 20)
    with database.session() as session:
        job, _ = catalog_service.start_delete_all(session, "bench")
        job_id = job.id
    during: list[float] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            started = time.perf_counter()
            probe()
            during.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)

    thread = threading.Thread(target=reader)
    thread.start()
    context = TaskContext(database=database, settings=settings)
    started = time.perf_counter()
    catalog_tasks.delete_all(context, job_id=job_id)
    seconds = time.perf_counter() - started
    done.set()
    thread.join()
    with database.session() as session:
        job = catalog_service.get_delete_job(session, job_id)
        status, deleted = job.status, job.deleted
    return [
        f"  delete-all: {status}, {deleted:,} products in {seconds:5.1f} s",
        f"  list while deleting: {len(during)} reads, p95 {p95(during):6.1f} ms, "
        f"max {max(during):6.1f} ms (before: p95 {p95(before):6.1f} ms, "
        f"max {max(before):6.1f} ms)",
    ]


# --- per database ---------------------------------------------------------------------------


def run(dialect: str, rows: list[Any]) -> None:
    print(f"\n== {dialect}: {len(rows):,} products ==", flush=True)
    admin = None
    if dialect == "sqlite":
        path = Path(tempfile.gettempdir()) / f"pi_products_bench_{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
    else:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"pi_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    settings = Settings(_env_file=None, database_url=url, home=Path(tempfile.gettempdir()))  # type: ignore[call-arg]
    try:
        migrate.upgrade(database)
        load = sqlite_load if dialect == "sqlite" else pg_load
        plain_table(database)
        plain = load(database, rows[:WRITE_ROWS], "products_plain")
        with database.engine.begin() as connection:
            connection.execute(text("DROP TABLE products_plain"))
        indexed = load(database, rows[:WRITE_ROWS], "products")
        rest = load(database, rows[WRITE_ROWS:], "products")
        print(
            f"  write {WRITE_ROWS:,} rows set-based: {plain:5.1f} s with the SKU key only, "
            f"{indexed:5.1f} s with 0004's indexes (+{indexed - plain:.1f} s, "
            f"{(indexed - plain) / WRITE_ROWS * 1e6:.0f} µs/row); "
            f"the other {len(rows) - WRITE_ROWS:,} rows took {rest:5.1f} s",
            flush=True,
        )
        document = documents.SQLITE_DOCUMENT if dialect == "sqlite" else documents.PG_DOCUMENT
        with database.session() as session:
            session.execute(text(f"INSERT INTO search_fresh SELECT id, {document} FROM products"))
        started = time.perf_counter()
        catchup.catch_up(database, threading.Event(), turn_seconds=3600)
        print(
            f"  search catch-up of {len(rows):,} fresh products in "
            f"{time.perf_counter() - started:5.1f} s",
            flush=True,
        )
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # What autovacuum / the import's ANALYZE leave behind on a settled catalogue (the
            # search table's GIN pending list merged, as autovacuum does after many inserts).
            if dialect == "postgresql":
                conn.execute(text("VACUUM ANALYZE products"))
                conn.execute(text("VACUUM ANALYZE product_search"))
            else:
                conn.execute(text("ANALYZE"))
        random.seed(7)
        prefixes = [row[1][:5] for row in random.sample(rows, 8)]
        rare = [row[0] for row in random.sample(rows, 8)]
        for line in bench_queries(database, settings, prefixes, rare):
            print(line, flush=True)
        for line in bench_export(url):
            print(line, flush=True)
        for line in bench_delete_all(database, settings):
            print(line, flush=True)
    finally:
        database.dispose()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        elif dialect == "sqlite":
            for suffix in ("", "-wal", "-shm", ".import-lock"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--export-child", nargs=2, metavar=("URL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(*args.export_child)
        return
    rows = read_rows(catalogue_csv(args.rows))
    for dialect in [args.only] if args.only else ["sqlite", "postgresql"]:
        run(dialect, rows)


if __name__ == "__main__":
    main()
