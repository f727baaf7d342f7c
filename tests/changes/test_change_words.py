"""The changes API names each change set in words, filters by person, and answers the id of a
single edit (`X-Change-Id`) so the UI can offer its undo."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.changes.helpers import csv_of, undo
from tests.imports.conftest import run_import


def test_change_sets_are_named_in_words_and_an_undo_names_what_it_undid(
    client: TestClient,
) -> None:
    job = run_import(client, csv_of([("CHAIR-1", "Chair", ""), ("DESK-1", "Desk", "")]))
    created = client.post("/api/products", json={"sku": "LAMP-1", "name": "Lamp"})
    assert created.status_code == 201, created.text
    create_change = int(created.headers["X-Change-Id"])
    chair = client.get("/api/products", params={"sku": "CHAIR-1"}).json()["items"][0]
    edited = client.patch(f"/api/products/{chair['id']}", json={"active": False})
    edit_change = int(edited.headers["X-Change-Id"])
    bulk = client.post("/api/products/bulk", json={"action": "deactivate", "ids": [chair["id"]]})
    assert bulk.status_code == 200, bulk.text
    deleted = client.delete(f"/api/products/{created.json()['id']}")
    delete_change = int(deleted.headers["X-Change-Id"])
    done = undo(client, edit_change)

    titles = {item["id"]: item["title"] for item in client.get("/api/changes").json()["items"]}
    assert titles[job["change_id"]].startswith("Import of ")
    assert titles[job["change_id"]].endswith(": 2 created")
    assert titles[create_change] == "Creation of product LAMP-1"
    assert titles[edit_change] == "Edit of product CHAIR-1"
    assert titles[bulk.json()["id"]] == "Bulk: deactivate 1 product"
    assert titles[delete_change] == "Deletion of product LAMP-1"
    assert titles[done["id"]] == "Undo of edit of product CHAIR-1"
    undone = client.get(f"/api/changes/{edit_change}").json()
    assert undone["undone_by_id"] == done["id"]
    assert undone["undone_by_title"] == "Undo of edit of product CHAIR-1"


def test_changes_filter_by_person_and_list_who_made_them(client: TestClient) -> None:
    run_import(client, csv_of([("A-1", "A", "")]))
    actors = client.get("/api/changes/actors").json()
    assert len(actors) == 1
    mine = client.get("/api/changes", params={"actor": actors[0]}).json()
    assert mine["total"] == 1
    assert client.get("/api/changes", params={"actor": "nobody"}).json()["total"] == 0
    assert client.get("/api/changes", params={"kind": "fields"}).status_code == 200


def test_an_edit_that_changes_nothing_names_no_change(client: TestClient) -> None:
    created = client.post("/api/products", json={"sku": "S-1", "name": "Same"}).json()
    same = client.patch(f"/api/products/{created['id']}", json={"name": "Same"})
    assert same.status_code == 200
    assert "X-Change-Id" not in same.headers
