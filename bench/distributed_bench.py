"""Distributed-mode benchmark: the same import and the same webhook load, embedded vs distributed,
in the same run, on the same PostgreSQL.

    .venv/bin/python -m bench.distributed_bench [--rows 500000] [--workers 2]
        [--endpoints 4] [--events 250] [--skip-webhooks]

Needs PostgreSQL (BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres) and
Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/0; queues get a unique prefix).

  embedded     `product-importer serve` alone: background work on its own threads.
  distributed  `serve` with BROKER_URL plus Celery workers: with --workers 2 the README's
               topology (`worker --queues imports` and `worker --queues webhooks,default`), with
               --workers 1 one worker taking every queue.

Import: a file from the project's sample-data generator (cached under BENCH_DIR, default
/tmp/pi-bench), timed from the start of the HTTP upload to the job's `completed`, into an empty
catalogue; peak RSS (VmHWM, reset just before the upload) of the process that ran the import
(the server when embedded, the busiest worker when distributed).

Webhooks: N endpoints on one local receiver that verifies every signature, M `product.updated`
events written to the outbox in one transaction (as the app's own transactions do); the fleet's
sweep fans them out and delivers N x M requests. Rates: deliveries / (last arrival - commit), and
/ (last arrival - first arrival), which leaves out the wait for the next sweep.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook

if __package__ in (None, ""):
    # Run as `python bench/distributed_bench.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.import_bench import (
    PG_ADMIN,
    WORK,
    cli,
    free_port,
    fresh_postgres_database,
    generate,
    peak_rss_mb,
    psql,
    reset_peak_rss,
    upload_and_wait,
)
from bench.webhooks_bench import Receiver
from product_importer.db import Database
from product_importer.webhooks import events

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Process:
    """One `product-importer` process, its output in a log file, its peak RSS readable."""

    name: str
    args: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def start(self, ready: str | None = None) -> Process:
        self.log = WORK / "logs" / f"{self.name}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "product_importer", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while ready is not None and ready.encode() not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()}")
            time.sleep(0.1)
        return self

    def reset_peak_rss(self) -> None:
        assert self.process is not None
        reset_peak_rss(self.process.pid)

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        return peak_rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Installation:
    """A server (and workers, when distributed) over a fresh PostgreSQL database."""

    def __init__(self, label: str, workers: int) -> None:
        self.label = label
        self.url = fresh_postgres_database(f"pi_bench_{label}")
        home = WORK / f"home-{label}"
        subprocess.run(["rm", "-rf", str(home)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRODUCT_IMPORTER_")}
        env.pop("BROKER_URL", None)
        env.update(
            PRODUCT_IMPORTER_HOME=str(home),
            DATABASE_URL=self.url,
            PRODUCT_IMPORTER_WEBHOOK_ALLOW_PRIVATE="1",
        )
        if workers:
            env.update(
                BROKER_URL=REDIS, PRODUCT_IMPORTER_QUEUE_PREFIX=f"bench{uuid.uuid4().hex[:8]}-"
            )
        self.env = env
        cli(env, "migrate")
        self.token = cli(env, "token", "create", "bench").splitlines()[-1]
        self.port = free_port()
        self.server = Process(f"{label}-serve", ["serve", "--port", str(self.port)], env)
        self.workers: list[Process] = []
        queue_sets = [["--queues", "imports"], ["--queues", "webhooks,default"]]
        if workers == 1:
            queue_sets = [[]]
        for number, queues in enumerate(queue_sets[:workers]):
            self.workers.append(Process(f"{label}-worker-{number + 1}", ["worker", *queues], env))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def __enter__(self) -> Installation:
        for worker in self.workers:
            worker.start(ready=" ready.")
        self.server.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.server.log.read_text()}")
            time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        self.server.stop()
        for worker in self.workers:
            worker.stop()

    def runners(self) -> list[Process]:
        """The processes that may run an import."""
        return self.workers or [self.server]


def time_import(site: Installation, file: Path) -> dict[str, Any]:
    for process in site.runners():
        process.reset_peak_rss()
    with httpx.Client(headers=site.headers, timeout=600) as client:
        job, seconds = upload_and_wait(client, site.base, file, poll_s=0.05)
    if job["status"] != "completed":
        raise RuntimeError(f"{site.label}: import {job['status']}: {job.get('error')}")
    return {
        "seconds": seconds,
        "created": job["rows_created"],
        "peak_rss_mb": max(process.peak_rss_mb() for process in site.runners()),
    }


def time_deliveries(site: Installation, endpoints: int, count: int) -> dict[str, Any]:
    receiver = Receiver(expected=endpoints * count)
    with httpx.Client(base_url=site.base, headers=site.headers, timeout=30) as client:
        for number in range(endpoints):
            path = f"/hook/{number}"
            created = client.post(
                "/api/webhooks", json={"url": receiver.url(path), "events": ["product.updated"]}
            )
            created.raise_for_status()
            receiver.secrets[path] = Webhook(created.json()["secret"])
    database = Database(site.url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with database.session() as session:
            for number in range(count):
                events.record(session, "product.updated", {"n": number, "sku": f"SKU-{number}"})
        committed = time.perf_counter()
        finished = receiver.done.wait(600)
    finally:
        receiver.server.shutdown()
        database.dispose()
    arrivals = sorted(receiver.arrivals.values())
    delivered = len(arrivals)
    if not finished or receiver.bad:
        print(f"{site.label}: {delivered} delivered, {receiver.bad} bad signatures (incomplete)")
    return {
        "delivered": delivered,
        "bad": receiver.bad,
        "from_commit": delivered / (arrivals[-1] - committed) if arrivals else 0.0,
        "flowing": delivered / (arrivals[-1] - arrivals[0]) if delivered > 1 else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=2)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--events", type=int, default=250)
    parser.add_argument("--skip-webhooks", action="store_true")
    args = parser.parse_args()
    if args.rows < 1 or args.endpoints < 1 or args.events < 1:
        parser.error("--rows, --endpoints and --events must be positive")

    file, _ = generate(args.rows)
    size_mb = file.stat().st_size / 1e6
    print(f"file: {file} ({args.rows:,} rows, {size_mb:.0f} MB); machine: {os.cpu_count()} cores")
    print(f"PostgreSQL {PG_ADMIN.rsplit('/', 1)[0]}, Redis {REDIS}")
    modes = [("embedded", 0), ("distributed", args.workers)]
    results: dict[str, dict[str, Any]] = {}
    try:
        for label, workers in modes:
            with Installation(label, workers) as site:
                results[label] = {"import": time_import(site, file)}
            if not args.skip_webhooks:
                # A fresh installation: no search indexing of the import in the background.
                with Installation(f"{label}_hooks", workers) as site:
                    results[label]["hooks"] = time_deliveries(site, args.endpoints, args.events)
    finally:
        for label, _ in modes:
            for name in (f"pi_bench_{label}", f"pi_bench_{label}_hooks"):
                psql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    topology = (
        "serve + worker --queues imports + worker --queues webhooks,default"
        if args.workers == 2
        else "serve + one worker (all queues)"
    )
    print(f"\ndistributed: {topology}; embedded: serve alone. Same file, same machine, same run.")
    print(f"{'mode':<12} {'import s':>9} {'rows/s':>9} {'peak RSS MB':>11}  {'runs on':<8}")
    for label, _ in modes:
        measured = results[label]["import"]
        runner = "server" if label == "embedded" else "worker"
        print(
            f"{label:<12} {measured['seconds']:>9.2f} {args.rows / measured['seconds']:>9,.0f} "
            f"{measured['peak_rss_mb']:>11.0f}  {runner:<8}"
        )
    ratio = results["distributed"]["import"]["seconds"] / results["embedded"]["import"]["seconds"]
    print(f"distributed / embedded import time: {ratio:.2f}x")
    if not args.skip_webhooks:
        total = args.endpoints * args.events
        print(f"\nwebhooks: {args.endpoints} endpoints x {args.events} events = {total} deliveries")
        print(f"{'mode':<12} {'delivered':>9} {'bad sig':>7} {'per s (commit)':>14} {'per s':>8}")
        for label, _ in modes:
            hooks = results[label]["hooks"]
            print(
                f"{label:<12} {hooks['delivered']:>9} {hooks['bad']:>7} "
                f"{hooks['from_commit']:>14,.0f} {hooks['flowing']:>8,.0f}"
            )


if __name__ == "__main__":
    main()
