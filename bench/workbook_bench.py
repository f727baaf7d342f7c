"""Workbook vs CSV import benchmark: the same rows as .xlsx and as .csv, imported in one run.

    python bench/workbook_bench.py [--rows 500000] [--database-url URL]

Both files are written here (openpyxl's write-only mode for the workbook) and kept under
BENCH_DIR (default /tmp/pi-bench) for the next run. Each import runs `product-importer import`
in a fresh process against a fresh SQLite file (or the given database, emptied first), timed
from start to exit; peak RSS is that process's (ru_maxrss of the child, read by a one-off
parent so no other run counts). The issue's targets: the workbook's peak RSS at most 400 MB,
its time at most 3x the CSV's.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(os.environ.get("BENCH_DIR", "/tmp/pi-bench"))
# Runs one command and prints its own peak RSS in KiB (Linux: ru_maxrss of the children).
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def row(i: int) -> list[str]:
    return [
        f"SKU-{i:07d}",
        f"Product number {i}",
        f"A fine product, number {i}, made of oak and steel; ships in {i % 9 + 1} days.",
        "yes" if i % 5 else "no",
    ]


def write_files(rows: int) -> tuple[Path, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = WORK / f"wb-{rows}.csv", WORK / f"wb-{rows}.xlsx"
    if not csv_path.exists():
        with csv_path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["sku", "name", "description", "active"])
            writer.writerows(row(i) for i in range(rows))
    if not xlsx_path.exists():
        import openpyxl

        started = time.perf_counter()
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("Products")
        sheet.append(["sku", "name", "description", "active"])
        for i in range(rows):
            sheet.append(row(i))
        partial = xlsx_path.with_suffix(".part")
        book.save(partial)
        partial.rename(xlsx_path)
        print(f"wrote {xlsx_path.name} in {time.perf_counter() - started:.0f}s", flush=True)
    return csv_path, xlsx_path


def run_import(file: Path, database_url: str | None, home: Path) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODUCT_IMPORTER_")}
    env.pop("BROKER_URL", None)
    env["PRODUCT_IMPORTER_HOME"] = str(home)
    env["PRODUCT_IMPORTER_LOG_LEVEL"] = "WARNING"
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "product_importer", "import", str(file)]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    code, rss_kib = result.stdout.split()
    if code != "0":
        raise SystemExit(f"import of {file.name} exited {code}: {result.stderr[-500:]}")
    return seconds, int(rss_kib) / 1024


def empty_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM products"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    csv_path, xlsx_path = write_files(args.rows)
    print(
        f"{args.rows:,} rows; csv {csv_path.stat().st_size / 1e6:.1f} MB, "
        f"xlsx {xlsx_path.stat().st_size / 1e6:.1f} MB",
        flush=True,
    )
    results = {}
    for label, file in (("csv", csv_path), ("xlsx", xlsx_path)):
        home = WORK / f"home-{label}-{os.getpid()}"
        home.mkdir(parents=True, exist_ok=True)
        if args.database_url:
            empty_database(args.database_url)
        seconds, rss = run_import(file, args.database_url, home)
        results[label] = (seconds, rss)
        rate = args.rows / seconds
        print(
            f"{label:5} {seconds:7.1f} s  {rate:9,.0f} rows/s  peak RSS {rss:6.0f} MB", flush=True
        )
    ratio = results["xlsx"][0] / results["csv"][0]
    rss_ok = results["xlsx"][1] <= 400
    print(
        f"workbook/csv time {ratio:.2f}x (target <= 3x: {'met' if ratio <= 3 else 'NOT met'}); "
        f"workbook peak RSS {results['xlsx'][1]:.0f} MB (target <= 400 MB: "
        f"{'met' if rss_ok else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
