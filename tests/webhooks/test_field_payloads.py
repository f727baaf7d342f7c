"""Product events carry custom fields, delivered to a real receiver on loopback, on SQLite and
PostgreSQL: a product created and edited through the API, and a bulk set_fields."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from product_importer.db import Database
from tests.catalog.field_helpers import define
from tests.factories import make_webhook
from tests.webhooks.receiver import Receiver

FIELDS: dict[str, tuple[str, list[str] | None]] = {
    "price": ("decimal", None),
    "stock": ("integer", None),
    "tags": ("list", None),
    "launch": ("date", None),
}


def delivered(receiver: Receiver, count: int) -> list[dict[str, Any]]:
    requests = receiver.wait_for(count)
    assert all(request.verified for request in requests), [r.error for r in requests]
    return [request.payload for request in requests]


def test_product_events_carry_the_fields(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    define(database, FIELDS)
    _endpoint, receiver.secret = make_webhook(
        database, receiver.url, ["product.created", "product.updated", "products.bulk_changed"]
    )
    created = client.post(
        "/api/products",
        json={
            "sku": "CHAIR-1",
            "name": "Chair",
            "fields": {"price": 19.9, "stock": 4, "tags": ["oak", "été"], "launch": "2026-03-01"},
        },
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    [first] = delivered(receiver, 1)
    assert first["type"] == "product.created"
    assert first["data"]["fields"] == {
        "price": "19.9",  # exact, as stored: a string
        "stock": 4,
        "tags": ["oak", "été"],
        "launch": "2026-03-01",
    }

    edited = client.patch(
        f"/api/products/{product_id}", json={"fields": {"price": "21.50", "stock": None}}
    )
    assert edited.status_code == 200, edited.text
    second = delivered(receiver, 2)[1]
    assert second["type"] == "product.updated"
    assert second["data"]["id"] == product_id
    assert second["data"]["fields"] == {
        "price": "21.5",
        "tags": ["oak", "été"],
        "launch": "2026-03-01",
    }

    bulk = client.post(
        "/api/products/bulk",
        json={"action": "set_fields", "fields": {"stock": 7, "tags": None}, "ids": [product_id]},
    )
    assert bulk.status_code == 200, bulk.text
    third = delivered(receiver, 3)[2]
    assert third["type"] == "products.bulk_changed"
    assert third["data"] == {
        "change_id": bulk.json()["id"],
        "action": "set_fields",
        "matched": 1,
        "changed": 1,
        "fields": {"stock": 7, "tags": None},
    }
    assert client.get(f"/api/products/{product_id}").json()["fields"] == {
        "price": "21.5",
        "stock": 7,
        "launch": "2026-03-01",
    }


def test_the_event_catalogue_shows_fields_in_its_samples(client: TestClient) -> None:
    response = client.get("/api/webhooks/events")
    assert response.status_code == 200, response.text
    samples = {item["type"]: item["sample"] for item in response.json()}
    assert samples["product.created"]["data"]["fields"]["price"] == "129.00"
    assert samples["products.bulk_changed"]["data"]["fields"] == {"vendor": "Acme", "stock": None}
