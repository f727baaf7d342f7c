"""A whole distributed installation under stress, with real processes: two web processes on
their own ports, two Celery workers, PostgreSQL, Redis (a private one the test may kill), and
real webhook receivers that verify every signature."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from product_importer.db import Database
from product_importer.webhooks import events
from product_importer.webhooks import tasks as webhook_tasks
from tests.factories import make_token
from tests.fleet import (  # noqa: F401 (fixtures)
    Fleet,
    fleet_fixture,
    pg_fixture,
    reachable,
    redis_url_fixture,
    upload,
    wait_for_job,
)
from tests.processes import free_port
from tests.webhooks.receiver import Receiver, Reply

TERMINAL = ("completed", "failed", "cancelled")


def catalogue_file(rows: int, *, prefix: str = "", seed: int = 1) -> bytes:
    """A catalogue CSV shaped like real ones (name, sku, description), where about one row in
    thirty repeats an earlier SKU in another letter case: the last one must win."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "sku", "description"])
    for i in range(rows):
        if i > 10 and rng.random() < 0.03:
            sku = f"{prefix}sku-{rng.randrange(i)}".upper()
        else:
            sku = f"{prefix}sku-{i}"
        writer.writerow([f"Product {i}", sku, f'Item {i}, with a comma and "quotes"'])
    return out.getvalue().encode()


def expected_catalogue(content: bytes) -> dict[str, str]:
    """SKU -> name as the file says, de-duplicated without regard to letter case (last wins)."""
    last: dict[str, tuple[str, str]] = {}
    for row in csv.DictReader(io.StringIO(content.decode())):
        last[row["sku"].strip().casefold()] = (row["sku"].strip(), row["name"].strip())
    return dict(last.values())


def stored_catalogue(database: Database) -> dict[str, str]:
    with database.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT sku, name FROM products").all()
    return {sku: name for sku, name in rows}


def follow_events(base: str, token: str, job_id: int, seen: list[dict[str, Any]]) -> None:
    with httpx.stream(
        "GET",
        f"{base}/api/imports/{job_id}/events",
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line.removeprefix("data:")))


def create_endpoint(base: str, token: str, receiver: Receiver, event_types: list[str]) -> int:
    created = httpx.post(
        f"{base}/api/webhooks",
        headers={"Authorization": f"Bearer {token}"},
        json={"url": receiver.url, "events": event_types},
    )
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]
    endpoint_id: int = created.json()["id"]
    return endpoint_id


def test_upload_through_one_web_process_and_follow_through_another(fleet: Fleet) -> None:
    web_a = fleet.web(name="web-a")
    web_b = fleet.web(name="web-b")
    assert web_a != web_b
    fleet.worker("worker-1", "--concurrency", "2")
    fleet.worker("worker-2", "--concurrency", "2")
    token = make_token(fleet.database)
    # Enough rows that the import runs for several polls of the event stream, not one or two.
    content = catalogue_file(100_000)

    job = upload(web_a, token, content)
    seen: list[dict[str, Any]] = []
    follow_events(web_b, token, job["id"], seen)

    assert seen[-1]["status"] == "completed", fleet.log_text()
    running = [event for event in seen if event["status"] == "running"]
    assert running, f"no progress seen while the import ran: {seen}"
    assert any(0 < event["percent"] < 100 for event in running), running
    percents = [event["percent"] for event in running]
    assert percents == sorted(percents), "progress must not go backwards"
    expected = expected_catalogue(content)
    assert seen[-1]["rows_created"] == len(expected)
    assert stored_catalogue(fleet.database) == expected


class PrivateRedis:
    """A redis-server of the test's own, without persistence, so a restart loses every
    message it held: the harshest broker restart there is."""

    def __init__(self, tmp_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is needed for the broker restart test")
        self.binary = binary
        self.port = free_port()
        self.tmp_path = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@pytest.fixture
def private_redis(tmp_path: Path, redis_url: str) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_broker_restart_loses_no_job_and_no_delivery(
    tmp_path: Path, pg: Database, private_redis: PrivateRedis
) -> None:
    fleet = Fleet(tmp_path, pg, private_redis.url)
    receivers = [Receiver(), Receiver()]
    try:
        for receiver in receivers:
            receiver.start()
        base = fleet.web()
        workers = [
            fleet.worker("worker-1", "--concurrency", "2"),
            fleet.worker("worker-2", "--concurrency", "2"),
        ]
        token = make_token(pg)
        headers = {"Authorization": f"Bearer {token}"}
        for receiver in receivers:
            create_endpoint(base, token, receiver, ["product.created", "import.completed"])
        content = catalogue_file(150_000, prefix="f-")
        job = upload(base, token, content)

        created: list[str] = []

        def create_products(count: int) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                for _ in range(count):
                    sku = f"API-{len(created)}"
                    response = client.post("/api/products", json={"sku": sku, "name": sku})
                    assert response.status_code == 201, response.text
                    created.append(sku)

        create_products(10)
        wait_for_job(base, token, job["id"], fleet, until="running")
        # A second import waits behind the first (one at a time per catalogue) when the broker
        # goes: its message sits in a worker or in the broker, and the broker forgets it.
        second_content = catalogue_file(2_000, prefix="s-", seed=2)
        second = upload(base, token, second_content)
        private_redis.kill()
        killed_while = _job_status(pg, job["id"])
        # Products created while the broker is down: their events wait in the outbox.
        during = threading.Thread(target=create_products, args=(3,))
        during.start()
        time.sleep(2)
        private_redis.start()
        restarted = time.monotonic()
        during.join()
        create_products(10)

        done = wait_for_job(base, token, job["id"], fleet, timeout=150)
        assert done["status"] == "completed", f"{done}\n{fleet.log_text()}"
        assert killed_while == "running", "the broker should have gone mid-import"
        done_second = wait_for_job(base, token, second["id"], fleet, timeout=60)
        assert done_second["status"] == "completed", f"{done_second}\n{fleet.log_text()}"
        expected = (
            expected_catalogue(content)
            | expected_catalogue(second_content)
            | {sku: sku for sku in created}
        )
        assert stored_catalogue(pg) == expected

        wanted = {("product.created", sku) for sku in created}
        wanted |= {("import.completed", str(job["id"])), ("import.completed", str(second["id"]))}
        for receiver in receivers:
            _wait_for_events(receiver, wanted, fleet, timeout=90)
            keys = [_event_key(item.payload) for item in receiver.received]
            duplicates = len(keys) - len(set(keys))
            print(
                f"receiver {receiver.port}: {len(keys)} requests, {duplicates} duplicates, "
                f"all in {time.monotonic() - restarted:.1f} s after the broker came back"
            )
            assert all(item.verified for item in receiver.received), [
                item.error for item in receiver.received if not item.verified
            ]
        assert [worker.poll() for worker in workers] == [None, None], "workers must outlive it"
    finally:
        fleet.stop()
        for receiver in receivers:
            receiver.stop()


def _job_status(database: Database, job_id: int) -> str:
    with database.engine.connect() as connection:
        status: str = connection.exec_driver_sql(
            f"SELECT status FROM import_jobs WHERE id = {int(job_id)}"
        ).scalar_one()
    return status


def _event_key(payload: Any) -> tuple[str, str]:
    data = payload["data"]
    return payload["type"], str(data["sku"] if "sku" in data else data["id"])


def _wait_for_events(
    receiver: Receiver, wanted: set[tuple[str, str]], fleet: Fleet, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = {_event_key(item.payload) for item in list(receiver.received) if item.verified}
        if wanted <= got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"missing deliveries: {sorted(wanted - got)}\n{fleet.log_text()}")
        time.sleep(0.2)


IMPORT_ROWS = 15_000
ENDPOINTS = 4
EVENTS_PER_ENDPOINT = 250


def _run_three_imports(fleet: Fleet, base: str, token: str, run: str) -> list[dict[str, Any]]:
    jobs = [
        upload(base, token, catalogue_file(IMPORT_ROWS, prefix=f"{run}{n}-", seed=n))
        for n in range(3)
    ]
    return [wait_for_job(base, token, job["id"], fleet, timeout=120) for job in jobs]


def _span(jobs: list[dict[str, Any]]) -> float:
    """Seconds from the first upload to the last import finished."""
    return max(_time(job["finished_at"]) for job in jobs) - min(
        _time(job["created_at"]) for job in jobs
    )


@pytest.mark.parametrize(
    "topology",
    [
        [
            ("imports", "--queues", "imports", "--concurrency", "1"),
            ("deliveries", "--queues", "webhooks,default", "--concurrency", "4"),
        ],
        [("all", "--concurrency", "4")],
    ],
    ids=["separate-queues", "one-worker"],
)
def test_imports_are_not_starved_by_a_flood_of_deliveries(
    fleet: Fleet, topology: list[tuple[str, ...]]
) -> None:
    base = fleet.web()
    for name, *args in topology:
        fleet.worker(name, *args)
    token = make_token(fleet.database)

    quiet = _run_three_imports(fleet, base, token, "q")
    assert [job["status"] for job in quiet] == ["completed"] * 3

    receivers = [Receiver() for _ in range(ENDPOINTS)]
    try:
        for receiver in receivers:
            receiver.default = Reply(delay=0.02)
            receiver.start()
            create_endpoint(base, token, receiver, ["product.updated"])
        # The events go to the outbox in one transaction; the fleet's sweep fans them out.
        with fleet.database.session() as session:
            for n in range(EVENTS_PER_ENDPOINT):
                events.record(session, "product.updated", {"sku": f"E-{n}", "n": n})
        receivers[0].wait_for(1, timeout=30)  # the flood has begun
        delivered_before = sum(len(receiver.received) for receiver in receivers)
        loaded = _run_three_imports(fleet, base, token, "l")
        delivered_during_imports = (
            sum(len(receiver.received) for receiver in receivers) - delivered_before
        )
        for receiver in receivers:
            receiver.wait_for(EVENTS_PER_ENDPOINT, timeout=120)
            assert all(item.verified for item in receiver.received)
    finally:
        for receiver in receivers:
            receiver.stop()

    assert [job["status"] for job in loaded] == ["completed"] * 3, fleet.log_text()
    in_turn = sorted(loaded, key=lambda job: _time(job["started_at"]))
    # The first import waits for a free worker thread, the others for the one before them.
    waits = [_time(in_turn[0]["started_at"]) - _time(in_turn[0]["created_at"])] + [
        _time(later["started_at"]) - _time(earlier["finished_at"])
        for earlier, later in itertools.pairwise(in_turn)
    ]
    quiet_span, loaded_span = _span(quiet), _span(loaded)
    print(
        f"[{topology_id(topology)}] 3 imports: {quiet_span:.1f} s quiet, {loaded_span:.1f} s "
        f"with {ENDPOINTS * EVENTS_PER_ENDPOINT} deliveries ({delivered_during_imports} sent "
        f"meanwhile); waits before each import {[round(wait, 1) for wait in waits]} s"
    )
    assert delivered_during_imports > 0, "the deliveries should have run alongside the imports"
    # Separate queues: the import worker is free. One worker taking every queue: a delivery
    # turn ends early once it sees an import waiting (checked once a second), instead of
    # holding the thread for its full DRAIN_SECONDS.
    bound = 5.0
    assert bound < webhook_tasks.DRAIN_SECONDS
    assert all(wait < bound for wait in waits), waits
    assert loaded_span < 3 * quiet_span + 3 * bound, (quiet_span, loaded_span)


def topology_id(topology: list[tuple[str, ...]]) -> str:
    return " + ".join(" ".join(worker) for worker in topology)


def _time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
