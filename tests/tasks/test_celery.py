"""Distributed mode with real parts: a web process and Celery worker processes over PostgreSQL
and Redis (or RabbitMQ), each with its own home folder, so nothing passes through a shared
filesystem. Every test uses its own queue names, so parallel test workers never take each
other's tasks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text

from product_importer import migrate
from product_importer.db import Database
from tests.conftest import _unavailable, clear_tables
from tests.factories import make_token
from tests.processes import cli_env, free_port, run_cli, start_server
from tests.webhooks.receiver import Receiver

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _reachable("127.0.0.1", 6379):
        _unavailable("Redis at 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture
def amqp_url() -> str:
    if not _reachable("127.0.0.1", 5672):
        _unavailable("RabbitMQ at 127.0.0.1:5672")
    return AMQP_URL


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    migrate.upgrade(database)
    clear_tables(database)
    yield database
    database.dispose()


class Fleet:
    """Web and worker processes of one distributed installation, stopped at the end."""

    def __init__(self, tmp_path: Path, database: Database, broker_url: str) -> None:
        self.tmp_path = tmp_path
        self.database = database
        self.broker_url = broker_url
        self.prefix = f"t{uuid.uuid4().hex[:10]}-"
        self.processes: list[subprocess.Popen[Any]] = []
        self.logs: list[Path] = []

    def env(self, name: str) -> dict[str, str]:
        url = self.database.engine.url.render_as_string(hide_password=False)
        env = cli_env(self.tmp_path / name, url)
        env.update(
            BROKER_URL=self.broker_url,
            PRODUCT_IMPORTER_QUEUE_PREFIX=self.prefix,
            PRODUCT_IMPORTER_SECRET_KEY="test-secret-key-not-for-production",
            PRODUCT_IMPORTER_WEBHOOK_ALLOW_PRIVATE="1",
        )
        return env

    def web(self, *args: str) -> str:
        port = free_port()
        if not args:
            self.processes.append(start_server(self.env("web"), port))
            return f"http://127.0.0.1:{port}"
        log = self.tmp_path / "web.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "product_importer", "serve", "--port", str(port), *args],
                env=self.env("web"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return f"http://127.0.0.1:{port}"
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"web did not start:\n{log.read_text()}")
            time.sleep(0.1)

    def worker(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "product_importer", "worker", *args],
                env=self.env(name),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        deadline = time.monotonic() + 30
        while b" ready." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs)


@pytest.fixture
def fleet(tmp_path: Path, pg: Database, redis_url: str) -> Iterator[Fleet]:
    running = Fleet(tmp_path, pg, redis_url)
    yield running
    running.stop()


def _upload(base: str, token: str, content: bytes, name: str = "products.csv") -> dict[str, Any]:
    response = httpx.post(
        f"{base}/api/imports",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": (name, content, "text/csv")},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def _wait_for_job(
    base: str, token: str, job_id: int, fleet: Fleet, *, until: str = "done", timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(
            f"{base}/api/imports/{job_id}", headers={"Authorization": f"Bearer {token}"}
        ).json()
        if until == "done" and job["status"] in ("completed", "failed", "cancelled"):
            return job
        if until == "running" and job["status"] == "running" and job["percent"] > 2:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} not {until} in {timeout} s\n{fleet.log_text()}")
        time.sleep(0.1)


def _skus(base: str, token: str) -> dict[str, str]:
    page = httpx.get(
        f"{base}/api/products",
        params={"page_size": 500},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    return {item["sku"]: item["name"] for item in page["items"]}


def _no_local_uploads(fleet: Fleet) -> None:
    leftovers = list(fleet.tmp_path.glob("*/uploads/*"))
    assert leftovers == [], "uploads must not touch the local filesystem in distributed mode"


def test_import_and_webhook_run_on_a_worker(fleet: Fleet) -> None:
    base = fleet.web("--workers", "2")
    token = make_token(fleet.database)
    csv = b"sku,name\nA-1,Chair\nb-2,Table\nB-2,Desk\n"

    queued = _upload(base, token, csv)
    time.sleep(1.5)
    job = httpx.get(
        f"{base}/api/imports/{queued['id']}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert job["status"] == "queued", "the web process must not run imports itself"

    fleet.worker("worker-1", "--concurrency", "2")
    job = _wait_for_job(base, token, queued["id"], fleet)
    assert job["status"] == "completed", job
    assert (job["rows_created"], job["rows_processed"]) == (2, 3)
    assert _skus(base, token) == {"A-1": "Chair", "B-2": "Desk"}
    for _ in range(4):  # through either web process: progress comes from the database
        stream = httpx.get(
            f"{base}/api/imports/{queued['id']}/events",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        last = [line for line in stream.text.splitlines() if line.startswith("data:")][-1]
        assert json.loads(last.removeprefix("data:"))["status"] == "completed"
    _no_local_uploads(fleet)
    with fleet.database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM upload_chunks").scalar() == 0

    receiver = Receiver()
    receiver.start()
    try:
        created = httpx.post(
            f"{base}/api/webhooks",
            headers={"Authorization": f"Bearer {token}"},
            json={"url": receiver.url, "events": ["product.created"]},
        )
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]
        product = httpx.post(
            f"{base}/api/products",
            headers={"Authorization": f"Bearer {token}"},
            json={"sku": "C-3", "name": "Lamp"},
        )
        assert product.status_code == 201, product.text
        [delivery] = receiver.wait_for(1, timeout=30)
        assert delivery.verified, delivery.error
        assert delivery.payload["type"] == "product.created"
        assert delivery.payload["data"]["sku"] == "C-3"
    finally:
        receiver.stop()
    web_log = (fleet.tmp_path / "web.log").read_text()
    assert web_log.count("Started server process") == 2, web_log


def test_several_web_processes_need_distributed_mode(tmp_path: Path) -> None:
    result = run_cli("serve", "--workers", "2", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "--workers above 1 needs distributed mode" in result.stderr


def test_a_job_whose_message_was_lost_is_sent_again(fleet: Fleet) -> None:
    """As after a broker restart without persistence: the job is queued in the database, its
    message is gone. The worker that runs the periodic work sends it again."""
    base = fleet.web()
    token = make_token(fleet.database)
    fleet.worker("worker-1", "--queues", "webhooks,default")  # the leader; takes no imports
    job = _upload(base, token, b"sku,name\nL-1,Lost\n")
    broker = redis.Redis.from_url(fleet.broker_url)
    lost = broker.keys(f"{fleet.prefix}imports*")
    assert lost, "the import's message should be waiting in the broker"
    broker.delete(*lost)
    fleet.worker("worker-2", "--queues", "imports")
    done = _wait_for_job(base, token, job["id"], fleet, timeout=60)
    assert done["status"] == "completed", done
    assert "sending them again" in fleet.logs[0].read_text()


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_a_worker_stopped_mid_import_is_replaced(fleet: Fleet, stop_signal: int) -> None:
    """kill -9: the job is found orphaned and run again; SIGTERM: the worker stops the import
    and hands its message back. Either way another worker completes it, exactly once."""
    base = fleet.web()
    token = make_token(fleet.database)
    rows = 300_000
    csv = b"sku,name,description\n" + b"".join(
        b"SKU-%d,Product %d,%s\n" % (i, i, b"d" * 60) for i in range(rows)
    )
    workers = [fleet.worker("worker-1", "--queues", "imports,default"), fleet.worker("worker-2")]
    job = _upload(base, token, csv)
    _wait_for_job(base, token, job["id"], fleet, until="running")
    # The import is the only task sent so far: the worker that received it is running it.
    [running] = [
        process
        for process, log in zip(workers, fleet.logs, strict=True)
        if b"received" in log.read_bytes()
    ]
    os.kill(running.pid, stop_signal)
    running.wait(timeout=30)

    done = _wait_for_job(base, token, job["id"], fleet, timeout=180)
    assert done["status"] == "completed", done
    assert (done["rows_processed"], done["rows_created"]) == (rows, rows)
    with fleet.database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM products").scalar() == rows
        attempts = connection.execute(
            text("SELECT attempts FROM import_jobs WHERE id = :id"), {"id": job["id"]}
        ).scalar()
    assert attempts == 2


def test_rabbitmq_as_the_broker(tmp_path: Path, pg: Database, amqp_url: str) -> None:
    fleet = Fleet(tmp_path, pg, amqp_url)
    try:
        base = fleet.web()
        token = make_token(pg)
        fleet.worker("worker-1")
        job = _upload(base, token, b"sku;name\nR-1;Rabbit\n")
        done = _wait_for_job(base, token, job["id"], fleet)
        assert done["status"] == "completed", done
        assert _skus(base, token) == {"R-1": "Rabbit"}
    finally:
        fleet.stop()


def test_worker_needs_a_broker_that_answers_and_postgresql(tmp_path: Path, pg: Database) -> None:
    env = cli_env(tmp_path)
    result = run_cli("worker", env=env)
    assert result.returncode == 2
    assert "set BROKER_URL" in result.stderr
    env["BROKER_URL"] = "redis://127.0.0.1:1/0"
    for command in ("worker", "serve"):
        result = run_cli(command, env=env)  # SQLite: one machine only
        assert result.returncode == 2, result.stderr
        assert "needs a PostgreSQL DATABASE_URL" in result.stderr
    env["DATABASE_URL"] = pg.engine.url.render_as_string(hide_password=False)
    result = run_cli("worker", env=env)
    assert result.returncode == 3, result.stderr
    assert "cannot reach the broker at redis://127.0.0.1:1/0" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    result = run_cli("worker", "--queues", "imports,nope", env=env)
    assert result.returncode == 2
    assert "unknown queue(s) nope" in result.stderr
