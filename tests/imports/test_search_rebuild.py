"""An import that writes most of the catalogue rebuilds PostgreSQL's search table in its merge
transaction instead of keeping it row by row. Here every import of two rows or more counts as
large; on SQLite the same scenarios run the row-by-row path and must give the same answers."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from product_importer.catalog import search_index
from product_importer.catalog import tasks as catalog_tasks
from product_importer.db import Database
from product_importer.imports import merge, pipeline
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext
from tests.catalog.helpers import wait_for_delete_job
from tests.imports.conftest import run_import


@pytest.fixture(autouse=True)
def small_imports_count_as_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_index, "PG_REBUILD_MIN_ROWS", 2)


def skus(client: TestClient, query: str) -> list[str]:
    return sorted(item["sku"] for item in client.get(f"/api/products?{query}").json()["items"])


def search_table(database: Database) -> tuple[int | None, int, list[str]]:
    """(the table's oid on PostgreSQL, its rows, its index and constraint names)."""
    with database.session() as session:
        rows = int(session.scalar(text("SELECT count(*) FROM product_search")) or 0)
        if database.dialect != "postgresql":
            return None, rows, []
        oid = session.scalar(text("SELECT 'product_search'::regclass::oid"))
        names = session.scalars(
            text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'product_search' UNION ALL "
                "SELECT conname FROM pg_constraint WHERE conrelid = 'product_search'::regclass "
                "AND contype = 'f' UNION ALL "
                "SELECT relname FROM pg_class WHERE relname LIKE 'product_search_next%' "
                "OR relname LIKE 'product_search_old%'"
            )
        )
        return int(oid), rows, sorted(names)


CANONICAL = ["ix_product_search_trgm", "product_search_pkey", "product_search_product_id_fkey"]


def test_a_rebuilt_search_table_is_current_complete_and_kept_up_afterwards(
    client: TestClient, database: Database
) -> None:
    client.post("/api/products", json={"sku": "OLD-1", "name": "Pine desk"})
    client.post("/api/products", json={"sku": "KEEP-1", "name": "Quiet lamp"})
    oid_before, _, _ = search_table(database)
    csv = "sku,name,description\nOLD-1,Walnut desk,\n" + "".join(
        f"NEW-{i},Walnut stool {i},Oiled\n" for i in range(5)
    )
    job = run_import(client, csv.encode())
    assert (job["status"], job["rows_created"], job["rows_updated"]) == ("completed", 5, 1)

    oid_after, rows, names = search_table(database)
    assert rows == 7
    if database.dialect == "postgresql":
        # Rebuilt, under the usual names; the replaced table was dropped after the commit.
        assert oid_after != oid_before
        assert names == CANONICAL
    assert len(skus(client, "q=walnut")) == 6
    assert skus(client, "q=pine") == []
    assert skus(client, "name=quiet") == ["KEEP-1"]  # untouched products stay findable
    assert skus(client, "description=oiled") == [f"NEW-{i}" for i in range(5)]

    # Single edits, deletes (cascading to the search row) and a small import that keeps the
    # table row by row all work on the rebuilt table.
    product_id = client.get("/api/products?sku=NEW-0").json()["items"][0]["id"]
    assert client.delete(f"/api/products/{product_id}").status_code == 204
    assert search_table(database)[1] == 6
    lamp = client.get("/api/products?sku=KEEP-1").json()["items"][0]
    assert client.patch(f"/api/products/{lamp['id']}", json={"name": "Loud lamp"}).is_success
    assert skus(client, "q=loud") == ["KEEP-1"]
    job = run_import(client, b"sku,name\nNEW-1,Teak stool\n")
    assert job["status"] == "completed"
    assert skus(client, "q=teak") == ["NEW-1"]
    assert search_table(database)[0] == oid_after  # a one-row import does not rebuild


def test_a_failed_merge_keeps_the_old_search_table(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post("/api/products", json={"sku": "OLD-1", "name": "Pine desk"})
    before = search_table(database)

    def failing_marker(job_id: int) -> object:
        return lambda counts: [("UPDATE no_such_table SET x = 1", {})]

    monkeypatch.setattr(pipeline, "_merged_marker", failing_marker)
    job = run_import(client, b"sku,name\nOLD-1,Walnut desk\nNEW-1,Walnut stool\nNEW-2,Elm\n")
    assert job["status"] == "failed", job
    assert search_table(database) == before
    assert skus(client, "q=pine") == ["OLD-1"]
    assert skus(client, "q=walnut") == []


def test_the_swap_waits_for_a_long_search_and_deadlocks_with_no_writer(
    client: TestClient, database: Database
) -> None:
    """A search holding the old table makes the swap wait (retrying a short lock timeout) and a
    product written meanwhile waits for the merge; both finish, and nothing deadlocks."""
    if database.dialect != "postgresql":
        pytest.skip("the swap is PostgreSQL's")
    client.post("/api/products", json={"sku": "OLD-1", "name": "Pine desk"})
    release = threading.Event()
    holding = threading.Event()

    def long_search() -> None:
        with database.engine.connect() as connection:
            # Products first, then the search table, as every search takes them.
            connection.execute(text("SELECT count(*) FROM products"))
            connection.execute(text("SELECT count(*) FROM product_search"))
            holding.set()
            release.wait(10)

    written: list[int] = []

    def writer() -> None:
        # Reads products, then waits behind the merge's lock to write one. On a loaded machine
        # the merge may hold it past a request's lock wait (5 s): 423, and the client retries.
        deadline = time.monotonic() + 60
        while True:
            response = client.post("/api/products", json={"sku": "MID-1", "name": "Midway"})
            if response.status_code != 423 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        written.append(response.status_code)

    reader = threading.Thread(target=long_search)
    reader.start()
    assert holding.wait(10)
    threading.Timer(1.5, release.set).start()
    writing = threading.Timer(0.5, writer)
    writing.start()
    started = time.monotonic()
    job = run_import(
        client, ("sku,name\n" + "".join(f"N-{i},Walnut {i}\n" for i in range(20))).encode()
    )
    reader.join()
    writing.join()
    assert job["status"] == "completed", job
    assert written == [201]
    assert time.monotonic() - started >= 1.0  # it waited for the search to end
    assert len(skus(client, "q=walnut")) == 20
    assert skus(client, "q=midway") == ["MID-1"]
    assert search_table(database)[2] == CANONICAL


def test_delete_all_drops_a_replaced_search_table_left_behind(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("the swap is PostgreSQL's")
    # A replaced table the import could not drop (its locks were busy) references products,
    # so delete-all (TRUNCATE) must drop it first.
    monkeypatch.setattr(merge.PostgresMerger, "_drop_retired_search", lambda self: None)
    job = run_import(client, b"sku,name\nA-1,Alpha\nA-2,Beta\n")
    assert job["status"] == "completed"
    assert any(name.startswith("product_search_old_") for name in search_table(database)[2])
    response = client.delete("/api/products?confirm=true")
    assert response.status_code == 202
    assert wait_for_delete_job(client, response.json()["id"])["status"] == "completed"
    assert search_table(database)[1:] == (0, CANONICAL)


def test_a_replaced_search_table_left_behind_is_dropped_later(
    client: TestClient, database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("the swap is PostgreSQL's")
    monkeypatch.setattr(merge.PostgresMerger, "_drop_retired_search", lambda self: None)
    assert run_import(client, b"sku,name\nA-1,Alpha\nA-2,Beta\n")["status"] == "completed"
    assert any(name.startswith("product_search_old_") for name in search_table(database)[2])
    catalog_tasks.drop_retired_search(TaskContext(database=database, settings=settings))
    assert search_table(database)[1:] == (2, CANONICAL)
    assert skus(client, "q=alpha") == ["A-1"]


def test_progress_beats_while_a_long_statement_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merge, "BEAT_SECONDS", 0.05)
    beats: list[float] = []

    def beat() -> None:
        beats.append(time.monotonic())
        if len(beats) == 2:
            raise RuntimeError("a cancel, noticed by the merge at its next step")

    with merge._beating(beat):
        time.sleep(0.5)
    count = len(beats)
    time.sleep(0.2)
    assert count >= 4  # went on after the failing beat
    assert len(beats) == count  # and stopped with the statement
