"""Bulk actions through the API on SQLite and PostgreSQL: by ids, by filter, stale totals,
large selections as jobs, undo, and hostile requests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from product_importer.auth.roles import Role
from product_importer.catalog.locking import CatalogueLock
from product_importer.changes import bulk
from product_importer.db import Database
from tests.catalog.helpers import events, wait_for
from tests.changes.helpers import catalogue, csv_of, undo, wait_for_change
from tests.factories import sign_in
from tests.imports.conftest import run_import

ROWS = csv_of(
    [(f"OAK-{i:02d}", f"Oak chair {i}", "oak") for i in range(12)]
    + [(f"PINE-{i:02d}", f"Pine desk {i}", "pine") for i in range(8)]
)


def test_bulk_deactivate_by_filter_checks_the_total_then_undoes(
    client: TestClient, database: Database
) -> None:
    run_import(client, ROWS)
    before = catalogue(database)
    stale = client.post(
        "/api/products/bulk",
        json={"action": "deactivate", "filter": {"sku": "OAK-*"}, "expected_total": 11},
    )
    assert stale.status_code == 409, stale.text
    assert "matches 12 products, not the 11" in stale.json()["detail"]
    assert catalogue(database) == before

    done = client.post(
        "/api/products/bulk",
        json={"action": "deactivate", "filter": {"sku": "OAK-*"}, "expected_total": 12},
    )
    assert done.status_code == 200, done.text
    change = done.json()
    assert (change["kind"], change["status"], change["updated"]) == ("bulk", "completed", 12)
    assert change["undoable"] is True
    after = catalogue(database)
    assert sorted(key for key, row in after.items() if not row[3]) == [
        f"oak-{i:02d}" for i in range(12)
    ]
    emitted = events(database, "products.bulk_changed")
    assert len(emitted) == 1
    assert emitted[0].payload["data"] == {
        "change_id": change["id"],
        "action": "deactivate",
        "matched": 12,
        "changed": 12,
    }

    result = undo(client, change["id"])
    assert (result["restored"], result["kept"]) == (12, 0)
    assert catalogue(database) == before


def test_bulk_by_ids_delete_and_activate(client: TestClient, database: Database) -> None:
    run_import(client, ROWS)
    items = client.get("/api/products", params={"sku": "PINE-*", "page_size": 50}).json()["items"]
    ids = [item["id"] for item in items]
    response = client.post("/api/products/bulk", json={"action": "delete", "ids": ids[:3]})
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 3
    assert len(catalogue(database)) == 17
    # Products that are active already are not changed (nor recorded).
    response = client.post("/api/products/bulk", json={"action": "activate", "ids": ids[3:]})
    assert response.json()["updated"] == 0
    # Deleted products are searchable no more, and come back with undo.
    assert client.get("/api/products", params={"q": "desk"}).json()["total"] == 5
    undo(client, response.json()["id"] - 1)
    assert len(catalogue(database)) == 20
    wait_for(lambda: not client.get("/api/products").json()["search_pending"])
    assert client.get("/api/products", params={"q": "desk"}).json()["total"] == 8


def test_a_large_selection_is_a_job(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "INLINE_LIMIT", 5)
    run_import(client, ROWS)
    response = client.post(
        "/api/products/bulk",
        json={"action": "deactivate", "filter": {"q": "oak"}, "expected_total": 12},
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/changes/{response.json()['id']}"
    change = wait_for_change(client, response.json()["id"])
    assert (change["status"], change["updated"]) == ("completed", 12)
    assert sum(not row[3] for row in catalogue(database).values()) == 12


def test_a_bulk_action_never_overlaps_an_import(client: TestClient, database: Database) -> None:
    run_import(client, ROWS)
    lock = CatalogueLock(database)
    # The worker frees the catalogue right after it records `completed`.
    assert wait_for(lock.try_acquire, timeout=5)
    try:
        response = client.post("/api/products/bulk", json={"action": "delete", "ids": [1, 2]})
    finally:
        lock.release()
    assert response.status_code == 409
    assert "running" in response.json()["detail"]
    assert len(catalogue(database)) == 20


def test_a_bulk_action_waits_out_a_momentary_holder_of_the_catalogue(
    client: TestClient, database: Database
) -> None:
    """The recovery checks hold the lock for a moment, and so does an import between
    recording `completed` and letting go: a bulk action sent then waits instead of a 409."""
    import threading

    run_import(client, ROWS)
    lock = CatalogueLock(database)
    assert wait_for(lock.try_acquire, timeout=5)
    threading.Timer(0.3, lock.release).start()
    response = client.post("/api/products/bulk", json={"action": "deactivate", "ids": [1, 2]})
    assert response.status_code == 200, response.text
    assert response.json()["updated"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"action": "explode", "ids": [1]},
        {"action": "delete"},
        {"action": "delete", "ids": []},
        {"action": "delete", "ids": list(range(1, 1002))},
        {"action": "delete", "ids": [0]},
        {"action": "delete", "ids": ["1"]},
        {"action": "delete", "ids": [1], "filter": {}, "expected_total": 1},
        {"action": "delete", "filter": {"q": "oak"}},
        {"action": "delete", "filter": {"q": "oak"}, "expected_total": -1},
        {"action": "delete", "filter": {"colour": "red"}, "expected_total": 1},
        {"action": "delete", "filter": {"q": "a\x00b"}, "expected_total": 1},
        {"action": "delete", "filter": {"q": "x" * 201}, "expected_total": 1},
        {"action": "delete", "ids": [1], "expected_total": 1},
        [1, 2],
        "delete everything",
    ],
)
def test_hostile_bulk_requests_get_422_and_change_nothing(
    client: TestClient, database: Database, body: object
) -> None:
    run_import(client, ROWS)
    response = client.post("/api/products/bulk", json=body)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    assert len(catalogue(database)) == 20


def _editor(client: TestClient, database: Database) -> TestClient:
    """A second browser on the same app, signed in as an editor."""
    editor = TestClient(client.app)
    sign_in(editor, database, "ed", role=Role.editor)
    return editor


ALL_IDS = object()  # stands for "every product's id", known only once they exist


@pytest.mark.parametrize(
    "selection",
    [
        {"filter": {}, "expected_total": 20},
        {"filter": {"active": None, "q": None}, "expected_total": 20},
        {"filter": {"name": "i"}, "expected_total": 20},  # "chair" and "Pine" both
        {"filter": {"sku": "*"}, "expected_total": 20},
        {"ids": ALL_IDS},
    ],
    ids=["empty-filter", "unset-filters", "filter-covering-all", "sku-star", "every-id"],
)
def test_an_editor_cannot_bulk_delete_every_product(
    client: TestClient, database: Database, selection: dict[str, object]
) -> None:
    run_import(client, ROWS)
    if selection.get("ids") is ALL_IDS:
        items = client.get("/api/products", params={"page_size": 50}).json()["items"]
        selection = {"ids": [item["id"] for item in items]}
    before = catalogue(database)
    editor = _editor(client, database)

    refused = editor.post("/api/products/bulk", json={"action": "delete", **selection})
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == (
        "This would delete every product in the catalogue (20), which needs the admin role. "
        "Your role is editor."
    )
    assert catalogue(database) == before
    assert client.get("/api/changes", params={"kind": "bulk"}).json()["total"] == 0
    # The dry run says so, for the UI; deactivating everything is an editor's to do.
    count = editor.post("/api/products/bulk?dry_run=true", json={"action": "delete", **selection})
    assert count.json() == {"action": "delete", "matched": 20, "everything": True}
    deactivated = editor.post("/api/products/bulk", json={"action": "deactivate", **selection})
    assert deactivated.status_code == 200, deactivated.text
    # An admin may, as with delete-all.
    done = client.post("/api/products/bulk", json={"action": "delete", **selection})
    assert done.status_code == 200, done.text
    assert done.json()["deleted"] == 20 and catalogue(database) == {}


def test_an_editor_may_bulk_delete_all_but_one(client: TestClient, database: Database) -> None:
    run_import(client, ROWS)
    editor = _editor(client, database)
    count = editor.post(
        "/api/products/bulk?dry_run=true", json={"action": "delete", "filter": {"q": "oak"}}
    )
    assert count.json() == {"action": "delete", "matched": 12, "everything": False}
    done = editor.post(
        "/api/products/bulk",
        json={"action": "delete", "filter": {"q": "oak"}, "expected_total": 12},
    )
    assert done.status_code == 200, done.text
    assert len(catalogue(database)) == 8


def test_an_editor_cannot_queue_a_large_delete_of_everything(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "INLINE_LIMIT", 5)
    run_import(client, ROWS)
    editor = _editor(client, database)
    body = {"action": "delete", "filter": {}, "expected_total": 20}
    refused = editor.post("/api/products/bulk", json=body)
    assert refused.status_code == 403, refused.text
    assert "every product" in refused.json()["detail"]
    assert client.get("/api/changes", params={"kind": "bulk"}).json()["total"] == 0
    assert len(catalogue(database)) == 20


def test_a_queued_delete_that_comes_to_cover_everything_fails_for_an_editor(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job counts again under the lock, in its own transaction: products deleted while it
    waited cannot turn an editor's partial delete into a delete of everything."""
    monkeypatch.setattr(bulk, "INLINE_LIMIT", 5)
    run_import(client, ROWS)
    editor = _editor(client, database)
    lock = CatalogueLock(database)
    assert wait_for(lock.try_acquire, timeout=5)
    try:
        queued = editor.post(
            "/api/products/bulk",
            json={"action": "delete", "filter": {"q": "oak"}, "expected_total": 12},
        )
        assert queued.status_code == 202, queued.text
        pine = client.get("/api/products", params={"sku": "PINE-*"}).json()["items"]
        assert len(pine) == 8
        for item in pine:  # one by one, as an editor may
            assert editor.delete(f"/api/products/{item['id']}").status_code == 204
    finally:
        lock.release()
    change = wait_for_change(client, queued.json()["id"])
    assert change["status"] == "failed", change
    assert change["error"] == (
        "This would delete every product in the catalogue (12), which needs the admin role."
    )
    assert len(catalogue(database)) == 12


def test_the_inline_check_counts_in_the_deleting_transaction(database: Database) -> None:
    """The service refuses by itself, whatever the route counted before."""
    from product_importer.changes import service as changes_service
    from product_importer.changes.schemas import BulkRequest
    from tests.factories import make_product

    ids = [make_product(database, f"ONE-{i}") for i in range(3)]
    request = BulkRequest(action="delete", ids=ids)
    with pytest.raises(changes_service.RemovesEverything), database.session() as session:
        bulk.run_inline(session, request, "ed", matched=2)
    assert len(catalogue(database)) == 3
    with database.session() as session:
        bulk.run_inline(session, request, "admin", 3, may_remove_all=True)
    assert catalogue(database) == {}
