"""Load benchmark: many concurrent API clients against the server as users run it, while a large
import runs and completes; then the breaking point.

    .venv/bin/python -m bench.load_bench [--only sqlite,postgresql,distributed] [--clients 50]
        [--duration 300] [--rows 500000] [--steps 50,100,200,400,800] [--step-seconds 30]
        [--no-breaking-point] [--think-ms 0]

Needs PostgreSQL (BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres) for
the two PostgreSQL modes and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/0) for the
distributed one. Generated files live under BENCH_DIR (default /tmp/pi-bench), process logs under
BENCH_DIR/logs.

Modes:
  sqlite        `product-importer serve` alone on SQLite (background work on its own threads).
  postgresql    the same on PostgreSQL.
  distributed   PostgreSQL, two `serve` processes on two ports with the same database and broker
                (Redis), one Celery worker taking every queue; clients alternate between the two.

Clients: one asyncio task each (httpx.AsyncClient), in a closed loop (no pause unless
--think-ms), picking by weight: list and search pages 70 % (plain page 1, deep pages, sort
orders, `q=` words of the sample data, `name=`/`description=` contains, `sku=` exact or prefix;
deep pages, drawn log-uniformly up to the last page, are reported as `deep` and judged as list),
single-product reads 15 % (a random id seen in a list), edits 10 % (GET one of 200 reserved
`LOAD-` products, half of the time one of the first 20 so that edits race, then PATCH a unique
description with `If-Match`; 200 is a win, 412 the expected refusal, 423 "try again" while an
import's merge holds the catalogue, counted apart), exports and webhook test
sends 5 % (an export of at most 100 `LOAD-` rows; `POST /api/webhooks/{id}/test` to a local
receiver, which also gets the endpoint's `product.updated` deliveries). The GET before an edit
counts as a read. Every request has a 30 s deadline; a timeout, a connection error, a 5xx, a test
send that is not `ok` and any 4xx but an edit's 412 are errors (the first few are printed; a 4xx
means a bench bug).

Per mode:
  alone         a fresh catalogue with the load products and the webhook endpoint, the import
                (--rows, from the sample-data generator) timed from the upload's start to
                `completed`, no clients.
  under load    a fresh catalogue again, the clients start, after 15 s the same import is
                uploaded; the clients run for --duration (longer if the import is not done).
                Reported: count, p50, p95, p99, max per kind, over the whole run and for list
                and search during the import window; errors; edit wins and 412s; the import's
                time and its ratio to alone; peak RSS (VmHWM, reset after start-up) and CPU of
                each server process (and the worker); two probes once a second per web
                process: `loop` (an unknown path, answered 404 by the event loop alone: slow
                when the loop is blocked or starved of the GIL) and `healthz` (a database ping
                in the thread pool: slow while `loop` is fast when requests queue for a thread
                or a pooled connection); on PostgreSQL the wait events sampled twice a second
                in pg_stat_activity, with the statements waiting on a lock and their blockers;
                error lines in the process logs; and `diagnosis:` lines drawn from these.
                Also list and search latencies by query shape (filter and sort, slowest
                first), and the search catch-up's backlog counted in the database every 2 s:
                how long the index took to catch up with the import under the load, and the
                search p95 meanwhile.
  lost updates  after the clients stop: per load product, no two wins from the same version
                (before-ETag), the wins form one chain (each win's before-ETag is the previous
                win's after-ETag, from the ETag the product was created with), and the final
                description and ETag are those of the chain's last win.
  breaking      without an import, on the imported catalogue: --steps clients for
                --step-seconds each, stopping at the first step where a kind's p95 passes 1 s or
                an error appears.

Targets (marked ok / MISSES in the summary): 0 errors, 0 lost updates, list and search p95
<= 250 ms, single reads p95 <= 100 ms, import under load <= 1.3x alone. The bench client shares
the machine with the servers: its own CPU use is printed with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    # Run as `python bench/load_bench.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.distributed_bench import REDIS, Installation, Process
from bench.import_bench import (
    PG_ADMIN,
    WORK,
    free_port,
    fresh_postgres_database,
    generate,
    prepared,
    psql,
)
from product_importer import sampledata

MODES = ("sqlite", "postgresql", "distributed")
KINDS = ("list", "deep", "search", "read", "edit", "export", "webhook")
# What the targets and the breaking point judge: deep pages are list pages.
GROUPS = {
    "list": ("list", "deep"),
    "search": ("search",),
    "read": ("read",),
    "edit": ("edit",),
    "export": ("export",),
    "webhook": ("webhook",),
}
PROBES = ("loop", "healthz")
LOAD_PRODUCTS = 200
HOT_PRODUCTS = 20
TIMEOUT = 30.0
WARMUP = 15.0
ERRORS_SHOWN = 5
TARGET_LIST_MS = 250.0
TARGET_READ_MS = 100.0
TARGET_IMPORT_RATIO = 1.3
BREAKING_MS = 1000.0

SEARCH_WORDS = [
    word.lower()
    for word in (*sampledata.ADJECTIVES, *sampledata.MATERIALS, *sampledata.PRODUCTS)
    if word.isascii()
]
TEXT_WORDS = [word for word in sampledata.WORDS if len(word) >= 4]
SORTS = ("sku", "-sku", "name", "-name", "updated_at", "-updated_at", "created_at", "-created_at")


# ---------------------------------------------------------------- the installation


@dataclass
class Site:
    """The server processes of one mode over a fresh catalogue."""

    mode: str
    label: str
    env: dict[str, str]
    token: str
    webs: list[Process]
    workers: list[Process]
    ports: list[int]
    database: str | None

    @classmethod
    def create(cls, mode: str, phase: str) -> Site:
        label = f"load_{mode}_{phase}"
        if mode == "distributed":
            site = Installation(label, workers=1)  # a fresh database, Redis, one worker
            port = free_port()
            second = Process(f"{label}-serve-2", ["serve", "--port", str(port)], site.env)
            return cls(
                mode,
                label,
                site.env,
                site.token,
                [site.server, second],
                site.workers,
                [site.port, port],
                f"pi_bench_{label}",
            )
        database = f"pi_bench_{label}" if mode == "postgresql" else None
        url = fresh_postgres_database(database) if database else None
        env, token = prepared(url, label)
        env["PRODUCT_IMPORTER_WEBHOOK_ALLOW_PRIVATE"] = "1"
        port = free_port()
        web = Process(f"{label}-serve", ["serve", "--port", str(port)], env)
        return cls(mode, label, env, token, [web], [], [port], database)

    @property
    def bases(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def processes(self) -> list[Process]:
        return [*self.webs, *self.workers]

    def start(self) -> None:
        for worker in self.workers:
            worker.start(ready=" ready.")
        # One after the other: two `serve` starting together on a fresh database both try to
        # create the first admin, and the second exits with NameTaken.
        for web, base in zip(self.webs, self.bases, strict=True):
            web.start()
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{web.name} did not start:\n{web.log.read_text()}")
                time.sleep(0.1)

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        if self.database:
            psql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        subprocess.run(["rm", "-rf", str(WORK / f"home-{self.label}")], check=True)

    def fresh_rows(self) -> int:
        """Products the search index has not caught up with yet (the fresh set)."""
        sql = "SELECT count(*) FROM search_fresh"
        if self.database:
            import psycopg

            with psycopg.connect(f"{PG_ADMIN.rsplit('/', 1)[0]}/{self.database}") as connection:
                row = connection.execute(sql).fetchone()
        else:
            home = Path(self.env["PRODUCT_IMPORTER_HOME"])
            uri = f"file:{home / 'products.db'}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
                row = connection.execute(sql).fetchone()
        return int(row[0]) if row else 0

    def reset_peaks(self) -> None:
        for process in self.processes:
            process.reset_peak_rss()

    def peaks(self) -> dict[str, float]:
        return {process.name: process.peak_rss_mb() for process in self.processes}

    def cpu_seconds(self) -> dict[str, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        result = {}
        for process in self.processes:
            assert process.process is not None
            stat = Path(f"/proc/{process.process.pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            result[process.name] = (int(fields[11]) + int(fields[12])) / ticks
        return result

    def log_problems(self) -> list[str]:
        """Error lines in the processes' logs (tracebacks, pool timeouts, locked databases)."""
        found = []
        for process in self.processes:
            lines = process.log.read_text(errors="replace").splitlines()
            bad = [
                line
                for line in lines
                if line.startswith(("ERROR", "CRITICAL", "WARNING"))
                or any(mark in line for mark in ("Traceback", "QueuePool", "database is locked"))
            ]
            bad = [line for line in bad if "SecurityWarning" not in line]  # root in a container
            if bad:
                found.append(f"{process.name}: {len(bad)} error lines in {process.log}; first:")
                found += [f"  {line[:300]}" for line in dict.fromkeys(bad) if line][:3]
        return found


class Receiver:
    """A local webhook receiver answering 200 to every POST."""

    def __init__(self) -> None:
        self.received = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Catalogue:
    """What the clients know of the catalogue: the load products and ids seen in lists."""

    load: list[int] = field(default_factory=list)
    initial: dict[int, tuple[str, str]] = field(default_factory=dict)  # id: (ETag, description)
    ids: list[int] = field(default_factory=list)
    total: int = 0
    webhook_id: int = 0

    def seen(self, items: list[dict[str, Any]], rng: random.Random) -> None:
        for item in items[:5]:
            if len(self.ids) < 20_000:
                self.ids.append(item["id"])
            else:
                self.ids[rng.randrange(len(self.ids))] = item["id"]


def seed(site: Site, receiver: Receiver) -> Catalogue:
    """The webhook endpoint and the load products, whose SKUs no import file has."""
    catalogue = Catalogue()
    with httpx.Client(base_url=site.bases[0], headers=site.headers, timeout=TIMEOUT) as client:
        hook = client.post(
            "/api/webhooks",
            json={"url": receiver.url, "events": ["product.updated", "import.completed"]},
        )
        hook.raise_for_status()
        catalogue.webhook_id = hook.json()["id"]
        for number in range(1, LOAD_PRODUCTS + 1):
            description = f"seed {number}"
            created = client.post(
                "/api/products",
                json={
                    "sku": f"LOAD-{number:04d}",
                    "name": f"Load test product {number}",
                    "description": description,
                },
            )
            created.raise_for_status()
            product_id = created.json()["id"]
            catalogue.load.append(product_id)
            catalogue.initial[product_id] = (created.headers["etag"], description)
    catalogue.ids = list(catalogue.load)
    catalogue.total = LOAD_PRODUCTS
    return catalogue


# ---------------------------------------------------------------- the clients


@dataclass
class Edit:
    product_id: int
    before: str
    value: str
    status: int | None  # 200 a win, 412 refused, None unknown (the request failed)
    after: str | None
    done: float


WRITES = ("edit", "webhook")


@dataclass
class Recorder:
    samples: list[tuple[str, float, float]] = field(default_factory=list)  # kind, start, ms
    errors: Counter[str] = field(default_factory=Counter)
    error_times: list[tuple[str, float]] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    # Writes answered 423 (the catalogue held by an import's merge; nothing written, "try again
    # in a few seconds"): the server's documented answer, counted apart from errors.
    busy: Counter[str] = field(default_factory=Counter)
    # List and search latencies by the shape of their query (which filter, sorted or not), to
    # name the slow ones: start, ms.
    shapes: defaultdict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # The search catch-up's backlog (fresh rows not yet in the index), counted in the database
    # every 2 s: time, rows.
    backlog: list[tuple[float, int]] = field(default_factory=list)

    def caught_up(self, completed: float) -> float | None:
        """When the index had caught up with an import completed at `completed` (under 1,000
        fresh rows: edits keep a few there), or None if not while sampled."""
        after = [(at, rows) for at, rows in self.backlog if at >= completed]
        return next((at for at, rows in after if rows < 1_000), None)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.error_times.append((kind, time.monotonic()))
        if len(self.details) < ERRORS_SHOWN:
            self.details.append(f"{kind}: {detail}")
            print(f"  ! error {kind}: {detail}", flush=True)


class Load:
    """N clients in a closed loop over one or more web processes."""

    def __init__(
        self,
        site: Site,
        catalogue: Catalogue,
        recorder: Recorder,
        clients: int,
        think_ms: float,
    ) -> None:
        self.site = site
        self.catalogue = catalogue
        self.recorder = recorder
        self.clients = clients
        self.think = think_ms / 1000
        self.stop = asyncio.Event()

    async def call(
        self, http: httpx.AsyncClient, kind: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        start = time.monotonic()
        try:
            response = await asyncio.wait_for(http.request(method, url, **kwargs), TIMEOUT)
        except TimeoutError:
            self.recorder.error(kind, f"timeout after {TIMEOUT:.0f} s: {method} {url} {kwargs}")
            return None
        except httpx.HTTPError as exc:
            self.recorder.error(kind, f"{type(exc).__name__} {exc}: {method} {url} {kwargs}")
            return None
        self.recorder.samples.append((kind, start, (time.monotonic() - start) * 1000))
        status = response.status_code
        if status == 423 and kind in WRITES:
            self.recorder.busy[kind] += 1
            return response
        if status >= 500 or (status >= 400 and not (kind == "edit" and status == 412)):
            self.recorder.error(kind, f"{status} {method} {response.url}: {response.text[:300]!r}")
            return None
        return response

    async def list_page(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        catalogue = self.catalogue
        pick = rng.random()
        params: dict[str, Any]
        if pick < 0.5:
            kind = "list"
            last_page = max(1, catalogue.total // 50)
            choice = rng.random()
            if choice < 0.4:
                params = {}
            elif choice < 0.7:  # deep: most near the front, some far in
                kind = "deep"
                params = {"page": int(math.exp(rng.uniform(0, math.log(last_page))))}
            elif choice < 0.9:
                params = {"sort": rng.choice(SORTS), "page": rng.randint(1, 5)}
            else:
                params = {"active": "true", "page_size": 20, "sort": rng.choice(SORTS)}
        else:
            kind = "search"
            choice = rng.random()
            if choice < 0.4:
                words = rng.sample(SEARCH_WORDS, rng.choice((1, 1, 2)))
                params = {"q": " ".join(words)}
            elif choice < 0.6:
                params = {"name": rng.choice(SEARCH_WORDS)}
            elif choice < 0.7:
                params = {"description": rng.choice(TEXT_WORDS)}
            elif choice < 0.85:
                word = rng.choice(sampledata.SKU_WORDS)
                params = {"sku": f"{word}-{rng.choice(sampledata.SKU_WORDS)}-*"}
            else:
                params = {"sku": f"load-{rng.randint(1, LOAD_PRODUCTS):04d}"}
            if rng.random() < 0.3:
                params["sort"] = rng.choice(SORTS)
        start = time.monotonic()
        response = await self.call(http, kind, "GET", "/api/products", params=params)
        if response is not None:
            took = (time.monotonic() - start) * 1000
            page = response.json()
            shape = query_shape(kind, params)
            self.recorder.shapes[shape].append((start, took))
            catalogue.seen(page["items"], rng)
            if not params:
                catalogue.total = page["total"]

    async def edit(self, http: httpx.AsyncClient, rng: random.Random, name: str) -> None:
        load = self.catalogue.load
        product_id = rng.choice(load[:HOT_PRODUCTS] if rng.random() < 0.5 else load)
        read = await self.call(http, "read", "GET", f"/api/products/{product_id}")
        if read is None:
            return
        before = read.headers["etag"]
        value = f"edit {name}"
        response = await self.call(
            http,
            "edit",
            "PATCH",
            f"/api/products/{product_id}",
            json={"description": value},
            headers={"If-Match": before},
        )
        status = None if response is None else response.status_code
        after = response.headers.get("etag") if response is not None else None
        self.recorder.edits.append(Edit(product_id, before, value, status, after, time.monotonic()))

    async def export_or_test(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        if rng.random() < 0.5:
            sku = (
                f"LOAD-{rng.randint(1, LOAD_PRODUCTS):04d}"
                if rng.random() < 0.5
                else f"LOAD-0{rng.randint(0, 1)}*"  # 99 or 100 rows
            )
            response = await self.call(
                http, "export", "GET", "/api/products/export", params={"sku": sku}
            )
            if response is not None and not response.text.startswith("name,sku"):
                self.recorder.error("export", f"not a CSV: {response.text[:200]!r}")
        else:
            path = f"/api/webhooks/{self.catalogue.webhook_id}/test"
            response = await self.call(http, "webhook", "POST", path)
            if (
                response is not None
                and response.status_code != 423
                and not response.json().get("ok")
            ):
                self.recorder.error("webhook", f"test send not ok: {response.text[:300]!r}")

    async def client(self, number: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(number * 7919 + int(time.time()))
        counter = 0
        while not self.stop.is_set():
            roll = rng.random()
            if roll < 0.70:
                await self.list_page(http, rng)
            elif roll < 0.85:
                product_id = rng.choice(self.catalogue.ids)
                await self.call(http, "read", "GET", f"/api/products/{product_id}")
            elif roll < 0.95:
                counter += 1
                await self.edit(http, rng, f"c{number}-{counter}-{rng.getrandbits(32):08x}")
            else:
                await self.export_or_test(http, rng)
            if self.think:
                await asyncio.sleep(rng.uniform(0, 2 * self.think))

    async def probe(self, http: httpx.AsyncClient) -> None:
        """Two trivial requests once a second. `loop`: an unknown path, answered 404 by the
        event loop alone (slow: the loop is blocked, or starved of the GIL). `healthz`: a
        database ping in the thread pool (slow while `loop` is fast: requests queue for a
        thread or a pooled connection)."""
        while not self.stop.is_set():
            for kind, path, expected in (
                ("loop", "/api/bench-loop-probe", 404),
                ("healthz", "/healthz", 200),
            ):
                start = time.monotonic()
                try:
                    response = await asyncio.wait_for(http.get(path), TIMEOUT)
                except (TimeoutError, httpx.HTTPError) as exc:
                    self.recorder.error(kind, f"{type(exc).__name__} {exc}")
                    continue
                self.recorder.samples.append((kind, start, (time.monotonic() - start) * 1000))
                if response.status_code != expected:
                    self.recorder.error(kind, f"{response.status_code} GET {path}")
            await asyncio.sleep(1)

    async def backlog(self) -> None:
        """The search catch-up's backlog every 2 s, counted on a connection of the bench's own
        (read-only on SQLite), beside the servers."""
        while not self.stop.is_set():
            rows = await asyncio.to_thread(self.site.fresh_rows)
            self.recorder.backlog.append((time.monotonic(), rows))
            await asyncio.sleep(2)

    async def run(self, seconds: float, file: Path | None) -> dict[str, Any] | None:
        """Run the clients; with a file, upload it after the warm-up and run until both the
        time is up and the import has finished. Answers the import's result."""
        # Idle connections are let go after 4 s, before the server's 5 s (uvicorn's keep-alive
        # timeout): at the same 5 s, a request sent on a connection the server was closing
        # failed with a ReadError, which a browser retries on its own and a bench must not count.
        limits = httpx.Limits(
            max_connections=self.clients + 10, max_keepalive_connections=None, keepalive_expiry=4
        )
        https = [
            httpx.AsyncClient(
                base_url=base, headers=self.site.headers, limits=limits, timeout=TIMEOUT
            )
            for base in self.site.bases
        ]
        tasks = [
            asyncio.create_task(self.client(number, https[number % len(https)]))
            for number in range(self.clients)
        ]
        tasks += [asyncio.create_task(self.probe(http)) for http in https]
        tasks.append(asyncio.create_task(self.backlog()))
        result = None
        try:
            if file is None:
                await asyncio.sleep(seconds)
            else:
                await asyncio.sleep(WARMUP)
                upload = asyncio.create_task(
                    asyncio.to_thread(run_import, self.site, self.site.bases[-1], file)
                )
                await asyncio.sleep(max(0.0, seconds - WARMUP))
                if not upload.done():
                    print("  time is up; the clients carry on until the import completes")
                result = await upload
        finally:
            self.stop.set()
            await asyncio.gather(*tasks)
            for http in https:
                await http.aclose()
        return result


def run_import(site: Site, base: str, file: Path) -> dict[str, Any]:
    """Upload the file and wait for the job to finish (sync, in its own thread)."""
    with file.open("rb") as handle, httpx.Client(headers=site.headers, timeout=600) as client:
        start = time.monotonic()
        response = client.post(
            f"{base}/api/imports", files={"file": (file.name, handle, "text/csv")}
        )
        response.raise_for_status()
        job_id = response.json()["id"]
        while True:
            poll = client.get(f"{base}/api/imports/{job_id}")
            if poll.status_code != 200:  # the server is struggling: say so, ask again
                print(f"  ! import poll: {poll.status_code} {poll.text[:200]!r}", flush=True)
                time.sleep(1)
                continue
            job: dict[str, Any] = poll.json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.25)
    end = time.monotonic()
    if job["status"] != "completed":
        print(f"  ! import {job['status']}: {job.get('error')}")
    return {"start": start, "end": end, "seconds": end - start, "status": job["status"]}


class WaitSampler:
    """PostgreSQL wait events of the catalogue's active sessions, sampled twice a second; for
    a session waiting on a lock, its statement and the statement of the session blocking it."""

    SQL = (
        "SELECT coalesce(a.wait_event_type, 'CPU'), coalesce(a.wait_event, 'running'),"
        " CASE WHEN a.wait_event_type = 'Lock' THEN left(regexp_replace(a.query, '\\s+', ' ',"
        " 'g'), 90) END, CASE WHEN a.wait_event_type = 'Lock' THEN (SELECT"
        " left(regexp_replace(b.query, '\\s+', ' ', 'g'), 90) FROM pg_stat_activity b"
        " WHERE b.pid = (pg_blocking_pids(a.pid))[1]) END"
        " FROM pg_stat_activity a WHERE a.datname = %s AND a.state = 'active'"
        " AND a.pid <> pg_backend_pid()"
    )

    def __init__(self, site: Site) -> None:
        self.counts: Counter[str] = Counter()
        self.locks: Counter[tuple[str, str]] = Counter()
        self.most_connections = 0
        self.samples = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if site.database:
            self.thread = threading.Thread(target=self._run, args=(site.database,), daemon=True)
            self.thread.start()

    def _run(self, database: str) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            while not self.stop.wait(0.5):
                rows = connection.execute(self.SQL, (database,)).fetchall()
                connected = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
                ).fetchone()
                self.most_connections = max(self.most_connections, connected[0] if connected else 0)
                self.samples += 1
                for event_type, event, waiting, blocker in rows:
                    self.counts[f"{event_type}:{event}"] += 1
                    if waiting:
                        self.locks[(waiting, blocker or "?")] += 1

    def close(self) -> list[str]:
        self.stop.set()
        if self.thread is None:
            return []
        self.thread.join(timeout=10)
        top = ", ".join(
            f"{name} {count / max(self.samples, 1):.2f}"
            for name, count in self.counts.most_common(6)
        )
        lines = [
            f"PostgreSQL active sessions by wait event (mean per sample): {top or 'none'}",
            f"most connections to the database at once: {self.most_connections} (each process's"
            " pool: 10 + 20 overflow)",
        ]
        for (waiting, blocker), count in self.locks.most_common(3):
            lines.append(f"  lock wait x{count}: {waiting!r} blocked by {blocker!r}")
        return lines


# ---------------------------------------------------------------- checks and figures


def lost_updates(site: Site, catalogue: Catalogue, edits: list[Edit]) -> list[str]:
    """Every win must continue the chain of versions; the final state must be the last win's."""
    by_product: dict[int, list[Edit]] = defaultdict(list)
    for edit in edits:
        by_product[edit.product_id].append(edit)
    problems = []
    with httpx.Client(base_url=site.bases[0], headers=site.headers, timeout=TIMEOUT) as client:
        for product_id in catalogue.load:
            response = client.get(f"/api/products/{product_id}")
            response.raise_for_status()
            final_etag, final_value = response.headers["etag"], response.json()["description"]
            mine = by_product[product_id]
            wins = [edit for edit in mine if edit.status == 200]
            unknown = [edit for edit in mine if edit.status is None]
            twice = [tag for tag, n in Counter(edit.before for edit in wins).items() if n > 1]
            for tag in twice:
                problems.append(f"product {product_id}: two wins from the same version {tag}")
            chain = {edit.before: edit for edit in wins}
            etag, value = catalogue.initial[product_id]
            while etag in chain:
                win = chain.pop(etag)
                etag, value = win.after or "", win.value
            where = f"product {product_id}"
            if unknown and (chain or (etag, value) != (final_etag, final_value)):
                problems.append(
                    f"{where}: not verifiable, {len(unknown)} edits with no answer "
                    f"(final {final_value!r})"
                )
                continue
            for win in chain.values():
                problems.append(
                    f"{where}: win {win.value!r} from version {win.before} is off the chain"
                )
            if (etag, value) != (final_etag, final_value):
                problems.append(
                    f"{where}: final {final_value!r} {final_etag}, last win {value!r} {etag}"
                )
    return problems


def query_shape(kind: str, params: dict[str, Any]) -> str:
    """A list or search request's shape: its kind, its filter (`q` with its word count, `sku`
    exact or prefix) and its sort, if any."""
    parts = [kind]
    for name, value in params.items():
        if name == "q":
            parts.append(f"q{len(str(value).split())}")
        elif name == "sku":
            parts.append("sku*" if str(value).endswith("*") else "sku=")
        elif name in ("name", "description", "active"):
            parts.append(name)
        elif name == "sort":
            parts.append(f"sort={value}")
    return " ".join(parts)


def catch_up_line(recorder: Recorder, result: dict[str, Any]) -> str:
    """How far behind the search index was when the import completed, and how long it took to
    catch up with it under the load."""
    after = [rows for at, rows in recorder.backlog if at >= result["end"]]
    if not after:
        return "search catch-up backlog: not sampled after the import"
    done = recorder.caught_up(result["end"])
    caught = (
        f"under 1,000 rows {done - result['end']:.0f} s after `completed`"
        if done is not None
        else f"still {after[-1]:,} rows when the clients stopped"
    )
    return f"search catch-up backlog after the import: {max(after):,} rows at most, {caught}"


def shape_table(recorder: Recorder, shown: int = 15) -> list[str]:
    """The list and search shapes, slowest p95 first (the first `shown`)."""
    lines = ["| shape | count | p50 ms | p95 ms | max ms |", "| --- | ---: | ---: | ---: | ---: |"]
    rows = [(shape, [value for _, value in samples]) for shape, samples in recorder.shapes.items()]
    rows.sort(key=lambda row: percentile(row[1], 0.95), reverse=True)
    for shape, values in rows[:shown]:
        lines.append(
            f"| {shape} | {len(values):,} | {ms(percentile(values, 0.5))} | "
            f"{ms(percentile(values, 0.95))} | {ms(max(values))} |"
        )
    return lines


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def latencies(
    recorder: Recorder, kinds: tuple[str, ...], start: float = 0.0, end: float = math.inf
) -> list[float]:
    return [ms for kind, at, ms in recorder.samples if kind in kinds and start <= at < end]


def ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


def kind_table(recorder: Recorder, start: float = 0.0, end: float = math.inf) -> list[str]:
    lines = [
        "| kind | count | per s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    within = [at for _, at, _ in recorder.samples if start <= at < end]
    seconds = max(within, default=0.0) - min(within, default=0.0) or math.nan
    for kind in (*KINDS, *PROBES):
        values = latencies(recorder, (kind,), start, end)
        errors = sum(1 for name, at in recorder.error_times if name == kind and start <= at < end)
        lines.append(
            f"| {kind} | {len(values):,} | {len(values) / seconds:,.1f} | "
            f"{ms(percentile(values, 0.5))} | {ms(percentile(values, 0.95))} | "
            f"{ms(percentile(values, 0.99))} | {ms(max(values, default=math.nan))} | "
            f"{errors} |"
        )
    return lines


def loadavg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# ---------------------------------------------------------------- one mode


def time_alone(mode: str, file: Path) -> float:
    site = Site.create(mode, "alone")
    receiver = Receiver()
    try:
        site.start()
        seed(site, receiver)
        result = run_import(site, site.bases[-1], file)
    finally:
        site.close()
        receiver.close()
    print(f"  import alone: {result['seconds']:.1f} s ({result['status']})", flush=True)
    return float(result["seconds"])


def run_mode(mode: str, args: argparse.Namespace, file: Path) -> dict[str, Any]:
    print(f"\n## {mode}\n\nload average at start: {loadavg()}", flush=True)
    report: dict[str, Any] = {"mode": mode, "load_start": loadavg()}
    report["alone"] = time_alone(mode, file)

    site = Site.create(mode, "load")
    receiver = Receiver()
    try:
        site.start()
        catalogue = seed(site, receiver)
        recorder = Recorder()
        site.reset_peaks()
        cpu_before, client_before = site.cpu_seconds(), time.process_time()
        waits = WaitSampler(site)
        started = time.monotonic()
        print(f"  {args.clients} clients for {args.duration} s, import after {WARMUP:.0f} s")
        load = Load(site, catalogue, recorder, args.clients, args.think_ms)
        result = asyncio.run(load.run(args.duration, file))
        assert result is not None
        wall = time.monotonic() - started
        report["wait_events"] = waits.close()
        cpu_after, client_after = site.cpu_seconds(), time.process_time()
        report["peaks"] = site.peaks()
        report["cpu"] = {
            name: (cpu_after[name] - cpu_before[name]) / wall * 100 for name in cpu_after
        }
        report["client_cpu"] = (client_after - client_before) / wall * 100
        report["wall"] = wall
        report["load_after_run"] = os.getloadavg()[0]
        report["recorder"] = recorder
        report["import"] = result
        report["window"] = latencies(
            recorder, (*GROUPS["list"], "search"), result["start"], result["end"]
        )
        report["window_list"] = latencies(recorder, GROUPS["list"], result["start"], result["end"])
        report["window_search"] = latencies(recorder, ("search",), result["start"], result["end"])
        report["wins"] = sum(1 for edit in recorder.edits if edit.status == 200)
        report["refused"] = sum(1 for edit in recorder.edits if edit.status == 412)
        report["received"] = receiver.received
        report["lost"] = lost_updates(site, catalogue, recorder.edits)
        print(f"  lost updates: {len(report['lost'])}", flush=True)
        for problem in report["lost"][:10]:
            print(f"    {problem}")

        if args.breaking_point:
            report["steps"], report["breaking"] = breaking_point(site, catalogue, recorder, args)
            report["lost_after_steps"] = lost_updates(site, catalogue, recorder.edits)
        report["log_problems"] = site.log_problems()
    finally:
        site.close()
        receiver.close()
    report["load_end"] = loadavg()
    print_mode(report, args)
    return report


def breaking_point(
    site: Site, catalogue: Catalogue, main: Recorder, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], str]:
    steps = []
    previous = None
    verdict = f"not reached at {args.steps[-1]}"
    for clients in args.steps:
        recorder = Recorder()
        client_before = time.process_time()
        start = time.monotonic()
        print(f"  breaking point: {clients} clients for {args.step_seconds} s", flush=True)
        asyncio.run(
            Load(site, catalogue, recorder, clients, args.think_ms).run(args.step_seconds, None)
        )
        wall = time.monotonic() - start
        main.edits.extend(recorder.edits)
        p95 = {kind: percentile(latencies(recorder, (kind,)), 0.95) for kind in KINDS}
        errors = sum(recorder.errors.values())
        requests = sum(1 for kind, _, _ in recorder.samples if kind not in PROBES)
        steps.append(
            {
                "clients": clients,
                "p95": p95,
                "errors": errors,
                "per_s": requests / wall,
                "client_cpu": (time.process_time() - client_before) / wall * 100,
                "details": recorder.details,
            }
        )
        broken = errors > 0 or any(
            percentile(latencies(recorder, kinds), 0.95) > BREAKING_MS for kinds in GROUPS.values()
        )
        if broken:
            verdict = (
                f"between {previous} and {clients} clients"
                if previous is not None
                else f"below {clients} clients"
            )
            break
        previous = clients
    return steps, verdict


def print_mode(report: dict[str, Any], args: argparse.Namespace) -> None:
    recorder: Recorder = report["recorder"]
    result = report["import"]
    print(f"\n### {report['mode']}: {args.clients} clients, {report['wall']:.0f} s\n")
    print("\n".join(kind_table(recorder)))
    print(f"\nduring the import ({result['seconds']:.0f} s):\n")
    print("\n".join(kind_table(recorder, result["start"], result["end"])))
    print("\nlist and search by shape, whole run (the slowest p95 first):\n")
    print("\n".join(shape_table(recorder)))
    print(catch_up_line(recorder, result))
    window = report["window"]
    print(
        f"\nimport: alone {report['alone']:.1f} s, under load {result['seconds']:.1f} s "
        f"({result['status']}), ratio {result['seconds'] / report['alone']:.2f}x"
    )
    print(
        f"list and search during the import ({len(window):,} requests): "
        f"p50 {ms(percentile(window, 0.5))} ms, p95 {ms(percentile(window, 0.95))} ms "
        f"(list {ms(percentile(report['window_list'], 0.95))}, "
        f"search {ms(percentile(report['window_search'], 0.95))})"
    )
    print(
        f"errors: {sum(recorder.errors.values())}; edits: {report['wins']} wins, "
        f"{report['refused']} refused (412), {recorder.busy['edit']} told to retry (423); "
        f"webhook test sends told to retry (423): {recorder.busy['webhook']}; "
        f"lost updates: {len(report['lost'])}; webhook requests received: {report['received']}"
    )
    for detail in recorder.details:
        print(f"  {detail}")
    print(
        "peak RSS (VmHWM) MB: "
        + ", ".join(f"{name} {value:.0f}" for name, value in report["peaks"].items())
    )
    print(
        "CPU % of one core: "
        + ", ".join(f"{name} {value:.0f}" for name, value in report["cpu"].items())
        + f", bench client {report['client_cpu']:.0f}"
    )
    for line in report["wait_events"]:
        print(line)
    for line in report["log_problems"]:
        print(f"log: {line}")
    for line in diagnose(report):
        print(f"diagnosis: {line}")
    if "steps" in report:
        print(f"\nbreaking point ({args.step_seconds} s a step, no import):\n")
        print(
            "| clients | per s | "
            + " | ".join(f"{kind} p95" for kind in KINDS)
            + " | errors | client CPU % |"
        )
        print("| ---: | ---: | " + " | ".join("---:" for _ in KINDS) + " | ---: | ---: |")
        for step in report["steps"]:
            print(
                f"| {step['clients']} | {step['per_s']:,.0f} | "
                + " | ".join(ms(step["p95"][kind]) for kind in KINDS)
                + f" | {step['errors']} | {step['client_cpu']:.0f} |"
            )
        for step in report["steps"]:
            for detail in step["details"]:
                print(f"  {step['clients']} clients: {detail}")
        print(f"\nbreaking point: {report['breaking']}")
        print(f"lost updates after the steps: {len(report['lost_after_steps'])}")
        for problem in report["lost_after_steps"][:10]:
            print(f"  {problem}")
    print(f"load average at start: {report['load_start']}, at end: {report['load_end']}")


def diagnose(report: dict[str, Any]) -> list[str]:
    """Where the time went, from the probes, the CPU figures and the import window."""
    recorder: Recorder = report["recorder"]
    result = report["import"]
    found = []
    loop = percentile(latencies(recorder, ("loop",)), 0.95)
    health = percentile(latencies(recorder, ("healthz",)), 0.95)
    if loop > 50:
        found.append(
            f"event loop slow: an answer from the loop alone has p95 {ms(loop)} ms (blocked "
            "by sync work, or starved of the GIL by the process's threads)"
        )
    if health > 100 and health > 3 * loop:
        found.append(
            f"requests queue for a worker thread or a pooled connection: /healthz p95 "
            f"{ms(health)} ms while the loop answers in {ms(loop)} ms"
        )
    for name, percent in report["cpu"].items():
        if percent >= 85:
            found.append(f"{name} used {percent:.0f} % of one core: CPU-bound (one GIL)")
    cores = os.cpu_count() or 1
    if report["load_after_run"] > cores:
        found.append(
            f"machine saturated: load average {report['load_after_run']:.1f} on {cores} cores"
        )
    shallow = percentile(latencies(recorder, ("list",)), 0.95)
    deep = percentile(latencies(recorder, ("deep",)), 0.95)
    if deep > TARGET_LIST_MS and deep > 2 * shallow:
        found.append(
            f"deep list pages (OFFSET) are the slow list pages: p95 {ms(deep)} ms against "
            f"{ms(shallow)} ms for the others"
        )
    for kind in ("list", "deep", "search", "read", "edit"):
        during = percentile(latencies(recorder, (kind,), result["start"], result["end"]), 0.95)
        outside = percentile(
            [
                ms_
                for name, at, ms_ in recorder.samples
                if name == kind and not result["start"] <= at < result["end"]
            ],
            0.95,
        )
        if during > 2 * outside and during > 100:
            found.append(
                f"{kind} p95 {ms(during)} ms during the import against {ms(outside)} ms outside"
            )
    return found


def print_summary(reports: list[dict[str, Any]], args: argparse.Namespace) -> None:
    def mark(ok: bool, text: str) -> str:
        return f"{text} {'ok' if ok else 'MISSES'}"

    rows: dict[str, list[str]] = defaultdict(list)
    for report in reports:
        recorder: Recorder = report["recorder"]
        errors = sum(recorder.errors.values())
        lost = max(len(report["lost"]), len(report.get("lost_after_steps", [])))
        rows["errors: 0"].append(mark(errors == 0, str(errors)))
        rows["lost updates: 0"].append(mark(lost == 0, str(lost)))
        for kind in ("list", "search"):
            p95 = percentile(latencies(recorder, GROUPS[kind]), 0.95)
            rows[f"{kind} p95 <= {TARGET_LIST_MS:.0f} ms"].append(
                mark(p95 <= TARGET_LIST_MS, ms(p95))
            )
        deep = percentile(latencies(recorder, ("deep",)), 0.95)
        rows["(deep list pages alone, p95)"].append(ms(deep))
        caught = recorder.caught_up(report["import"]["end"]) or math.inf
        catching_up = latencies(recorder, ("search",), report["import"]["end"], caught)
        rows["(search p95 while the index catches up; count)"].append(
            f"{ms(percentile(catching_up, 0.95))} ({len(catching_up):,})"
        )
        during = percentile(report["window"], 0.95)
        rows["list+search p95 during import"].append(mark(during <= TARGET_LIST_MS, ms(during)))
        read = percentile(latencies(recorder, ("read",)), 0.95)
        rows[f"read p95 <= {TARGET_READ_MS:.0f} ms"].append(mark(read <= TARGET_READ_MS, ms(read)))
        ratio = report["import"]["seconds"] / report["alone"]
        rows[f"import <= {TARGET_IMPORT_RATIO}x alone"].append(
            mark(ratio <= TARGET_IMPORT_RATIO, f"{ratio:.2f}x")
        )
        rows["peak RSS MB"].append(" / ".join(f"{value:.0f}" for value in report["peaks"].values()))
        rows["breaking point"].append(report.get("breaking", "not run"))
    print(f"\n## Summary: {args.clients} clients, {args.duration} s, {args.rows:,} rows\n")
    print("| target | " + " | ".join(report["mode"] for report in reports) + " |")
    print("| --- | " + " | ".join("---" for _ in reports) + " |")
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        help="sqlite, postgresql, distributed (repeatable or comma-separated; default all)",
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds")
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--steps", default="50,100,200,400,800", help="clients per step")
    parser.add_argument("--step-seconds", type=float, default=30.0)
    parser.add_argument(
        "--no-breaking-point", dest="breaking_point", action="store_false", default=True
    )
    parser.add_argument(
        "--think-ms", type=float, default=0.0, help="mean pause between a client's requests"
    )
    args = parser.parse_args()
    modes = [
        mode.strip() for value in (args.only or [",".join(MODES)]) for mode in value.split(",")
    ]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        parser.error(f"unknown mode {', '.join(unknown)}: choose from {', '.join(MODES)}")
    try:
        args.steps = [int(step) for step in args.steps.split(",")]
    except ValueError:
        parser.error("--steps takes client counts separated by commas: 50,100,200")
    if args.clients < 1 or args.rows < 1 or args.duration <= WARMUP or not args.steps:
        parser.error(f"--clients and --rows must be positive, --duration above {WARMUP:.0f} s")

    file, _ = generate(args.rows)
    print(
        f"file: {file} ({args.rows:,} rows, {file.stat().st_size / 1e6:.0f} MB); "
        f"machine: {os.cpu_count()} cores; load average {loadavg()}"
    )
    print(f"PostgreSQL {PG_ADMIN.rsplit('/', 1)[0]}, Redis {REDIS}; logs in {WORK / 'logs'}")
    reports = []
    for mode in dict.fromkeys(modes):
        try:
            reports.append(run_mode(mode, args, file))
        except Exception:  # report it, and carry on with the other modes
            print(f"\n{mode} failed:\n{traceback.format_exc()}", flush=True)
    if reports:
        print_summary(reports, args)
    print(f"\nload average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
