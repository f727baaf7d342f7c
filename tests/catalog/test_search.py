"""The search structure: every writer puts what it writes in the fresh set, where searches find
it at once; the catch-up moves it into the index in the background, batch by batch.

Most tests here run with the background catch-up switched off, so they prove the fresh path
and drive the catch-up themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from product_importer.catalog import emptying, service, tasks
from product_importer.catalog.models import Product
from product_importer.catalog.schemas import ProductFilters, ProductSort
from product_importer.catalog.search import catchup, documents, writing
from product_importer.db import Database
from product_importer.imports.models import ImportJob
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext
from tests.catalog.helpers import add_products, numbered, wait_for
from tests.imports.conftest import run_import


def found(database: Database, **filters: object) -> list[str]:
    with database.session() as session:
        chosen = ProductFilters(**filters)  # type: ignore[arg-type]
        result = service.list_page(session, chosen, ProductSort.SKU, 1, 100, 1_000)
    return [item.sku for item in result.items]


def search_rows(database: Database) -> tuple[int, int]:
    """(rows in the index, rows in the fresh set)."""
    with database.session() as session:
        index = session.scalar(text("SELECT count(*) FROM product_search"))
        fresh = session.scalar(text("SELECT count(*) FROM search_fresh"))
    return int(index or 0), int(fresh or 0)


def note_all(database: Database, sku_like: str = "%") -> None:
    """Put products written directly (as no writer of the app does) in the fresh set."""
    with database.session() as session:
        sqlite = database.dialect == "sqlite"
        document = documents.SQLITE_DOCUMENT if sqlite else documents.PG_DOCUMENT
        session.execute(
            text(
                f"INSERT INTO search_fresh (product_id, document) SELECT id, {document} "
                "FROM products WHERE sku LIKE :like"
            ),
            {"like": sku_like},
        )


def catch_up_all(database: Database, rows: int = catchup.BATCH_ROWS) -> int:
    return catchup.catch_up(database, threading.Event(), turn_seconds=60, rows=rows)


def api_skus(client: TestClient, query: str) -> list[str]:
    return [item["sku"] for item in client.get(f"/api/products?{query}").json()["items"]]


# --- writers --------------------------------------------------------------------------------


def test_api_edits_are_findable_at_once_and_only_by_their_current_text(
    still_client: TestClient, database: Database
) -> None:
    client = still_client
    created = client.post(
        "/api/products", json={"sku": "LAMP-7", "name": "Brass lamp", "description": "Tall"}
    ).json()
    assert search_rows(database) == (0, 1)
    assert api_skus(client, "q=rass") == ["LAMP-7"]
    assert api_skus(client, "description=tal") == ["LAMP-7"]
    assert catch_up_all(database) == 1
    assert search_rows(database) == (1, 0)
    # The index now holds "brass"; the edit's fresh row hides that entry at once.
    response = client.patch(f"/api/products/{created['id']}", json={"name": "Copper lamp"})
    assert response.status_code == 200, response.text
    assert search_rows(database) == (1, 1)
    assert api_skus(client, "q=copper") == ["LAMP-7"]
    assert api_skus(client, "q=brass") == []
    assert api_skus(client, "name=copper lamp") == ["LAMP-7"]
    assert api_skus(client, "name=tall") == []  # a column filter reads its column
    assert client.delete(f"/api/products/{created['id']}").status_code == 204
    assert api_skus(client, "q=copper") == []
    assert search_rows(database) == (0, 0)


def test_an_import_is_findable_the_moment_it_completes(
    still_client: TestClient, database: Database
) -> None:
    client = still_client
    client.post("/api/products", json={"sku": "OLD-1", "name": "Pine desk"})
    catch_up_all(database)  # "pine desk" is in the index
    csv = "sku,name,description\nOLD-1,Walnut desk,\n" + "".join(
        f"IMP-{i},Imported walnut {i},Oiled {i}\n" for i in range(30)
    )
    job = run_import(client, csv.encode())
    assert job["status"] == "completed", job
    page = client.get("/api/products?name=Imported walnut 29").json()
    assert [item["sku"] for item in page["items"]] == ["IMP-29"]
    assert page["search_pending"] is True  # the index is behind; the results are not
    assert api_skus(client, "description=oiled 29") == ["IMP-29"]
    assert len(api_skus(client, "q=walnut")) == 31
    assert api_skus(client, "q=pine") == []  # the index's old entry is not used
    assert search_rows(database) == (1, 31)

    # The same answers once the index has caught up.
    catch_up_all(database, rows=7)
    assert search_rows(database) == (31, 0)
    assert len(api_skus(client, "q=walnut")) == 31
    assert api_skus(client, "q=pine") == []
    assert client.get("/api/products").json()["search_pending"] is False

    # The next import changes the last row's text: only the new text finds it, at once.
    job = run_import(client, b"sku,name,description\nIMP-29,Teak bench,\n")
    assert (job["status"], job["rows_updated"]) == ("completed", 1)
    assert api_skus(client, "name=teak bench") == ["IMP-29"]
    assert api_skus(client, "name=imported walnut 29") == []
    assert search_rows(database) == (31, 1)


def test_a_failed_import_leaves_search_as_it_was(
    still_client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = still_client
    client.post("/api/products", json={"sku": "KEEP-1", "name": "Oak chair"})
    # The merge is the last step: a file that fails while reading never reaches it, so make
    # the merge itself fail on its last statement (the job row it updates is gone).
    from product_importer.imports import pipeline

    def failing_marker(job_id: int) -> object:
        def marker(counts: object) -> list[tuple[str, dict[str, object]]]:
            return [("UPDATE no_such_table SET x = 1", {})]

        return marker

    monkeypatch.setattr(pipeline, "_merged_marker", failing_marker)
    job = run_import(client, b"sku,name\nKEEP-1,Elm chair\nNEW-1,Elm stool\n")
    assert job["status"] == "failed", job
    assert api_skus(client, "q=elm") == []
    assert api_skus(client, "q=oak") == ["KEEP-1"]
    assert search_rows(database) == (0, 1)


def test_an_import_that_changes_nothing_leaves_the_fresh_set_alone(
    still_client: TestClient, database: Database
) -> None:
    still_client.post("/api/products", json={"sku": "SAME-1", "name": "Same"})
    catch_up_all(database)
    job = run_import(still_client, b"sku,name,description\nSAME-1,Same,\n")
    assert (job["status"], job["rows_unchanged"]) == ("completed", 1)
    assert search_rows(database) == (1, 0)


def test_removed_products_leave_no_search_rows(database: Database) -> None:
    add_products(database, numbered(20, name="Doomed chair"), index=False)
    note_all(database)
    with database.session() as session:
        first = session.scalar(select(func.min(Product.id)))
        assert first is not None
        assert catchup.catch_up_batch(session, rows=10) == 10  # half indexed, half fresh
    with database.session() as session:
        for product_id in (first, first + 5, first + 19):  # indexed, indexed, fresh
            service.delete(session, product_id)
    assert search_rows(database) == (8, 9)
    assert len(found(database, q="doomed")) == 17
    catch_up_all(database)
    assert search_rows(database) == (17, 0)
    assert len(found(database, q="doomed")) == 17


# --- the catch-up ---------------------------------------------------------------------------


def test_the_catch_up_moves_batches_and_every_search_agrees_throughout(
    database: Database,
) -> None:
    add_products(database, numbered(5, prefix="OLD-", name="Settled"))
    add_products(database, numbered(40, prefix="NEW-", name="Fresh arrival"), index=False)
    note_all(database, "NEW-%")
    expected = [f"NEW-{i:05d}" for i in range(40)]
    while True:
        assert found(database, q="arrival") == expected
        assert found(database, name="settled") == [f"OLD-{i:05d}" for i in range(5)]
        with database.session() as session:
            moved = catchup.catch_up_batch(session, rows=7)
        if not moved:
            break
    assert search_rows(database) == (45, 0)


def test_a_batch_that_fails_leaves_everything_as_it_was(database: Database) -> None:
    add_products(database, numbered(12, name="Sturdy crate"), index=False)
    from tests.factories import index_everything

    with database.session() as session:
        index_everything(session)
        session.execute(text("UPDATE products SET name = 'Flimsy crate'"))
        session.execute(text("DELETE FROM search_fresh"))
    with database.session() as session:
        for product_id in session.scalars(select(Product.id)):
            writing.note_product(session, product_id)
    with pytest.raises(RuntimeError), database.session() as session:
        assert catchup.catch_up_batch(session, rows=5) == 5
        raise RuntimeError("the process died before the commit")
    assert search_rows(database) == (12, 12)
    assert len(found(database, q="flimsy")) == 12 and found(database, q="sturdy") == []
    catch_up_all(database, rows=5)
    assert search_rows(database) == (12, 0)
    assert len(found(database, q="flimsy")) == 12 and found(database, q="sturdy") == []


CATCH_UP_SCRIPT = """
import sys, threading
from product_importer.catalog.search import catchup, documents, writing
from product_importer.db import Database
database = Database(sys.argv[1])
print("started", flush=True)
catchup.catch_up(database, threading.Event(), turn_seconds=600, rows=50)
"""


def test_a_catch_up_killed_midway_loses_nothing_and_resumes(database: Database) -> None:
    add_products(database, numbered(30_000, name="Durable hinge"), index=False)
    note_all(database)
    url = database.engine.url.render_as_string(hide_password=False)
    process = subprocess.Popen(
        [sys.executable, "-c", CATCH_UP_SCRIPT, url], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "started"
    wait_for(lambda: search_rows(database)[0] > 0, timeout=30)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    index, fresh = search_rows(database)
    print(f"killed with {index} indexed and {fresh} fresh")
    assert fresh > 0 and index + fresh == 30_000  # every product in exactly one part
    assert found(database, q="durable hinge") and len(found(database, q="hinge")) == 100
    with database.session() as session:
        assert service.count(session, ProductFilters(q="hinge"), 100_000) == (30_000, False)
    catch_up_all(database)
    assert search_rows(database) == (30_000, 0)


def test_the_catch_up_yields_to_a_running_import(database: Database) -> None:
    add_products(database, numbered(10, name="Patient shelf"), index=False)
    note_all(database)
    with database.session() as session:
        job = ImportJob(filename="f.csv", status="running")
        session.add(job)
        session.flush()
        job_id = job.id
    assert catch_up_all(database) == 0
    assert len(found(database, q="patient")) == 10
    with database.session() as session:
        session.execute(
            text("UPDATE import_jobs SET status = 'completed' WHERE id = :id"), {"id": job_id}
        )
    assert catch_up_all(database) == 10


def test_the_catch_up_steps_around_a_row_being_written(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    add_products(database, numbered(10, name="Contested shelf"), index=False)
    note_all(database)
    with database.engine.connect() as writer:
        # An edit holds a fresh row: the catch-up neither waits for it nor takes it.
        writer.execute(
            text("SELECT product_id FROM search_fresh ORDER BY product_id LIMIT 1 FOR UPDATE")
        )
        started = time.monotonic()
        assert catch_up_all(database) == 9
        assert time.monotonic() - started < 2
        writer.rollback()
    assert catch_up_all(database) == 1
    assert search_rows(database) == (10, 0)
    assert len(found(database, q="contested")) == 10


def test_the_background_catch_up_empties_the_fresh_set(
    client: TestClient, database: Database
) -> None:
    csv = "sku,name\n" + "".join(f"BG-{i},Background lamp {i}\n" for i in range(50))
    job = run_import(client, csv.encode())
    assert job["status"] == "completed", job
    assert len(api_skus(client, "q=background")) == 50
    wait_for(lambda: not client.get("/api/products").json()["search_pending"])
    assert search_rows(database) == (50, 0)
    assert len(api_skus(client, "q=background")) == 50


# --- delete all -----------------------------------------------------------------------------


def test_delete_all_clears_both_parts(settings: Settings, database: Database) -> None:
    add_products(database, numbered(30, name="Gone soon"))
    add_products(database, numbered(5, prefix="FRESH-", name="Gone too"), index=False)
    note_all(database, "FRESH-%")
    with database.session() as session:
        job, _created = service.start_delete_all(session, "tester")
    tasks.delete_all(TaskContext(database=database, settings=settings), job_id=job.id)
    assert search_rows(database) == (0, 0)
    assert found(database, q="gone") == []


def test_the_sqlite_search_table_keeps_its_merge_setting_through_delete_all(
    database: Database,
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("an FTS5 setting")

    def automerge() -> int:
        with database.session() as session:
            sql = "SELECT v FROM product_search_config WHERE k = 'automerge'"
            return int(session.scalar(text(sql)) or 4)

    assert automerge() == 16  # migration 0011
    add_products(database, numbered(3, name="Gone soon"))
    with database.session() as session:
        emptying.sqlite_delete_all(session)
    assert automerge() == 16
    assert found(database, q="gone") == []


def test_a_drained_fresh_set_is_vacuumed_at_once(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL keeps the moved rows as dead ones until a vacuum, and every search scans the
    fresh set: a million of them made each search 30 ms slower until autovacuum came round."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite frees the pages of deleted rows at once")
    monkeypatch.setattr(catchup, "VACUUM_AFTER_ROWS", 1_000)
    monkeypatch.setattr(catchup, "_moved_since_vacuum", 0)
    add_products(database, numbered(3_000, name="Dusty shelf"), index=False)
    note_all(database)

    def fresh_pages() -> int:
        with database.session() as session:
            size = session.scalar(text("SELECT pg_relation_size('search_fresh')"))
        return int(size or 0) // 8192

    assert fresh_pages() > 0
    assert catch_up_all(database, rows=500) == 3_000
    assert fresh_pages() == 0  # vacuumed, and its empty pages given back
    with database.session() as session:
        assert catchup.catching_up(session) is False
    assert len(found(database, q="dusty")) == 100
