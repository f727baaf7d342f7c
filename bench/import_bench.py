"""Import benchmark: our end-to-end import against bare floors, measured in the same run.

    python bench/import_bench.py [--rows 500000] [--large-rows 2000000] [--skip-postgres]
                                 [--skip-sqlite]

For each database it measures:
  floor     SQLite: csv.reader + one executemany upsert; PostgreSQL: psql \\copy into a staging
            table + one INSERT ... ON CONFLICT. Into an empty catalogue, then with every row an
            update.
  ours      the real server (`product-importer serve` in a subprocess), timed from the start of
            the HTTP upload to the job's `completed`, same two cases.
It also reports the server's peak RSS for each run (VmHWM), the p95 latency of
GET /api/products?page=1 while an import runs, the longest gap between progress events on the
SSE stream, the delay from `completed` until a search finds the file's last row, and, from
`completed` until the search index has caught up with the import, how long that took and the
p95 of the products page's searches meanwhile. Generated files live under /tmp/pi-bench and are
reused between runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from product_importer import sampledata

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("BENCH_DIR", "/tmp/pi-bench"))
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def generate(rows: int) -> tuple[Path, Path]:
    """The catalogue file and a variant with the same SKUs and every name changed."""
    WORK.mkdir(parents=True, exist_ok=True)
    base = WORK / f"sample-{rows}.csv"
    changed = WORK / f"sample-{rows}-changed.csv"
    if not base.exists():
        sampledata.write_file(base, sampledata.Options(rows=rows))
    if not changed.exists():
        with base.open(newline="") as src, changed.open("w", newline="") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow(next(reader))
            for name, sku, description in reader:
                writer.writerow([name + " II", sku, description])
    return base, changed


# ---------------------------------------------------------------- floors


def sqlite_floor(files: list[Path], app_schema: bool = False) -> list[float]:
    """The bare floor; with app_schema, the same statement into our migrated `products` table
    (with every index the app keeps), and the changed rows into its search structure's fresh
    set in the same transaction: the simplest script that leaves our schema as an import does
    (findable at once; the index catches up afterwards)."""
    path = WORK / "floor.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if app_schema:
        migrate_app_schema(f"sqlite:///{path}")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    if not app_schema:
        db.execute(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, "
            "sku_key TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL, "
            "active INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        db.execute("CREATE UNIQUE INDEX ix_products_sku_key ON products (sku_key)")
    times: list[float] = []
    for file in files:
        start = time.perf_counter()
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            now = f"2026-01-01 00:00:{len(times):02d}"
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO products (sku, sku_key, name, description, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sku_key) DO UPDATE SET sku = excluded.sku,"
                " name = excluded.name, description = excluded.description,"
                " updated_at = excluded.updated_at",
                ((r[1], r[1].strip().casefold(), r[0], r[2], now, now) for r in reader),
            )
            if app_schema:  # findable at once: the written rows into the fresh set
                db.execute(
                    "INSERT OR REPLACE INTO search_fresh (product_id, document) "
                    "SELECT id, lower(sku || ' ' || name || ' ' || description) FROM products "
                    "WHERE updated_at = ?",
                    (now,),
                )
            db.execute("COMMIT")
        times.append(time.perf_counter() - start)
    db.close()
    return times


def migrate_app_schema(url: str) -> None:
    from product_importer import migrate
    from product_importer.db import Database

    database = Database(url)
    migrate.upgrade(database)
    database.dispose()


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)


def postgres_floor(
    url: str, files: list[Path], app_schema: bool = False
) -> list[tuple[float, float]]:
    table = "products" if app_schema else "floor_products"
    psql(url, "DROP TABLE IF EXISTS floor_products, floor_staging")
    if app_schema:
        migrate_app_schema(url.replace("postgresql://", "postgresql+psycopg://"))
    else:
        psql(
            url,
            "CREATE TABLE floor_products (id bigserial PRIMARY KEY, sku text NOT NULL, "
            "sku_key text NOT NULL UNIQUE, name text NOT NULL, description text NOT NULL, "
            "active boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now())",
        )
    results = []
    for file in files:
        psql(url, "DROP TABLE IF EXISTS floor_staging")
        psql(url, "CREATE UNLOGGED TABLE floor_staging (name text, sku text, description text)")
        start = time.perf_counter()
        psql(url, f"\\copy floor_staging FROM '{file}' WITH (FORMAT csv, HEADER true)")
        copied = time.perf_counter()
        # DISTINCT ON: ON CONFLICT cannot touch one row twice, and files repeat SKUs.
        upsert = (
            f"INSERT INTO {table} (sku, sku_key, name, description, active, created_at, "
            "updated_at) SELECT DISTINCT ON (lower(sku)) sku, lower(sku), name, description, "
            "true, now(), now() FROM floor_staging ORDER BY lower(sku) "
            "ON CONFLICT (sku_key) DO UPDATE SET sku = excluded.sku, name = excluded.name, "
            "description = excluded.description, updated_at = now()"
        )
        if app_schema:  # findable at once: the written rows into the fresh set, same statement
            upsert = (
                f"WITH u AS ({upsert} RETURNING id, sku, name, description) "
                "INSERT INTO search_fresh (product_id, document) "
                "SELECT id, lower(sku || ' ' || name || ' ' || description) FROM u "
                "ON CONFLICT (product_id) DO UPDATE SET document = excluded.document"
            )
        psql(url, upsert)
        results.append((copied - start, time.perf_counter() - copied))
    psql(url, "DROP TABLE IF EXISTS floor_products, floor_staging")
    return results


# ---------------------------------------------------------------- our server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "product_importer", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def reset_peak_rss(pid: int) -> None:
    """Forget a process's peak so far (clear_refs 5 resets VmHWM), so a later reading is of what
    follows: the start-up peak (argon2 hashes the first admin password with 64 MiB) is not the
    import's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Server:
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "product_importer", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset_peak_rss(self) -> None:
        assert self.process is not None
        reset_peak_rss(self.process.pid)

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        return peak_rss_mb(self.process.pid)

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=60)


def follow_events(url: str, token: str, job_id: int, gaps: list[float]) -> None:
    """Read the SSE stream, recording the time between consecutive events."""
    headers = {"Authorization": f"Bearer {token}"}
    last = time.monotonic()
    with httpx.stream(
        "GET", f"{url}/api/imports/{job_id}/events", headers=headers, timeout=600
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                now = time.monotonic()
                gaps.append(now - last)
                last = now


def poll_products(url: str, token: str, stop: threading.Event, latencies: list[float]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        while not stop.is_set():
            start = time.perf_counter()
            response = client.get(f"{url}/api/products?page=1")
            if response.status_code == 404:
                return  # the products API is not there yet
            latencies.append(time.perf_counter() - start)
            stop.wait(0.05)


def last_row(file: Path) -> tuple[str, str]:
    """The file's last row (name, sku): the last one an import writes."""
    with file.open(newline="", encoding="utf-8") as handle:
        *_, last = csv.reader(handle)
    return last[0], last[1]


def search_delay(url: str, token: str, file: Path) -> float:
    """Seconds from `completed` until a name search finds the file's last row: 0 when the
    first search finds it. The SKU narrows the page to that product; the name is a text
    search, answered from the index and the fresh set together."""
    name, sku = last_row(file)
    start = time.perf_counter()
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for attempt in range(4500):
            page = client.get(f"{url}/api/products", params={"name": name, "sku": sku}).json()
            if page["items"]:
                return 0.0 if attempt == 0 else time.perf_counter() - start
            time.sleep(0.2)
    return float("inf")


def catch_up_searches(file: Path) -> list[dict[str, str]]:
    """Searches of each kind the products page sends, with terms from the file: a rare word
    (the last row's name), a common one, a column filter, two words, a SKU prefix and a
    description term; each with the default sort and one sorted by name."""
    name, sku = last_row(file)
    words = name.split()
    rare, common = words[-1], words[0]
    searches = [
        {"q": rare},
        {"q": common},
        {"name": " ".join(words[:2])},
        {"q": f"{common} {rare}"},
        {"sku": sku[:4] + "*"},
        {"description": "the"},
    ]
    return searches + [{**search, "sort": "name"} for search in searches]


def watch_catch_up(url: str, token: str, file: Path, limit_s: float = 600) -> dict[str, Any]:
    """From `completed` until the index has caught up (`search_pending` false): the catalogue
    page's searches in turn, one at a time; their p95 and slowest, and the catch-up's time."""
    searches = catch_up_searches(file)
    latencies: list[float] = []
    start = time.perf_counter()
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        while time.perf_counter() - start < limit_s:
            for search in searches:
                began = time.perf_counter()
                page = client.get(f"{url}/api/products", params=search)
                page.raise_for_status()
                latencies.append(time.perf_counter() - began)
            if not page.json()["search_pending"]:
                break
    caught_up = time.perf_counter() - start
    return {
        "catch_up_s": caught_up,
        "search_p95_ms": statistics.quantiles(latencies, n=20)[18] * 1000,
        "search_max_ms": max(latencies) * 1000,
        "searches": len(latencies),
    }


def upload_and_wait(
    client: httpx.Client, base: str, file: Path, poll_s: float = 0.02
) -> tuple[dict[str, Any], float]:
    """POST the file to /api/imports, then poll its job until it has ended: the job's last
    state and the seconds from the upload's start."""
    start = time.perf_counter()
    with file.open("rb") as handle:
        response = client.post(
            f"{base}/api/imports", files={"file": (file.name, handle, "text/csv")}
        )
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        job: dict[str, Any] = client.get(f"{base}/api/imports/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job, time.perf_counter() - start
        time.sleep(poll_s)


def import_through_api(server: Server, token: str, file: Path) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    gaps: list[float] = []
    stop = threading.Event()
    server.reset_peak_rss()
    start = time.perf_counter()
    with file.open("rb") as handle, httpx.Client(headers=headers, timeout=600) as client:
        response = client.post(
            f"{server.url}/api/imports", files={"file": (file.name, handle, "text/csv")}
        )
        response.raise_for_status()
        job_id = response.json()["id"]
        poller = threading.Thread(target=poll_products, args=(server.url, token, stop, latencies))
        follower = threading.Thread(target=follow_events, args=(server.url, token, job_id, gaps))
        poller.start()
        follower.start()
        while True:
            job = client.get(f"{server.url}/api/imports/{job_id}").json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.02)
    elapsed = time.perf_counter() - start
    stop.set()
    poller.join()
    follower.join(timeout=30)
    if job["status"] != "completed":
        raise RuntimeError(f"import failed: {json.dumps(job)}")
    return {
        "search_delay": search_delay(server.url, token, file),
        "seconds": elapsed,
        "job": job,
        "peak_rss_mb": server.peak_rss_mb(),
        "p95_products_ms": statistics.quantiles(latencies, n=20)[18] * 1000
        if len(latencies) >= 20
        else None,
        "max_event_gap": max(gaps[1:], default=None),
    }


def settle(env: dict[str, str]) -> None:
    """What autovacuum and checkpoints do between imports in real use: the previous full
    update's dead row versions vacuumed away (PostgreSQL), the write-ahead log checkpointed
    (SQLite), so the quiet run starts from a settled catalogue."""
    url = env.get("DATABASE_URL")
    if url:
        psql(url, "VACUUM ANALYZE products, product_search, search_fresh")
    else:
        db = sqlite3.connect(Path(env["PRODUCT_IMPORTER_HOME"]) / "products.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    time.sleep(2)


def prepared(database_url: str | None, label: str) -> tuple[dict[str, str], str]:
    """A fresh home (and catalogue) for the server: its environment and an API token."""
    home = WORK / f"home-{label}"
    subprocess.run(["rm", "-rf", str(home)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODUCT_IMPORTER_")}
    env.pop("DATABASE_URL", None)
    env["PRODUCT_IMPORTER_HOME"] = str(home)
    if database_url:
        env["DATABASE_URL"] = database_url
    cli(env, "migrate")
    return env, cli(env, "token", "create", "bench").splitlines()[-1]


def ours(database_url: str | None, base: Path, changed: Path, label: str) -> dict[str, Any]:
    """Four imports through a running server: the file into an empty catalogue, then searches
    until the index has caught up; the variant with every name changed, and at once (started
    the moment it completes) the file again: back to back, with the catch-up watched after it;
    then, the catalogue settled, the variant again: every row an update, on a quiet catalogue.
    """
    env, token = prepared(database_url, label)
    with Server(env) as server:
        empty = import_through_api(server, token, base)
        empty.update(watch_catch_up(server.url, token, base))
        import_through_api(server, token, changed)
        back_to_back = import_through_api(server, token, base)
        back_to_back.update(watch_catch_up(server.url, token, base))
    settle(env)
    with Server(env) as server:
        quiet = import_through_api(server, token, changed)
        quiet.update(watch_catch_up(server.url, token, changed))
    return {"empty": empty, "all updates": quiet, "back to back": back_to_back}


def fresh_postgres_database(name: str) -> str:
    psql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(PG_ADMIN, f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


# ---------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument(
        "--large-rows",
        type=int,
        default=2_000_000,
        help="rows of the file for the flat-memory check (0 to skip)",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    base, changed = generate(args.rows)
    size_mb = base.stat().st_size / 1e6
    print(f"file: {base} ({args.rows:,} rows, {size_mb:.0f} MB); machine: {os.cpu_count()} cores")
    rows: list[tuple[str, str, float, float, dict[str, Any]]] = []

    def add(database: str, bare: list[float], app: list[float], measured: dict[str, Any]) -> None:
        # The back-to-back run is an all-updates import: it is held to the same floors.
        for case, bare_s, app_s in [
            ("empty", bare[0], app[0]),
            ("all updates", bare[1], app[1]),
            ("back to back", bare[1], app[1]),
        ]:
            rows.append((database, case, bare_s, app_s, measured[case]))

    if not args.skip_sqlite:
        add(
            "SQLite",
            sqlite_floor([base, changed]),
            sqlite_floor([base, changed], app_schema=True),
            ours(None, base, changed, "sqlite"),
        )
    if not args.skip_postgres:
        pg_floor = postgres_floor(fresh_postgres_database("pi_bench_floor"), [base, changed])
        pg_app = postgres_floor(
            fresh_postgres_database("pi_bench_floor_app"), [base, changed], app_schema=True
        )
        add(
            "PostgreSQL",
            [copy_s + merge_s for copy_s, merge_s in pg_floor],
            [copy_s + merge_s for copy_s, merge_s in pg_app],
            ours(fresh_postgres_database("pi_bench_ours"), base, changed, "postgres"),
        )

    print()
    print("floor: csv + one upsert into a bare table (only the SKU key). app floor: the same")
    print("into our migrated products table with all its indexes, and the written rows into")
    print("its search fresh set in the same transaction. ours: HTTP upload start to `completed`.")
    print("back to back: the all-updates import started the moment the previous one completed.")
    print("found s: from `completed` until a name search finds the file's last row.")
    print("catch-up: from `completed` until the index holds every row, searching all along;")
    print("search p95/max ms: the products page's searches during that time.")
    print(
        f"{'database':<11} {'catalogue':<13} {'floor s':>8} {'app floor':>9} {'ours s':>7} "
        f"{'ratio':>6} {'vs app':>6} {'rows/s':>8} {'peak RSS MB':>11} {'p95 list ms':>11} "
        f"{'max gap s':>9} {'found s':>7} {'catch-up s':>10} {'search p95/max ms':>17}"
    )
    for db, case, bare, app, measured in rows:
        seconds = measured["seconds"]
        searching = f"{measured['search_p95_ms']:.0f}/{measured['search_max_ms']:.0f}"
        print(
            f"{db:<11} {case:<13} {bare:>8.2f} {app:>9.2f} {seconds:>7.2f} "
            f"{seconds / bare:>5.2f}x {seconds / app:>5.2f}x {args.rows / seconds:>8,.0f} "
            f"{measured['peak_rss_mb']:>11.0f} {_ms(measured['p95_products_ms']):>11} "
            f"{_s(measured['max_event_gap']):>9} {measured['search_delay']:>7.1f} "
            f"{measured['catch_up_s']:>10.1f} {searching:>17}"
        )
    for db in sorted({row[0] for row in rows}):
        by_case = {case: measured["seconds"] for name, case, _, _, measured in rows if name == db}
        print(
            f"{db}: back to back {by_case['back to back']:.2f} s against quiet "
            f"{by_case['all updates']:.2f} s "
            f"({(by_case['back to back'] / by_case['all updates'] - 1) * 100:+.0f}%)"
        )

    if args.large_rows and not args.skip_sqlite:
        large, _ = generate(args.large_rows)
        small_rss = rows[0][4]["peak_rss_mb"]
        env, token = prepared(None, "sqlite-large")
        with Server(env) as server:
            big = import_through_api(server, token, large)
        print(
            f"\nflat memory (SQLite): {args.rows:,} rows peak RSS {small_rss:.0f} MB; "
            f"{args.large_rows:,} rows peak RSS {big['peak_rss_mb']:.0f} MB "
            f"({(big['peak_rss_mb'] / small_rss - 1) * 100:+.0f}%), "
            f"{big['seconds']:.1f} s ({args.large_rows / big['seconds']:,.0f} rows/s)"
        )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
