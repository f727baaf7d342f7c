"""Distributed mode with real parts: a web process and Celery worker processes over PostgreSQL
and Redis (or RabbitMQ), started by the Fleet helper in tests/fleet.py."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text

from product_importer.db import Database
from tests.factories import make_token
from tests.fleet import (  # noqa: F401 (fixtures)
    Fleet,
    amqp_url_fixture,
    fleet_fixture,
    pg_fixture,
    redis_url_fixture,
    upload,
    wait_for_job,
)
from tests.processes import cli_env, run_cli
from tests.webhooks.receiver import Receiver


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

    queued = upload(base, token, csv)
    time.sleep(1.5)
    job = httpx.get(
        f"{base}/api/imports/{queued['id']}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert job["status"] == "queued", "the web process must not run imports itself"

    fleet.worker("worker-1", "--concurrency", "2")
    job = wait_for_job(base, token, queued["id"], fleet)
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
    # Its start-up recovery sends every queued job again; upload only once that has passed, so
    # that what brings the job back is the check for forgotten jobs.
    fleet.wait_for_log("worker-1", "recovery: queued imports sent to the workers again")
    job = upload(base, token, b"sku,name\nL-1,Lost\n")
    broker = redis.Redis.from_url(fleet.broker_url)
    lost = broker.keys(f"{fleet.prefix}imports*")
    assert lost, "the import's message should be waiting in the broker"
    broker.delete(*lost)
    fleet.worker("worker-2", "--queues", "imports")
    done = wait_for_job(base, token, job["id"], fleet, timeout=60)
    assert done["status"] == "completed", done
    assert "sending them again" in (fleet.tmp_path / "worker-1.log").read_text()


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
    job = upload(base, token, csv)
    wait_for_job(base, token, job["id"], fleet, until="running")
    # The import is the only task sent so far: the worker that received it is running it.
    [running] = [
        process
        for process, name in zip(workers, ("worker-1", "worker-2"), strict=True)
        if b"received" in (fleet.tmp_path / f"{name}.log").read_bytes()
    ]
    os.kill(running.pid, stop_signal)
    running.wait(timeout=30)

    done = wait_for_job(base, token, job["id"], fleet, timeout=180)
    assert done["status"] == "completed", done
    assert (done["rows_processed"], done["rows_created"]) == (rows, rows)
    with fleet.database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM products").scalar() == rows
        attempts = connection.execute(
            text("SELECT attempts FROM import_jobs WHERE id = :id"), {"id": job["id"]}
        ).scalar()
    # A kill is an attempt that died; a SIGTERM hands the job back, which is not counted.
    assert attempts == (2 if stop_signal == signal.SIGKILL else 1)


def test_rabbitmq_as_the_broker(tmp_path: Path, pg: Database, amqp_url: str) -> None:
    fleet = Fleet(tmp_path, pg, amqp_url)
    try:
        base = fleet.web()
        token = make_token(pg)
        fleet.worker("worker-1")
        job = upload(base, token, b"sku;name\nR-1;Rabbit\n")
        done = wait_for_job(base, token, job["id"], fleet)
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
