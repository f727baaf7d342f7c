"""A request that meets a lock another writer holds (an import's merge, a delete-all) waits a
bounded time, then answers 423 with Retry-After and changes nothing, on both databases; reads go
on meanwhile; and no more requests use the database at once than the pool can serve."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from product_importer import db
from product_importer.db import Database
from product_importer.web.request_limit import RequestLimit
from tests.catalog.helpers import add_products, numbered


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "REQUEST_LOCK_WAIT_MS", 600)


@pytest.fixture
def hold_catalogue(database: Database) -> Iterator[Callable[[], threading.Event]]:
    """Start another connection holding what an import's merge holds, until the returned
    event is set."""
    release = threading.Event()
    threads: list[threading.Thread] = []

    def start() -> threading.Event:
        taken = threading.Event()

        def hold() -> None:
            with database.engine.connect() as connection:
                if database.dialect == "postgresql":
                    connection.exec_driver_sql("BEGIN")
                    connection.exec_driver_sql("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE")
                else:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                taken.set()
                release.wait(30)
                connection.exec_driver_sql("ROLLBACK")

        threads.append(threading.Thread(target=hold))
        threads[-1].start()
        assert taken.wait(10)
        return release

    yield start
    release.set()
    for thread in threads:
        thread.join(10)


def test_an_edit_during_a_merge_is_told_to_retry_and_changes_nothing(
    client: TestClient, database: Database, hold_catalogue: Callable[[], threading.Event]
) -> None:
    add_products(database, numbered(3))
    release = hold_catalogue()
    listed = client.get("/api/products")
    product = listed.json()["items"][0]  # reads are not held up by the writer
    started = time.monotonic()
    answer = client.patch(f"/api/products/{product['id']}", json={"name": "Renamed"})
    waited = time.monotonic() - started
    assert answer.status_code == 423, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert "Try again in a few seconds" in answer.json()["detail"]
    assert waited < 10
    release.set()
    time.sleep(0.2)
    with database.engine.connect() as connection:
        name = connection.execute(
            text("SELECT name FROM products WHERE id = :id"), {"id": product["id"]}
        ).scalar_one()
    assert name == product["name"]
    again = client.patch(f"/api/products/{product['id']}", json={"name": "Renamed"})
    assert again.status_code == 200, again.text


def test_background_work_still_waits_its_full_time(database: Database) -> None:
    """Only requests give up early: a task's session keeps the engine's long wait."""
    with database.session() as session:
        if database.dialect == "postgresql":
            value = session.execute(text("SHOW lock_timeout")).scalar_one()
            assert value == "0"
        else:
            value = session.execute(text("PRAGMA busy_timeout")).scalar_one()
            assert value == db.SQLITE_BUSY_TIMEOUT_MS
    with database.session(request=True) as session:
        if database.dialect == "postgresql":
            assert session.execute(text("SHOW lock_timeout")).scalar_one() == "600ms"
        else:
            assert session.execute(text("PRAGMA busy_timeout")).scalar_one() == 600


def test_no_more_requests_at_once_than_the_pool_serves_less_a_reserve(
    database: Database,
) -> None:
    slots = database.request_slots()
    pool = database.engine.pool
    capacity = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
    assert slots == capacity - db.POOL_RESERVE
    assert slots >= 4


def _in_a_loop_of_its_own(coroutine: Any) -> Any:
    # Another test's event loop (Playwright's) may be running in this thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=30)


def test_requests_past_the_limit_wait_their_turn_and_streams_do_not_count() -> None:
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    async def app(scope: dict[str, Any], receive: object, send: object) -> None:
        method = scope["method"]
        running[method] += 1
        running["all"] += 1
        peak[method] = max(peak[method], running[method])
        peak["all"] = max(peak["all"], running["all"])
        await asyncio.sleep(0.05)
        running[method] -= 1
        running["all"] -= 1

    async def burst(path: str) -> Counter[str]:
        limited = RequestLimit(app, limit=6)  # type: ignore[arg-type]
        peak.clear()
        await asyncio.gather(
            *(
                limited({"type": "http", "path": path, "method": method}, None, None)  # type: ignore[arg-type]
                for method in ("GET", "PATCH") * 10
            )
        )
        return peak

    # Six turns: two for catalogue writes, four for the rest.
    assert _in_a_loop_of_its_own(burst("/api/products")) == {"all": 6, "GET": 4, "PATCH": 2}
    assert _in_a_loop_of_its_own(burst("/api/webhooks/1"))["all"] == 4  # all in the rest
    assert _in_a_loop_of_its_own(burst("/api/imports/7/events"))["all"] == 20


def test_writes_waiting_for_a_lock_leave_reads_and_other_writes_their_turns() -> None:
    """Edits waiting on an import's merge hold every catalogue write turn; reads and other
    writes still go through."""
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: object, send: object) -> None:
        if scope["method"] == "PATCH":
            await release.wait()  # an edit waiting for the merge's lock

    limited = RequestLimit(app, limit=25)  # type: ignore[arg-type]

    async def scenario() -> bool:
        def request(method: str, path: str = "/api/products/1") -> Any:
            scope = {"type": "http", "path": path, "method": method}
            return limited(scope, None, None)  # type: ignore[arg-type]

        writes = [asyncio.create_task(request("PATCH")) for _ in range(25)]
        await asyncio.sleep(0.01)
        others = [request("GET") for _ in range(40)]
        others += [request("POST", "/api/webhooks/1/test") for _ in range(10)]
        try:
            await asyncio.wait_for(asyncio.gather(*others), 5)
            return True
        finally:
            release.set()
            await asyncio.gather(*writes)

    assert _in_a_loop_of_its_own(scenario())


def test_no_free_connection_is_a_503_with_retry_after_not_a_traceback(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Background work holding every connection (here the test itself) leaves a request none."""
    pool = database.engine.pool
    monkeypatch.setattr(pool, "_timeout", 0.3)
    held = [database.engine.connect() for _ in range(pool.size() + pool._max_overflow)]  # type: ignore[attr-defined]
    try:
        answer = client.get("/api/products")
    finally:
        for connection in held:
            connection.close()
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert "too busy" in answer.json()["detail"]
    assert client.get("/api/products").status_code == 200
