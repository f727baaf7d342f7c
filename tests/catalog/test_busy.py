"""A request that meets a lock another writer holds (an import's merge, a delete-all) waits a
bounded time, then answers 423 with Retry-After and changes nothing, on both databases; reads go
on meanwhile; and no more requests use the database at once than the pool can serve."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from product_importer import db
from product_importer.db import Database
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


def test_requests_past_the_limit_wait_their_turn_and_streams_do_not_count() -> None:
    import asyncio

    from product_importer.web.request_limit import RequestLimit

    running = peak = 0

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    limited = RequestLimit(app, limit=3)  # type: ignore[arg-type]

    async def burst(path: str) -> int:
        nonlocal peak
        peak = 0
        scope = {"type": "http", "path": path}
        await asyncio.gather(*(limited(scope, None, None) for _ in range(10)))  # type: ignore[arg-type]
        return peak

    def in_a_loop_of_its_own(path: str) -> int:
        # Another test's event loop (Playwright's) may be running in this thread.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, burst(path)).result(timeout=30)

    assert in_a_loop_of_its_own("/api/products") == 3
    assert in_a_loop_of_its_own("/api/imports/7/events") == 10


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
