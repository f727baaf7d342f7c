"""Undo end to end through the API, on SQLite and PostgreSQL: imports, edits, delete-all."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from product_importer.catalog.locking import CatalogueLock
from product_importer.db import Database
from product_importer.history import repository
from product_importer.history.models import ChangeSet
from tests.catalog.helpers import events, wait_for, wait_for_delete_job
from tests.changes.helpers import catalogue, csv_of, undo, wait_for_change
from tests.imports.conftest import run_import

FILE_A = csv_of([(f"SKU-{i:03d}", f"A{i}", f"first {i}") for i in range(20)])
# B: updates SKU-000..009 (one of them only in letter case of the SKU and active), leaves
# SKU-010..019 alone, creates NEW-000..004.
FILE_B = csv_of(
    [(f"B{i}", f"SKU-{i:03d}", f"second {i}", "false" if i == 3 else "true") for i in range(10)]
    + [("A15", "sku-015", "first 15", "true")]  # only the SKU's letter case differs
    + [(f"N{i}", f"NEW-{i:03d}", "brand new", "true") for i in range(5)],
    header="name,sku,description,active",
)


def test_undo_import_keeps_what_was_edited_since_and_the_undo_can_be_undone(
    client: TestClient, database: Database
) -> None:
    job_a = run_import(client, FILE_A)
    assert job_a["status"] == "completed" and job_a["change_id"] is not None
    after_a = catalogue(database)
    job_b = run_import(client, FILE_B)
    assert (job_b["rows_created"], job_b["rows_updated"]) == (5, 11), job_b
    change_b = client.get(f"/api/changes/{job_b['change_id']}").json()
    assert (change_b["kind"], change_b["created"], change_b["updated"]) == ("import", 5, 11)
    assert change_b["undoable"] is True and change_b["import_job_id"] == job_b["id"]

    # Someone edits a product B updated.
    edited_id = client.get("/api/products", params={"sku": "SKU-004"}).json()["items"][0]["id"]
    response = client.patch(f"/api/products/{edited_id}", json={"name": "Edited by hand"})
    assert response.status_code == 200, response.text
    after_b_and_edit = catalogue(database)

    dry = client.post(f"/api/imports/{job_b['id']}/undo", params={"dry_run": "true"})
    assert dry.status_code == 200, dry.text
    assert dry.json() == {
        "change_id": job_b["change_id"],
        "would_delete": 5,
        "would_restore": 10,
        "would_keep": 1,
    }
    assert catalogue(database) == after_b_and_edit  # a dry run writes nothing

    response = client.post(f"/api/imports/{job_b['id']}/undo")
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == "undo" and response.json()["status"] in ("queued", "running")
    result = wait_for_change(client, response.json()["id"])
    assert result["status"] == "completed", result
    assert (result["deleted"], result["restored"], result["kept"]) == (5, 10, 1)
    assert result["undoes_id"] == job_b["change_id"]

    expected = dict(after_a)
    expected["sku-004"] = after_b_and_edit["sku-004"]
    assert catalogue(database) == expected

    kept = client.get(f"/api/changes/{result['id']}/kept")
    assert kept.status_code == 200
    assert kept.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(kept.text)))
    assert rows[0] == ["sku", "reason"]
    assert [row[0] for row in rows[1:]] == ["SKU-004"]
    assert "changed again since" in rows[1][1] and "edit" in rows[1][1]

    # B says it was undone, and cannot be undone twice.
    change_b = client.get(f"/api/changes/{job_b['change_id']}").json()
    assert change_b["undone_by_id"] == result["id"] and change_b["undoable"] is False
    again = client.post(f"/api/changes/{job_b['change_id']}/undo")
    assert again.status_code == 409
    assert "already undone" in again.json()["detail"]

    # Undo the undo: back to after B and the edit.
    redo = undo(client, result["id"])
    assert redo["status"] == "completed", redo
    assert (redo["deleted"], redo["restored"], redo["kept"]) == (0, 15, 0)
    assert catalogue(database) == after_b_and_edit

    reverted = events(database, "import.reverted")
    assert len(reverted) == 1
    assert reverted[0].payload["data"] == {
        "import_id": job_b["id"],
        "change_id": result["id"],
        "undoes_change_id": job_b["change_id"],
        "deleted": 5,
        "restored": 10,
        "kept": 1,
    }
    assert len(events(database, "products.bulk_changed")) == 1  # the undo of the undo


def search(client: TestClient, **params: str) -> tuple[list[str], bool]:
    page = client.get("/api/products", params={**params, "page_size": 100}).json()
    return sorted(item["sku"] for item in page["items"]), page["search_pending"]


def test_an_undo_is_searchable_the_moment_it_completes(still_client: TestClient) -> None:
    client = still_client  # no background catch-up: what is found, the undo wrote
    run_import(client, FILE_A)
    job_b = run_import(client, FILE_B)
    assert search(client, q="second")[0] == [f"SKU-{i:03d}" for i in range(10)]
    assert undo(client, job_b["change_id"])["restored"] == 11  # SKU-000..009 and sku-015
    # At once: the restored text is found, the undone text is not.
    assert search(client, q="second")[0] == []
    assert search(client, description="FIRST 3")[0] == ["SKU-003"]
    assert search(client, name="a7")[0] == ["SKU-007"]


def test_an_undo_of_more_than_ten_thousand_products_is_searchable_at_once(
    still_client: TestClient,
) -> None:
    client = still_client
    rows = 10_050
    run_import(client, csv_of([(f"BIG-{i:05d}", f"Oak {i}", "before") for i in range(rows)]))
    job = run_import(client, csv_of([(f"BIG-{i:05d}", f"Elm {i}", "after") for i in range(rows)]))
    assert job["rows_updated"] == rows, job
    assert undo(client, job["change_id"])["restored"] == rows
    page = client.get("/api/products", params={"q": "oak", "page_size": 1}).json()
    assert (page["total"], page["total_is_estimate"]) == (rows, True) or page["total"] >= 1_001
    assert search(client, q="elm")[0] == []
    assert search(client, description="after")[0] == []
    assert search(client, name="oak 10049")[0] == ["BIG-10049"]
    assert search(client, q="big-10049")[0] == ["BIG-10049"]


def test_delete_all_then_undo_gives_the_catalogue_back(
    client: TestClient, database: Database
) -> None:
    rows = [
        (f"P{i}", f"Item-{i:03d}", f"desc {i}", "false" if i % 3 else "true") for i in range(40)
    ]
    run_import(client, csv_of(rows, header="name,sku,description,active"))
    before = catalogue(database)
    assert len(before) == 40
    response = client.delete("/api/products", params={"confirm": "true"})
    assert response.status_code == 202, response.text
    job = wait_for_delete_job(client, response.json()["id"])
    assert job["status"] == "completed" and job["change_id"] is not None
    assert catalogue(database) == {}
    change = client.get(f"/api/changes/{job['change_id']}").json()
    assert (change["kind"], change["deleted"], change["undoable"]) == ("delete_all", 40, True)
    dry = client.post(f"/api/changes/{job['change_id']}/undo?dry_run=true").json()
    assert (dry["would_delete"], dry["would_restore"], dry["would_keep"]) == (0, 40, 0)

    result = undo(client, job["change_id"])
    assert (result["status"], result["restored"], result["kept"]) == ("completed", 40, 0)
    assert catalogue(database) == before
    restored = events(database, "products.restored")
    assert len(restored) == 1 and restored[0].payload["data"]["restored"] == 40
    # The restored products are searchable again.
    wait_for(lambda: not client.get("/api/products").json()["search_pending"])
    listed = client.get("/api/products", params={"sku": "item-007"}).json()
    assert listed["total"] == 1


def test_undo_keeps_a_deleted_product_whose_sku_was_taken_again(
    client: TestClient, database: Database
) -> None:
    created = client.post("/api/products", json={"sku": "TAKEN-1", "name": "First"}).json()
    assert client.delete(f"/api/products/{created['id']}").status_code == 204
    deletion = client.get("/api/changes", params={"kind": "edit"}).json()["items"][0]
    assert deletion["deleted"] == 1
    client.post("/api/products", json={"sku": "taken-1", "name": "Second"})
    result = undo(client, deletion["id"])
    assert (result["restored"], result["kept"]) == (0, 1)
    assert catalogue(database) == {"taken-1": ("taken-1", "Second", "", True)}
    kept = client.get(f"/api/changes/{result['id']}/kept").text
    assert "TAKEN-1" in kept


def test_refusals_are_409_with_the_reason(client: TestClient, database: Database) -> None:
    dry_job = run_import(client, FILE_A, dry_run=True)
    response = client.post(f"/api/imports/{dry_job['id']}/undo")
    assert response.status_code == 409 and "dry run" in response.json()["detail"]
    failed = run_import(client, b"name,sku\nOnly a header\n\x00\x01garbage")
    if failed["status"] == "failed":
        response = client.post(f"/api/imports/{failed['id']}/undo")
        assert response.status_code == 409
    assert client.post("/api/imports/999999/undo").status_code == 404
    assert client.post("/api/changes/999999/undo").status_code == 404
    assert client.post("/api/changes/0/undo").status_code == 422
    assert client.post("/api/changes/abc/undo").status_code == 422
    assert client.get("/api/changes?kind=nonsense").status_code == 422
    job = run_import(client, FILE_A)
    response = client.post(f"/api/changes/{job['change_id']}/undo?dry_run=maybe")
    assert response.status_code == 422
    with database.session() as session:
        # Refusals and the dry run recorded nothing: only the import's 20 records exist.
        changes = session.scalars(select(ChangeSet.id)).all()
        assert sum(sum(repository.op_counts(session, c).values()) for c in changes) == 20


def test_changes_list_newest_first_with_kind_filter(client: TestClient) -> None:
    run_import(client, FILE_A)
    client.post("/api/products", json={"sku": "X-1", "name": "One"})
    page = client.get("/api/changes").json()
    assert [item["kind"] for item in page["items"]] == ["edit", "import"]
    assert page["total"] == 2
    only = client.get("/api/changes", params={"kind": "import"}).json()
    assert [item["kind"] for item in only["items"]] == ["import"]
    assert only["items"][0]["actor"] == "alice"
    assert only["items"][0]["undoable_until"] is not None


def test_undo_progress_streams_as_server_sent_events(client: TestClient) -> None:
    job = run_import(client, FILE_A)
    response = client.post(f"/api/changes/{job['change_id']}/undo")
    undo_id = response.json()["id"]
    with client.stream("GET", f"/api/changes/{undo_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        payloads = [
            json.loads(line[len("data: ") :])
            for line in stream.iter_lines()
            if line.startswith("data: ")
        ]
    assert payloads[-1]["status"] == "completed"
    assert payloads[-1]["deleted"] == 20
    assert all(p["id"] == undo_id for p in payloads)
    assert client.get("/api/changes/999999/events").status_code == 404


def test_kept_csv_only_for_an_undo(client: TestClient) -> None:
    job = run_import(client, FILE_A)
    response = client.get(f"/api/changes/{job['change_id']}/kept")
    assert response.status_code == 404
    assert "not an undo" in response.json()["detail"]
    assert client.get("/api/changes/999999/kept").status_code == 404


def test_roles_editor_undoes_viewer_reads_only(anon_client: TestClient, database: Database) -> None:
    from product_importer.auth.roles import Role
    from tests.factories import sign_in

    sign_in(anon_client, database, "ed", role=Role.editor)
    # Another product first: undoing an import that created the whole catalogue is admin only.
    assert anon_client.post("/api/products", json={"sku": "X-1", "name": "One"}).is_success
    job = run_import(anon_client, FILE_A)
    undone = undo(anon_client, job["change_id"])
    assert undone["status"] == "completed"
    anon_client.post("/logout")
    viewer = TestClient(anon_client.app)
    sign_in(viewer, database, "vi", role=Role.viewer)
    assert viewer.get("/api/changes").status_code == 200
    assert viewer.post(f"/api/changes/{undone['id']}/undo?dry_run=true").status_code == 403
    assert (
        viewer.post("/api/products/bulk", json={"action": "delete", "ids": [1]}).status_code == 403
    )


def _as_editor(client: TestClient, database: Database) -> TestClient:
    from product_importer.auth.roles import Role
    from tests.factories import sign_in

    editor = TestClient(client.app)
    sign_in(editor, database, "ed", role=Role.editor)
    return editor


def _refused_as_removing_everything(response: Any, total: int) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == (
        f"This would delete every product in the catalogue ({total}), which needs the admin "
        "role. Your role is editor."
    )


def test_no_chain_of_undos_lets_an_editor_delete_everything(
    client: TestClient, database: Database
) -> None:
    """delete-all, undo, undo, undo: the fourth undo deletes everything again, as the second
    did, however far back the delete-all is."""
    run_import(client, FILE_A)
    before = catalogue(database)
    editor = _as_editor(client, database)
    response = client.delete("/api/products", params={"confirm": "true"})
    delete_all = wait_for_delete_job(client, response.json()["id"])["change_id"]
    first = undo(editor, delete_all)  # restores: an editor's to do
    _refused_as_removing_everything(editor.post(f"/api/changes/{first['id']}/undo"), 20)
    second = undo(client, first["id"])  # deletes everything again: the admin may
    assert catalogue(database) == {}
    third = undo(editor, second["id"])
    assert catalogue(database) == before
    refused = editor.post(f"/api/changes/{third['id']}/undo")
    _refused_as_removing_everything(refused, 20)
    assert catalogue(database) == before
    # The dry run stays open to an editor; an admin may undo.
    assert editor.post(f"/api/changes/{third['id']}/undo?dry_run=true").status_code == 200
    assert undo(client, third["id"])["deleted"] == 20


def test_an_editor_cannot_undo_back_a_catalogue_wide_bulk_delete(
    client: TestClient, database: Database
) -> None:
    run_import(client, FILE_A)
    editor = _as_editor(client, database)
    wiped = client.post(
        "/api/products/bulk", json={"action": "delete", "filter": {}, "expected_total": 20}
    )
    assert wiped.status_code == 200, wiped.text
    restored = undo(editor, wiped.json()["id"])
    assert len(catalogue(database)) == 20
    _refused_as_removing_everything(editor.post(f"/api/changes/{restored['id']}/undo"), 20)
    assert len(catalogue(database)) == 20


def test_undoing_an_import_that_made_the_whole_catalogue_needs_an_admin(
    client: TestClient, database: Database
) -> None:
    editor = _as_editor(client, database)
    job = run_import(editor, FILE_A)
    _refused_as_removing_everything(editor.post(f"/api/imports/{job['id']}/undo"), 20)
    # Once a product is kept (edited since), the undo no longer empties the catalogue.
    product = editor.get("/api/products", params={"sku": "SKU-001"}).json()["items"][0]
    assert editor.patch(f"/api/products/{product['id']}", json={"name": "kept"}).is_success
    result = undo(editor, job["change_id"])
    assert (result["deleted"], result["kept"]) == (19, 1)


def test_an_undo_job_checks_again_in_its_own_transaction(
    client: TestClient, database: Database
) -> None:
    """Allowed when asked (another product existed), refused when run (it had gone since)."""
    editor = _as_editor(client, database)
    other = editor.post("/api/products", json={"sku": "OTHER-1", "name": "Other"}).json()
    job = run_import(editor, FILE_A)
    lock = CatalogueLock(database)
    assert wait_for(lock.try_acquire, timeout=5)
    try:
        queued = editor.post(f"/api/changes/{job['change_id']}/undo")
        assert queued.status_code == 202, queued.text
        assert editor.delete(f"/api/products/{other['id']}").status_code == 204
    finally:
        lock.release()
    result = wait_for_change(client, queued.json()["id"])
    assert result["status"] == "failed", result
    assert result["error"] == (
        "This would delete every product in the catalogue (20), which needs the admin role."
    )
    assert len(catalogue(database)) == 20
    # Nothing of it was kept: the import can still be undone, by an admin.
    assert undo(client, job["change_id"])["deleted"] == 20
