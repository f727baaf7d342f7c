"""A distributed installation made of real processes, for tests: web processes and Celery
workers over PostgreSQL and a broker, each process with its own home folder, so nothing passes
through a shared filesystem. Every Fleet uses its own queue names, so parallel test workers
never take each other's tasks.

Test modules import the fixtures they use (`from tests.fleet import fleet_fixture`); pytest
knows them by their short names (`fleet`, `pg`, `redis_url`, `amqp_url`).
"""

from __future__ import annotations

import os
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

from product_importer import migrate
from product_importer.db import Database
from tests.conftest import _unavailable, clear_tables
from tests.processes import cli_env, free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(name="redis_url")
def redis_url_fixture() -> str:
    if not reachable("127.0.0.1", 6379):
        _unavailable("Redis at 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(name="amqp_url")
def amqp_url_fixture() -> str:
    if not reachable("127.0.0.1", 5672):
        _unavailable("RabbitMQ at 127.0.0.1:5672")
    return AMQP_URL


@pytest.fixture(name="pg")
def pg_fixture(postgres_url: str) -> Iterator[Database]:
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
            PRODUCT_IMPORTER_FEED_ALLOWED_HOSTS='["127.0.0.0/8"]',
        )
        return env

    def web(self, *args: str, name: str = "web") -> str:
        """Start `serve` on a port of its own and return its base URL once it answers."""
        port = free_port()
        log = self.tmp_path / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "product_importer", "serve", "--port", str(port), *args],
                env=self.env(name),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        deadline = time.monotonic() + 60  # generous: a loaded 2-core machine starts a server slowly
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
        deadline = time.monotonic() + 60  # a loaded CI machine starts Celery slowly
        while b" ready." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return process

    def wait_for_log(self, name: str, text: str, timeout: float = 60) -> None:
        log = self.tmp_path / f"{name}.log"
        deadline = time.monotonic() + timeout
        while text not in log.read_text():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{name} did not log {text!r} in {timeout} s\n{self.log_text()}"
                )
            time.sleep(0.1)

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


@pytest.fixture(name="fleet")
def fleet_fixture(tmp_path: Path, pg: Database, redis_url: str) -> Iterator[Fleet]:
    running = Fleet(tmp_path, pg, redis_url)
    yield running
    running.stop()


def upload(base: str, token: str, content: bytes, name: str = "products.csv") -> dict[str, Any]:
    response = httpx.post(
        f"{base}/api/imports",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": (name, content, "text/csv")},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_for_job(
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
