"""Search indexing: single edits and imports at once, in their own transaction; an undo's
restored text through the backlog afterwards."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from product_importer.catalog import service, tasks
from product_importer.catalog.models import Product, SearchBacklog
from product_importer.catalog.schemas import ProductFilters, ProductSort
from product_importer.db import Database, utcnow
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext
from tests.catalog.helpers import add_products, numbered, wait_for
from tests.imports.conftest import run_import


def context(settings: Settings, database: Database) -> TaskContext:
    return TaskContext(database=database, settings=settings)


def found(database: Database, **filters: object) -> list[str]:
    with database.session() as session:
        chosen = ProductFilters(**filters)  # type: ignore[arg-type]
        result = service.list_page(session, chosen, ProductSort.SKU, 1, 100, 1_000)
    return [item.sku for item in result.items]


def pending(database: Database) -> bool:
    with database.session() as session:
        return service.list_page(
            session, ProductFilters(), ProductSort.SKU, 1, 1, 1_000
        ).search_pending


def search_rows(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(text("SELECT count(*) FROM product_search")) or 0)


def add_backlog(database: Database, since_seconds_ago: float = 60.0, **values: object) -> int:
    with database.session() as session:
        entry = SearchBacklog(changed_since=utcnow() - timedelta(seconds=since_seconds_ago))
        for name, value in values.items():
            setattr(entry, name, value)
        session.add(entry)
        session.flush()
        return entry.id


def backlog_ids(database: Database) -> list[int]:
    with database.session() as session:
        return list(session.scalars(select(SearchBacklog.id)))


def api_skus(client: TestClient, query: str) -> list[str]:
    return [item["sku"] for item in client.get(f"/api/products?{query}").json()["items"]]


# --- single products ------------------------------------------------------------------------


def test_api_edits_are_searchable_at_once(client: TestClient, database: Database) -> None:
    created = client.post(
        "/api/products", json={"sku": "LAMP-7", "name": "Brass lamp", "description": "Tall"}
    ).json()
    assert api_skus(client, "q=rass") == ["LAMP-7"]
    assert api_skus(client, "description=tal") == ["LAMP-7"]
    response = client.patch(f"/api/products/{created['id']}", json={"name": "Copper lamp"})
    assert response.status_code == 200, response.text
    assert api_skus(client, "q=copper") == ["LAMP-7"]
    assert api_skus(client, "q=brass") == []
    assert client.delete(f"/api/products/{created['id']}").status_code == 204
    assert api_skus(client, "q=copper") == []
    assert search_rows(database) == 0


def test_an_edit_that_leaves_the_text_alone_keeps_it_searchable(
    client: TestClient, database: Database
) -> None:
    created = client.post("/api/products", json={"sku": "FLAG-1", "name": "Banner"}).json()
    client.patch(f"/api/products/{created['id']}", json={"active": False})
    assert api_skus(client, "q=banner") == ["FLAG-1"]
    assert search_rows(database) == 1


# --- imports, and the backlog ----------------------------------------------------------------


def test_an_import_is_searchable_the_moment_it_completes(
    client: TestClient, database: Database
) -> None:
    client.post("/api/products", json={"sku": "OLD-1", "name": "Pine desk"})
    csv = "sku,name,description\nOLD-1,Walnut desk,\n" + "".join(
        f"IMP-{i},Imported walnut {i},Oiled {i}\n" for i in range(30)
    )
    job = run_import(client, csv.encode())
    assert job["status"] == "completed", job
    # No waiting: the merge indexed what it wrote before it committed.
    page = client.get("/api/products?name=Imported walnut 29").json()
    assert [item["sku"] for item in page["items"]] == ["IMP-29"]
    assert page["search_pending"] is False
    assert api_skus(client, "description=oiled 29") == ["IMP-29"]
    assert len(api_skus(client, "q=walnut")) == 31
    assert api_skus(client, "q=pine") == []  # the old text is gone from the index
    assert backlog_ids(database) == []
    assert search_rows(database) == 31

    # The next import changes the last row's text: only the new text finds it, at once.
    job = run_import(client, b"sku,name,description\nIMP-29,Teak bench,\n")
    assert (job["status"], job["rows_updated"]) == ("completed", 1)
    assert api_skus(client, "name=teak bench") == ["IMP-29"]
    assert api_skus(client, "name=imported walnut 29") == []
    assert search_rows(database) == 31


def test_a_failed_import_leaves_the_search_index_as_it_was(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    assert search_rows(database) == 1


def test_an_import_that_changes_nothing_leaves_no_backlog(
    client: TestClient, database: Database
) -> None:
    client.post("/api/products", json={"sku": "SAME-1", "name": "Same"})
    job = run_import(client, b"sku,name,description\nSAME-1,Same,\n")
    assert (job["status"], job["rows_unchanged"]) == ("completed", 1)
    assert backlog_ids(database) == []


def test_the_task_indexes_the_backlog_in_chunks(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "INDEX_CHUNK_IDS", 7)
    add_products(database, numbered(5, prefix="OLD-", name="Settled"))
    backlog_id = add_backlog(database, since_seconds_ago=1)
    add_products(database, numbered(40, prefix="NEW-", name="Fresh arrival"), index=False)
    assert found(database, q="arrival") == []
    assert pending(database) is True
    tasks.index_search(context(settings, database), backlog_id=backlog_id)
    assert len(found(database, q="arrival")) == 40
    assert found(database, name="settled") == [f"OLD-{i:05d}" for i in range(5)]
    assert pending(database) is False
    assert search_rows(database) == 45
    # A duplicate of the task is a no-op; indexing the same rows again changes nothing.
    tasks.index_search(context(settings, database), backlog_id=backlog_id)
    backlog_id = add_backlog(database, since_seconds_ago=3600)
    tasks.index_search(context(settings, database), backlog_id=backlog_id)
    assert search_rows(database) == 45
    assert len(found(database, q="arrival")) == 40


def test_products_deleted_before_indexing_are_skipped(
    settings: Settings, database: Database
) -> None:
    backlog_id = add_backlog(database)
    add_products(database, numbered(20, name="Doomed chair"), index=False)
    with database.session() as session:
        first = session.scalar(select(func.min(Product.id)))
        assert first is not None
        for product_id in (first, first + 5, first + 19):
            service.delete(session, product_id)
    tasks.index_search(context(settings, database), backlog_id=backlog_id)
    assert len(found(database, q="doomed")) == 17
    assert search_rows(database) == 17


def test_a_backlog_left_by_a_crash_is_picked_up_by_the_sweep(
    client: TestClient, database: Database
) -> None:
    # An undo committed (products and backlog entry) but the process died before it could
    # send the indexing task; or a catalogue upgraded from a version that indexed imports
    # afterwards.
    add_products(database, numbered(25, name="Survivor table"), index=False)
    add_backlog(database)
    wait_for(lambda: len(api_skus(client, "q=survivor")) == 25)
    wait_for(lambda: not client.get("/api/products").json()["search_pending"])


def test_the_sweep_hands_over_only_entries_nobody_works_on(
    settings: Settings, database: Database
) -> None:
    fresh = add_backlog(database, heartbeat_at=utcnow())
    stale = add_backlog(database, heartbeat_at=utcnow() - timedelta(minutes=10))
    unclaimed = add_backlog(database)
    cutoff = service.stale_cutoff(service.BACKLOG_STALE_AFTER_SECONDS)
    with database.session() as session:
        assert service.queue_search_indexing(session, cutoff) == [stale, unclaimed]
    tasks.index_search(context(settings, database), backlog_id=fresh)  # a live worker has it
    assert backlog_ids(database) == [fresh, stale, unclaimed]


def test_a_stopping_worker_leaves_the_entry_for_the_next(
    settings: Settings, database: Database
) -> None:
    backlog_id = add_backlog(database)
    add_products(database, numbered(3, name="Paused"), index=False)
    stopping = context(settings, database)
    stopping.stopping.set()
    tasks.index_search(stopping, backlog_id=backlog_id)
    with database.session() as session:
        entry = session.get(SearchBacklog, backlog_id)
        assert entry is not None and entry.heartbeat_at is None
    tasks.index_search(context(settings, database), backlog_id=backlog_id)
    assert len(found(database, q="paused")) == 3


# --- delete all -----------------------------------------------------------------------------


def test_delete_all_clears_the_search_index_and_backlog(
    settings: Settings, database: Database
) -> None:
    add_products(database, numbered(30, name="Gone soon"))
    add_backlog(database)
    with database.session() as session:
        job, _created = service.start_delete_all(session, "tester")
    tasks.delete_all(context(settings, database), job_id=job.id)
    assert search_rows(database) == 0
    assert backlog_ids(database) == []
    assert found(database, q="gone") == []


def test_indexing_waits_out_a_row_being_written(settings: Settings, database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    add_products(database, numbered(10, name="Contested shelf"), index=False)
    backlog_id = add_backlog(database)
    with database.engine.connect() as writer:
        # An edit (or an import's merge) holds a row; the indexer must neither wait holding its
        # own locks nor skip the row.
        writer.execute(text("SELECT id FROM products ORDER BY id DESC LIMIT 1 FOR UPDATE"))
        worker = threading.Thread(
            target=tasks.index_search,
            args=(context(settings, database),),
            kwargs={"backlog_id": backlog_id},
        )
        worker.start()
        time.sleep(0.6)
        assert found(database, q="contested") == []
        writer.rollback()
    worker.join(timeout=20)
    assert len(found(database, q="contested")) == 10
    assert backlog_ids(database) == []


def test_the_sqlite_search_table_keeps_its_merge_setting_through_delete_all(
    database: Database,
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("an FTS5 setting")
    from product_importer.catalog import emptying

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
