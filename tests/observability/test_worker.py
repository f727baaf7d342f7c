"""Metrics of a distributed installation: a real Celery worker with --metrics-port, and web
processes of `serve --workers 2` adding up their numbers; hostile worker options."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from product_importer.db import Database
from tests.factories import make_token
from tests.fleet import Fleet, upload, wait_for_job
from tests.observability.conftest import parse, value
from tests.processes import cli_env, free_port, run_cli


def test_a_worker_serves_the_metrics_of_the_imports_it_ran(fleet: Fleet) -> None:
    base = fleet.web()
    token = make_token(fleet.database)
    port = free_port()
    fleet.worker("worker-1", "--metrics-port", str(port))
    queued = upload(base, token, b"sku,name\nA-1,Chair\nB-2,Table\nB-2,Desk\n")
    job = wait_for_job(base, token, queued["id"], fleet)
    assert job["status"] == "completed", job

    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert scraped.status_code == 200
    worker = parse(scraped.text)
    imports = "product_importer_imports_total"
    assert value(worker, imports, outcome="completed", dry_run="false") == 1
    assert value(worker, "product_importer_import_rows_total", result="created") == 2
    assert value(worker, "product_importer_import_duration_seconds_count", outcome="completed")

    # The web process ran no import: it counts requests, not jobs.
    web = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert web.status_code == 200
    assert value(parse(web.text), imports, outcome="completed", dry_run="false") == 0


class JsonFleet(Fleet):
    def env(self, name: str) -> dict[str, str]:
        return super().env(name) | {"PRODUCT_IMPORTER_LOG_FORMAT": "json"}


@pytest.fixture
def json_fleet(tmp_path: Path, pg: Database, redis_url: str) -> Iterator[Fleet]:
    running = JsonFleet(tmp_path, pg, redis_url)
    yield running
    running.stop()


def test_a_workers_json_logs_carry_the_job_id_and_the_workers_name(json_fleet: Fleet) -> None:
    fleet = json_fleet
    base = fleet.web()
    token = make_token(fleet.database)
    worker = fleet.worker("worker-1")
    queued = upload(base, token, b"sku,name\nA-1,Chair\n")
    assert wait_for_job(base, token, queued["id"], fleet)["status"] == "completed"
    log = (fleet.tmp_path / "worker-1.log").read_text()
    # stdout (Celery's banner, the command's own messages) shares the file; logs are the rest.
    lines: list[dict[str, Any]] = [
        json.loads(line) for line in log.splitlines() if line.startswith("{")
    ]
    names = {line["worker"] for line in lines}
    assert names == {f"product-importer-{worker.pid}@{socket.gethostname()}"}, names
    ours = [line for line in lines if line.get("job_id") == queued["id"]]
    assert any(line["logger"] == "product_importer.imports.pipeline" for line in ours), log
    assert all(line["task"] == "imports.run" for line in ours)
    assert any(line["logger"].startswith("celery.") for line in lines), log


def test_web_processes_add_up_their_numbers(fleet: Fleet) -> None:
    base = fleet.web("--workers", "2")
    token = make_token(fleet.database)
    auth = {"Authorization": f"Bearer {token}"}
    requests = "product_importer_http_requests_total"
    labels = {"method": "GET", "route": "/healthz", "status": "2xx"}
    before = value(parse(httpx.get(f"{base}/metrics", headers=auth).text), requests, **labels)
    for _ in range(20):
        # A new connection each time, so both processes take some of them.
        assert httpx.get(f"{base}/healthz").status_code == 200
    for _ in range(4):  # whichever process answers the scrape, it reports both
        scraped = httpx.get(f"{base}/metrics", headers=auth)
        assert scraped.status_code == 200
        assert value(parse(scraped.text), requests, **labels) == before + 20
    # Each web process keeps its numbers in the shared folder under the home, made afresh.
    counters = {path.name for path in (fleet.tmp_path / "web" / "prometheus").glob("counter_*")}
    assert len(counters) == 2, counters


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-port", "0"], "--metrics-port must be a number from 1 to 65535"),
        (["--metrics-port", "70000"], "--metrics-port must be a number from 1 to 65535"),
        (["--metrics-port", "-1"], "--metrics-port must be a number from 1 to 65535"),
        (["--metrics-port", "http"], "--metrics-port must be a number from 1 to 65535"),
        (["--metrics-port", "9100; rm -rf /"], "--metrics-port must be a number"),
        (["--metrics-port", "²"], "--metrics-port must be a number"),
        (["--metrics-port", "1" * 5000], "--metrics-port must be a number"),
        (["--metrics-port", "9100", "--metrics-host", ""], "--metrics-host '' is not"),
        (["--metrics-port", "9100", "--metrics-host", "not a host"], "--metrics-host"),
        (["--metrics-port", "9100", "--metrics-host", "999.1.1.1"], "--metrics-host"),
        (["--metrics-port", "9100", "--metrics-host", "a/b@c"], "--metrics-host"),
        (["--metrics-port", "9100", "--metrics-host", "x" * 300], "--metrics-host"),
    ],
)
def test_hostile_metrics_options_exit_2_with_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    env = cli_env(tmp_path) | {"BROKER_URL": "redis://127.0.0.1:1/0"}
    result = run_cli("worker", *args, env=env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line, line


def test_a_metrics_port_in_use_exits_4(fleet: Fleet) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("worker", "--metrics-port", str(port), env=fleet.env("worker"))
    assert result.returncode == 4, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"port {port} on 127.0.0.1 is already in use; choose another with --metrics-port" in line
