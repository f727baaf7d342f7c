"""Product history through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.changes.helpers import csv_of
from tests.imports.conftest import run_import


def test_history_shows_who_changed_what_newest_first(client: TestClient) -> None:
    run_import(client, csv_of([("H-1", "Lamp", "brass")]))
    run_import(client, csv_of([("H-1", "Desk lamp", "brass")]))
    product = client.get("/api/products", params={"sku": "H-1"}).json()["items"][0]
    client.patch(f"/api/products/{product['id']}", json={"active": False, "sku": "h-1"})

    history = client.get(f"/api/products/{product['id']}/history").json()
    assert history["total"] == 3
    edit, update, create = history["items"]
    assert (edit["kind"], edit["action"], edit["who"]) == ("edit", "updated", "alice")
    assert {c["field"]: (c["old"], c["new"]) for c in edit["changes"]} == {
        "sku": ("H-1", "h-1"),
        "active": (True, False),
    }
    assert update["who"] == "alice (Import of products.csv: 1 updated)"
    assert update["changes"] == [{"field": "name", "old": "Lamp", "new": "Desk lamp"}]
    assert (create["action"], create["who"]) == (
        "created",
        "alice (Import of products.csv: 1 created)",
    )
    assert {c["field"] for c in create["changes"]} == {"sku", "name", "description", "active"}

    page = client.get(f"/api/products/{product['id']}/history?page=2&page_size=2").json()
    assert [item["change_id"] for item in page["items"]] == [create["change_id"]]


def test_a_deleted_products_history_by_sku(client: TestClient) -> None:
    created = client.post("/api/products", json={"sku": "GONE-1", "name": "Old"}).json()
    client.delete(f"/api/products/{created['id']}")
    assert client.get(f"/api/products/{created['id']}/history").status_code == 404
    history = client.get("/api/products/history", params={"sku": "gone-1"}).json()
    assert [item["action"] for item in history["items"]] == ["deleted", "created"]
    assert history["items"][0]["product_id"] == created["id"]


def test_history_follows_a_sku_edit(client: TestClient) -> None:
    created = client.post("/api/products", json={"sku": "OLD-SKU", "name": "Thing"}).json()
    client.patch(f"/api/products/{created['id']}", json={"sku": "NEW-SKU"})
    history = client.get(f"/api/products/{created['id']}/history").json()
    assert [item["action"] for item in history["items"]] == ["updated", "created"]
    # Another product that takes the old SKU later does not join this history.
    client.post("/api/products", json={"sku": "old-sku", "name": "Other"})
    again = client.get(f"/api/products/{created['id']}/history").json()
    assert again["total"] == 2


def test_hostile_history_requests(client: TestClient) -> None:
    assert client.get("/api/products/history").status_code == 422
    assert client.get("/api/products/history", params={"sku": ""}).status_code == 422
    assert client.get("/api/products/history", params={"sku": "   "}).status_code == 422
    assert client.get("/api/products/history", params={"sku": "a\x00b"}).status_code == 422
    assert client.get("/api/products/history", params={"sku": "x" * 256}).status_code == 422
    assert client.get("/api/products/0/history").status_code == 422
    assert client.get("/api/products/abc/history").status_code == 422
    assert client.get("/api/products/999/history").status_code == 404
    unknown = client.get("/api/products/history", params={"sku": "never"}).json()
    assert unknown == {"items": [], "total": 0, "page": 1, "page_size": 20}
    assert client.get("/api/products/history?sku=x&page_size=201").status_code == 422
