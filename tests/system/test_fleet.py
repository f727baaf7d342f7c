"""GET /api/system against real processes: a distributed web process, Celery workers over
PostgreSQL and Redis (or RabbitMQ), heartbeats every second, a worker killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from product_importer.db import Database
from tests.factories import make_token
from tests.system.conftest import HeartbeatFleet
from tests.webhooks.receiver import Receiver, Reply


def _system(base: str, token: str) -> dict[str, Any]:
    response = httpx.get(
        f"{base}/api/system", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _wait_until(
    base: str,
    token: str,
    fleet: HeartbeatFleet,
    ok: Callable[[dict[str, Any]], bool],
    timeout: float = 20,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = _system(base, token)
        if ok(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {body}\n{fleet.log_text()}")
        time.sleep(0.3)


def _worker_name(process: subprocess.Popen[bytes]) -> str:
    return f"product-importer-{process.pid}@{socket.gethostname()}"


def test_two_workers_alive_then_one_killed(system_fleet: HeartbeatFleet) -> None:
    base = system_fleet.web()
    token = make_token(system_fleet.database)
    body = _system(base, token)
    assert body["mode"] == "distributed" and body["workers"] == []
    assert body["warnings"][0].startswith("No worker is alive")

    importer = system_fleet.worker("worker-imports", "--queues", "imports", "--concurrency", "1")
    sender = system_fleet.worker("worker-webhooks", "--queues", "webhooks,default")
    body = _wait_until(base, token, system_fleet, lambda b: b["workers_alive"] == 2)
    workers = {w["name"]: w for w in body["workers"]}
    assert set(workers) == {_worker_name(importer), _worker_name(sender)}
    assert workers[_worker_name(importer)]["queues"] == ["imports"]
    assert workers[_worker_name(importer)]["concurrency"] == 1
    assert workers[_worker_name(sender)]["queues"] == ["webhooks", "default"]
    assert all(w["kind"] == "celery" and w["heartbeat_seconds"] == 1 for w in workers.values())
    assert body["warnings"] == []
    assert [q["alive_consumers"] for q in body["queues"]] == [1, 1, 1]
    # Exactly one of them runs the fleet's periodic work.
    body = _wait_until(
        base, token, system_fleet, lambda b: sum(w["leader"] for w in b["workers"]) == 1
    )

    # A delivery to a slow receiver is a task running on the webhooks worker, as its beats say.
    receiver = Receiver()
    receiver.script(Reply(delay=6))
    receiver.start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{base}/api/webhooks",
            headers=headers,
            json={"url": receiver.url, "events": ["product.created"]},
        )
        assert created.status_code == 201, created.text
        product = httpx.post(
            f"{base}/api/products", headers=headers, json={"sku": "C-3", "name": "Lamp"}
        )
        assert product.status_code == 201, product.text

        def sending(body: dict[str, Any]) -> bool:
            return {w["name"]: w for w in body["workers"]}[_worker_name(sender)][
                "running_tasks"
            ] == 1

        _wait_until(base, token, system_fleet, sending, timeout=6)
        receiver.wait_for(1, timeout=15)
        _wait_until(base, token, system_fleet, lambda b: not sending(b), timeout=10)
    finally:
        receiver.stop()

    os.kill(importer.pid, signal.SIGKILL)
    importer.wait()
    killed_at = time.monotonic()
    body = _wait_until(
        base,
        token,
        system_fleet,
        lambda b: b["workers_alive"] == 1,
        timeout=10,
    )
    assert time.monotonic() - killed_at < 8, "3 missed one-second beats, plus a poll"
    dead = {w["name"]: w for w in body["workers"]}[_worker_name(importer)]
    assert not dead["alive"] and not dead["stopped"] and dead["age_seconds"] >= 3
    assert body["warnings"] == [
        "No alive worker consumes the imports queue: imports and delete-all jobs wait until one "
        "does. Start one with `product-importer worker --queues imports`."
    ]

    # Whichever of them led before, the survivor now runs the periodic work.
    body = _wait_until(
        base,
        token,
        system_fleet,
        lambda b: {w["name"]: w for w in b["workers"]}[_worker_name(sender)]["leader"],
        timeout=10,
    )
    assert sum(w["leader"] for w in body["workers"]) == 1

    sender.terminate()  # a clean stop is recorded at once
    sender.wait(timeout=20)
    body = _system(base, token)
    stopped = {w["name"]: w for w in body["workers"]}[_worker_name(sender)]
    assert stopped["stopped"] and not stopped["alive"] and body["workers_alive"] == 0


def _queued_import_shows_in_both_views(fleet: HeartbeatFleet) -> None:
    base = fleet.web()
    token = make_token(fleet.database)
    for name in ("a.csv", "b.csv"):
        response = httpx.post(
            f"{base}/api/imports",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": (name, b"sku,name\nA-1,Chair\n", "text/csv")},
            timeout=60,
        )
        assert response.status_code == 202, response.text
    body = _system(base, token)
    imports = body["queues"][0]
    assert imports["queue"] == "imports"
    assert imports["broker_queue"] == f"{fleet.prefix}imports"
    assert imports["broker_messages"] == 2
    assert (imports["waiting"], imports["running"], imports["alive_consumers"]) == (2, 0, 0)
    assert body["queues"][1]["broker_messages"] == 0  # webhooks: never declared, so empty

    fleet.worker("worker-1")
    body = _wait_until(
        base,
        token,
        fleet,
        lambda b: b["queues"][0]["waiting"] == 0 and b["queues"][0]["running"] == 0,
        timeout=60,
    )
    # The broker's count may be up to BROKER_COUNTS_TTL_SECONDS old.
    _wait_until(base, token, fleet, lambda b: b["queues"][0]["broker_messages"] == 0, timeout=10)


def test_queued_imports_show_in_broker_and_database_with_redis(
    system_fleet: HeartbeatFleet,
) -> None:
    _queued_import_shows_in_both_views(system_fleet)


def test_queued_imports_show_in_broker_and_database_with_rabbitmq(
    tmp_path: Path,
    pg: Database,
    amqp_url: str,
) -> None:
    fleet = HeartbeatFleet(tmp_path, pg, amqp_url)
    try:
        _queued_import_shows_in_both_views(fleet)
    finally:
        fleet.stop()
