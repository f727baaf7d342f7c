"""Webhook delivery benchmark: events recorded in the app's transactions, delivered by the
embedded workers to a local receiver that verifies every signature.

    python bench/webhooks_bench.py [--events 500] [--endpoints 4] [--database-url URL]

Prints deliveries per second (from the first commit to the last request received) and the
latency from an event's commit to its arrival (p50, p95). Deliveries to one endpoint run one at
a time by design, so throughput grows with the number of endpoints up to the worker threads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook

from product_importer import migrate, wiring
from product_importer.db import Database
from product_importer.settings import Settings
from product_importer.tasks.embedded import EmbeddedDispatcher
from product_importer.tasks.registry import TaskContext
from product_importer.webhooks import events, schemas
from product_importer.webhooks import service as webhook_service

# Every domain registers its tasks, as the app and the CLI do at start-up.
wiring.connect()


class Receiver:
    def __init__(self, expected: int) -> None:
        self.secrets: dict[str, Webhook] = {}
        self.arrivals: dict[str, float] = {}
        self.bad = 0
        self.expected = expected
        self.done = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    payload = receiver.secrets[self.path].verify(body, headers)
                except Exception:
                    payload = None
                with receiver.lock:
                    if payload is None:
                        receiver.bad += 1
                    else:
                        key = f"{self.path}:{payload['data']['n']}"
                        receiver.arrivals[key] = time.perf_counter()
                    if len(receiver.arrivals) + receiver.bad >= receiver.expected:
                        receiver.done.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="pi-webhooks-bench-"))
    url = args.database_url or f"sqlite:///{home / 'bench.db'}"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, home=home, database_url=url, webhook_allow_private=True
    )
    database = Database(settings.resolved_database_url)
    migrate.upgrade(database)
    receiver = Receiver(expected=args.events * args.endpoints)
    with database.session() as session:
        for number in range(args.endpoints):
            path = f"/hook/{number}"
            data = schemas.WebhookCreate(url=receiver.url(path), events=["product.updated"])
            endpoint = webhook_service.create(session, data, settings)
            receiver.secrets[path] = Webhook(endpoint.secret)

    dispatcher = EmbeddedDispatcher({"webhooks": settings.worker_threads})
    dispatcher.start(TaskContext(database=database, settings=settings))
    database.dispatcher = dispatcher
    committed: dict[int, float] = {}
    started = time.perf_counter()
    try:
        for number in range(args.events):
            with database.session() as session:
                events.record(session, "product.updated", {"n": number, "sku": f"SKU-{number}"})
            committed[number] = time.perf_counter()
        record_seconds = time.perf_counter() - started
        if not receiver.done.wait(300):
            print("timed out waiting for deliveries")
        elapsed = max(receiver.arrivals.values(), default=started) - started
    finally:
        dispatcher.stop()
        database.dispatcher = None
        receiver.server.shutdown()

    latencies = sorted(
        (arrived - committed[int(key.rsplit(":", 1)[1])]) * 1000
        for key, arrived in receiver.arrivals.items()
    )
    delivered = len(receiver.arrivals)
    print(f"database           {database.dialect}")
    print(f"endpoints x events {args.endpoints} x {args.events} = {delivered} delivered")
    print(f"bad signatures     {receiver.bad}")
    print(f"recording events   {args.events / record_seconds:,.0f} commits/s (one per event)")
    print(f"delivery rate      {delivered / elapsed:,.0f} deliveries/s")
    if latencies:
        p95 = latencies[int(len(latencies) * 0.95) - 1]
        print(f"commit to arrival  p50 {statistics.median(latencies):,.0f} ms, p95 {p95:,.0f} ms")
    database.dispose()


if __name__ == "__main__":
    main()
