"""The health-check commands of the Dockerfile and compose.yaml, run against real processes:
each must pass with its process up and fail without it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from product_importer import migrate
from product_importer.db import Database
from tests.conftest import _unavailable, clear_tables
from tests.fleet import Fleet, reachable
from tests.processes import cli_env, free_port, start_server

ROOT = Path(__file__).resolve().parents[2]
# A Redis database of its own: the worker check accepts any worker on this host, and other
# test runs on the same machine use database 0.
ISOLATED_REDIS_URL = "redis://127.0.0.1:6379/15"


def _compose_check(service: str) -> str:
    """The Python code of a compose service's `CMD python -c ...` health check."""
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    test: list[str] = services[service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    return test[3]


def _dockerfile_check() -> str:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith("HEALTHCHECK ")]
    command: list[str] = json.loads(line.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"], command
    return command[2]


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def isolated_fleet(tmp_path: Path, postgres_url: str) -> Iterator[Fleet]:
    if not reachable("127.0.0.1", 6379):
        _unavailable("Redis at 127.0.0.1:6379")
    database = Database(postgres_url)
    migrate.upgrade(database)
    clear_tables(database)
    fleet = Fleet(tmp_path, database, ISOLATED_REDIS_URL)
    yield fleet
    fleet.stop()
    database.dispose()


def test_web_health_check_asks_healthz(tmp_path: Path) -> None:
    code = _dockerfile_check()
    assert _compose_check("web") == code, "compose and the image check the same way"
    port = free_port()
    env = cli_env(tmp_path / "home")
    assert "127.0.0.1:8000/healthz" in code
    local = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert _run(local, env).returncode != 0, "nothing listens yet"
    server = start_server(env, port)
    try:
        result = _run(local, env)
        assert result.returncode == 0, result.stderr
    finally:
        server.terminate()
        server.communicate(timeout=20)


def test_worker_health_check_pings_the_worker_of_its_own_host(isolated_fleet: Fleet) -> None:
    code = _compose_check("worker")
    assert _compose_check("webhook-worker") == code
    env = isolated_fleet.env("check")
    before = _run(code, env)
    assert before.returncode == 1, f"no worker is running yet: {before.stderr}"
    worker = isolated_fleet.worker("worker-1", "--concurrency", "1")
    after = _run(code, env)
    assert after.returncode == 0, after.stderr + isolated_fleet.log_text()
    worker.terminate()
    worker.wait(timeout=30)
    assert _run(code, env).returncode == 1, "a stopped worker is unhealthy"
