"""Feeds benchmark: a feed's run from a local HTTP server against an upload of the same file.

    .venv/bin/python bench/feeds_bench.py [--rows 500000] [--only sqlite|postgresql]

The catalogue file is import_bench's (product_importer.sampledata, under BENCH_DIR, default
/tmp/pi-bench, reused between runs). A thread of the bench serves it on 127.0.0.1 at two paths:
/etag/ with an ETag (304 to a matching If-None-Match) and /plain/ with neither ETag nor
Last-Modified, so the app can only compare the content's SHA-256. Both stream it in 64 KiB chunks.

For each database, with the real server (`product-importer serve` in a subprocess, with
PRODUCT_IMPORTER_FEED_ALLOW_PRIVATE=true so feeds may fetch from loopback), each case timed from
its request until its end state (polled every 20 ms):
  upload            POST /api/imports with the file until the job is `completed`: the baseline
  feed, ETag        a feed on /etag/: POST /api/feeds/{id}/run until the run's outcome is final
  feed again, 304   the same feed run again: expected `unchanged`, answered 304 by the server
  no ETag, first    a second feed on /plain/: imported again, every row already in the catalogue
  no ETag, again    that feed again: expected `unchanged` by SHA-256 (the whole file fetched)
The upload and the feeds each go into an empty catalogue of their own: a second fresh home (and,
on PostgreSQL, a second fresh database) with a second server, rather than a delete-all, which
leaves its change records and the search index's work behind. The servers run one after the
other. Before each feed case the bench waits (untimed) for the search index to catch up, so
every case starts on a quiet catalogue, as the upload does. For a feed run the time is split
from the run's and its import job's timestamps: queue (run created -> fetching), fetch (->
import job created, or the run's end when unchanged), import (job created -> finished).
Peak RSS is the server's VmHWM, reset before each case. Exits 1 if any case ends unexpectedly.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    # Run as `python bench/feeds_bench.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.import_bench import (
    PG_ADMIN,
    WORK,
    Server,
    fresh_postgres_database,
    generate,
    prepared,
    psql,
    upload_and_wait,
)

FINAL = ("imported", "unchanged", "failed", "refused")
CHUNK = 64 * 1024


# ---------------------------------------------------------------- the feed's HTTP server


def _handler(file: Path, etag: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            kind, _, name = self.path.lstrip("/").partition("/")
            if kind not in ("etag", "plain") or name != file.name:
                self.send_error(404)
                return
            if kind == "etag":
                asked = [tag.strip() for tag in self.headers.get("If-None-Match", "").split(",")]
                if etag in asked or "*" in asked:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(file.stat().st_size))
            if kind == "etag":
                self.send_header("ETag", etag)
            self.end_headers()
            try:
                with file.open("rb") as handle:
                    while chunk := handle.read(CHUNK):
                        self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away: nothing to finish

    return Handler


@contextmanager
def file_server(file: Path) -> Iterator[str]:
    """Serve `file` on a free port of 127.0.0.1; yields the server's base URL."""
    stat = file.stat()
    etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'  # as nginx does: size and mtime
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(file, etag))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- the cases


def _seconds(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def wait_until_caught_up(client: httpx.Client, url: str, limit_s: float = 900) -> None:
    """Until the search index has caught up with recent writes (untimed)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        page = client.get(f"{url}/api/products", params={"page_size": 1})
        page.raise_for_status()
        if not page.json()["search_pending"]:
            return
        time.sleep(0.5)


def upload(server: Server, client: httpx.Client, file: Path) -> dict[str, Any]:
    """POST the file to /api/imports, then poll the job until it has ended."""
    server.reset_peak_rss()
    job, seconds = upload_and_wait(client, server.url, file)
    return {
        "outcome": job["status"],
        "ok": job["status"] == "completed",
        "seconds": seconds,
        "import_s": _seconds(job["created_at"], job["finished_at"]),
        "rows": job,
        "peak_rss_mb": server.peak_rss_mb(),
    }


def make_feed(client: httpx.Client, url: str, name: str, source: str) -> int:
    body = {"name": name, "url": source, "schedule": "0 3 * * *", "timezone": "UTC"}
    response = client.post(f"{url}/api/feeds", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"feed not created: {response.status_code} {response.text}")
    return int(response.json()["id"])


def run_feed(
    server: Server, client: httpx.Client, feed_id: int, expected: str, http_status: int
) -> dict[str, Any]:
    """Run the feed now and poll the run until its outcome is final."""
    wait_until_caught_up(client, server.url)
    server.reset_peak_rss()
    start = time.perf_counter()
    response = client.post(f"{server.url}/api/feeds/{feed_id}/run")
    response.raise_for_status()
    run_id = response.json()["id"]
    while True:
        run: dict[str, Any] = client.get(f"{server.url}/api/feeds/{feed_id}/runs/{run_id}").json()
        if run["status"] in FINAL:
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    job: dict[str, Any] | None = None
    if run["import_job_id"] is not None:
        job = client.get(f"{server.url}/api/imports/{run['import_job_id']}").json()
    fetched_at = job["created_at"] if job else run["finished_at"]
    ok = run["status"] == expected and run["http_status"] == http_status
    if not ok:
        print(f"unexpected run: {run}", file=sys.stderr)
    return {
        "outcome": f"{run['status']} ({run['http_status']})",
        "ok": ok,
        "seconds": seconds,
        "queue_s": _seconds(run["created_at"], run["started_at"]),
        "fetch_s": _seconds(run["started_at"], fetched_at),
        "import_s": _seconds(job["created_at"], job["finished_at"]) if job else None,
        "rows": job,
        "peak_rss_mb": server.peak_rss_mb(),
    }


def measure(database: str, file: Path) -> dict[str, dict[str, Any]]:
    """The five cases on one database: the upload in one home, the feeds in another."""
    urls: dict[str, str | None] = {"upload": None, "feeds": None}
    if database == "postgresql":
        urls = {part: fresh_postgres_database(f"pi_bench_feeds_{part}") for part in urls}
    results: dict[str, dict[str, Any]] = {}
    env, token = prepared(urls["upload"], f"feeds-{database}-upload")
    headers = {"Authorization": f"Bearer {token}"}
    with Server(env) as server, httpx.Client(headers=headers, timeout=600) as client:
        results["upload"] = upload(server, client, file)
    env, token = prepared(urls["feeds"], f"feeds-{database}-feeds")
    env["PRODUCT_IMPORTER_FEED_ALLOW_PRIVATE"] = "true"
    headers = {"Authorization": f"Bearer {token}"}
    with (
        file_server(file) as files,
        Server(env) as server,
        httpx.Client(headers=headers, timeout=600) as client,
    ):
        etag_feed = make_feed(client, server.url, "bench ETag", f"{files}/etag/{file.name}")
        results["feed, ETag"] = run_feed(server, client, etag_feed, "imported", 200)
        results["feed again, 304"] = run_feed(server, client, etag_feed, "unchanged", 304)
        plain = make_feed(client, server.url, "bench no ETag", f"{files}/plain/{file.name}")
        results["no ETag, first"] = run_feed(server, client, plain, "imported", 200)
        results["no ETag, again"] = run_feed(server, client, plain, "unchanged", 200)
    # The feed's first import must leave the catalogue as the upload did.
    fed, uploaded = results["feed, ETag"], results["upload"]
    if fed["rows"] and fed["rows"]["rows_created"] != uploaded["rows"]["rows_created"]:
        fed["ok"] = False
    for label in ("upload", "feeds"):
        shutil.rmtree(WORK / f"home-feeds-{database}-{label}", ignore_errors=True)
    for url in urls.values():
        if url:
            psql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    return results


# ---------------------------------------------------------------- report


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(database: str, results: dict[str, dict[str, Any]]) -> None:
    baseline = results["upload"]["seconds"]
    print(f"\n{database}")
    print(
        f"{'case':<16} {'outcome':<16} {'seconds':>8} {'vs upload':>9} {'queue s':>7} "
        f"{'fetch s':>7} {'import s':>8} {'created/updated/unchanged':>25} {'peak RSS MB':>11}"
    )
    for case, measured in results.items():
        job = measured["rows"]
        rows = (
            f"{job['rows_created']:,}/{job['rows_updated']:,}/{job['rows_unchanged']:,}"
            if job
            else "-"
        )
        print(
            f"{case:<16} {measured['outcome']:<16} {measured['seconds']:>8.2f} "
            f"{measured['seconds'] / baseline:>8.2f}x {_f(measured.get('queue_s')):>7} "
            f"{_f(measured.get('fetch_s')):>7} {_f(measured.get('import_s')):>8} {rows:>25} "
            f"{measured['peak_rss_mb']:>11.0f}" + ("" if measured["ok"] else "  UNEXPECTED")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))

    file, _changed = generate(args.rows)
    print(f"file: {file} ({args.rows:,} rows, {file.stat().st_size / 1e6:.1f} MB)")
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    failed = False
    for database in [args.only] if args.only else list(names):
        results = measure(database, file)
        report(names[database], results)
        failed = failed or not all(measured["ok"] for measured in results.values())
    print(
        "\nseconds: request to end state. queue/fetch/import: from the run's and its import"
        "\njob's timestamps (the upload's import: job created -> finished)."
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
