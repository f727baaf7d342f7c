"""The webhooks API: good input does what it says, hostile input gets a precise 4xx, never a 500."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from fastapi.testclient import TestClient

from product_importer.db import Database
from product_importer.webhooks import events, schemas
from tests.factories import make_webhook

URL = "https://hooks.example.com/catalogue"


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/webhooks", json={"url": URL, "events": ["product.created"]} | fields
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_create_read_update_delete(client: TestClient) -> None:
    created = create(
        client,
        events=["product.created", "import.completed", "product.created"],
        description="Storefront",
    )
    assert created["secret"].startswith("whsec_")
    assert created["secret_hint"] == created["secret"][-4:]
    assert created["events"] == ["product.created", "import.completed"]
    assert created["enabled"] is True
    assert created["description"] == "Storefront"
    assert created["last_status_code"] is None
    assert created["consecutive_failures"] == 0
    endpoint_id = created["id"]

    read = client.get(f"/api/webhooks/{endpoint_id}").json()
    assert "secret" not in read
    assert read["secret_hint"] == created["secret_hint"]
    listed = client.get("/api/webhooks").json()
    assert [item["id"] for item in listed] == [endpoint_id]
    assert "secret" not in listed[0]

    patched = client.patch(
        f"/api/webhooks/{endpoint_id}",
        json={"url": URL + "/v2", "events": ["product.deleted"], "description": ""},
    ).json()
    assert patched["url"] == URL + "/v2"
    assert patched["events"] == ["product.deleted"]
    assert patched["description"] == ""
    assert patched["enabled"] is True

    disabled = client.patch(f"/api/webhooks/{endpoint_id}", json={"enabled": False}).json()
    assert disabled["enabled"] is False
    assert disabled["disabled_reason"] == "Disabled by a user."
    assert disabled["url"] == URL + "/v2"  # untouched fields stay

    assert client.delete(f"/api/webhooks/{endpoint_id}").status_code == 204
    assert client.get(f"/api/webhooks/{endpoint_id}").status_code == 404
    assert client.delete(f"/api/webhooks/{endpoint_id}").status_code == 404
    assert client.get("/api/webhooks").json() == []


def test_the_event_catalogue_lists_every_event_with_a_sample(client: TestClient) -> None:
    catalogue = client.get("/api/webhooks/events").json()
    assert [item["type"] for item in catalogue] == list(events.EVENT_TYPES)
    for item in catalogue:
        assert item["description"]
        assert item["sample"]["type"] == item["type"]
        assert set(item["sample"]) == {"type", "timestamp", "data"}
    completed = next(item for item in catalogue if item["type"] == "import.completed")
    assert {
        "rows_processed",
        "rows_created",
        "rows_updated",
        "rows_unchanged",
        "rows_rejected",
    } <= set(completed["sample"]["data"])


def test_the_api_and_the_outbox_agree_on_event_names() -> None:
    assert typing.get_args(schemas.EventType) == events.EVENT_TYPES
    with pytest.raises(ValueError, match="unknown event type"):
        events.record(None, "product.exploded", {})  # type: ignore[arg-type]


BAD_CREATES: list[tuple[Any, str]] = [
    ({"url": URL, "events": ["product.exploded"]}, "events"),
    ({"url": URL, "events": []}, "events"),
    ({"url": URL, "events": "product.created"}, "events"),
    ({"url": URL, "events": [None]}, "events"),
    ({"url": URL}, "events"),
    ({"events": ["product.created"]}, "url"),
    ({"url": "", "events": ["product.created"]}, "url"),
    ({"url": "ftp://example.com/", "events": ["product.created"]}, "url"),
    ({"url": "https://u:p@example.com/", "events": ["product.created"]}, "url"),
    ({"url": "https://example.com/" + "x" * 2000, "events": ["product.created"]}, "url"),
    ({"url": "https://exa mple.com/", "events": ["product.created"]}, "url"),
    ({"url": 12, "events": ["product.created"]}, "url"),
    ({"url": URL, "events": ["product.created"], "enabled": "maybe"}, "enabled"),
    ({"url": URL, "events": ["product.created"], "description": "x" * 501}, "description"),
    ({"url": URL, "events": ["product.created"], "description": "a\x00b"}, "description"),
    ({"url": URL, "events": ["product.created"], "secret": "whsec_mine"}, "secret"),
    ([{"url": URL}], "body"),
    ("not an object", "body"),
    (None, "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATES)
def test_hostile_creates_get_a_422_naming_the_field(
    client: TestClient, body: Any, field: str
) -> None:
    response = client.post("/api/webhooks", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(field in error["loc"] or field == error["loc"][-1] for error in detail), detail
    assert client.get("/api/webhooks").json() == []


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"url": "https://a.example", "events": [', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"url=https://a.example", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
    ],
)
def test_malformed_bodies_get_a_422(client: TestClient, raw: bytes, content_type: str) -> None:
    response = client.post("/api/webhooks", content=raw, headers={"content-type": content_type})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"url": None},
        {"events": None},
        {"events": []},
        {"enabled": None},
        {"enabled": "yes please"},
        {"description": None},
        {"url": "gopher://example.com"},
        {"id": 5},
        {"secret": "whsec_x"},
    ],
)
def test_hostile_updates_get_a_422(client: TestClient, body: dict[str, Any]) -> None:
    endpoint_id = create(client)["id"]
    before = client.get(f"/api/webhooks/{endpoint_id}").json()
    response = client.patch(f"/api/webhooks/{endpoint_id}", json=body)
    assert response.status_code == 422, response.text
    assert client.get(f"/api/webhooks/{endpoint_id}").json() == before


@pytest.mark.parametrize("bad_id", ["0", "-1", "abc", "1.5", str(2**63), str(2**70), "%00"])
def test_bad_ids_get_a_422(client: TestClient, bad_id: str) -> None:
    for method, path in [
        ("GET", f"/api/webhooks/{bad_id}"),
        ("PATCH", f"/api/webhooks/{bad_id}"),
        ("DELETE", f"/api/webhooks/{bad_id}"),
        ("POST", f"/api/webhooks/{bad_id}/test"),
        ("POST", f"/api/webhooks/{bad_id}/rotate-secret"),
        ("GET", f"/api/webhooks/{bad_id}/deliveries"),
        ("POST", f"/api/webhooks/1/deliveries/{bad_id}/redeliver"),
    ]:
        response = client.request(method, path, json={})
        assert response.status_code == 422, (method, path, response.text)


def test_unknown_ids_get_a_404(client: TestClient) -> None:
    big = 2**63 - 1
    for method, path in [
        ("GET", f"/api/webhooks/{big}"),
        ("PATCH", f"/api/webhooks/{big}"),
        ("DELETE", f"/api/webhooks/{big}"),
        ("POST", f"/api/webhooks/{big}/test"),
        ("POST", f"/api/webhooks/{big}/rotate-secret"),
        ("GET", f"/api/webhooks/{big}/deliveries"),
        ("POST", f"/api/webhooks/{big}/deliveries/1/redeliver"),
    ]:
        response = client.request(method, path, json={})
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"] == "Webhook endpoint not found."
    endpoint_id = create(client)["id"]
    response = client.post(f"/api/webhooks/{endpoint_id}/deliveries/{big}/redeliver")
    assert response.status_code == 404
    assert response.json()["detail"] == "Delivery not found."


@pytest.mark.parametrize(
    "params",
    [
        {"status": "lost"},
        {"event": "product.exploded"},
        {"page": "0"},
        {"page": "x"},
        {"page_size": "0"},
        {"page_size": "101"},
        {"page": str(2**70)},
    ],
)
def test_bad_delivery_filters_get_a_422(client: TestClient, params: dict[str, str]) -> None:
    endpoint_id = create(client)["id"]
    response = client.get(f"/api/webhooks/{endpoint_id}/deliveries", params=params)
    assert response.status_code == 422, response.text


def test_the_delivery_log_pages_and_filters(client: TestClient, database: Database) -> None:
    from product_importer.webhooks import service

    endpoint_id, _ = make_webhook(database, URL, ["product.created", "product.deleted"])
    # Without a receiver and with workers running, deliveries would be attempted; build the
    # log directly through the service instead, leaving the deliveries pending.
    client.app.state.database.dispatcher = None  # type: ignore[attr-defined]
    with database.session() as session:
        for number in range(5):
            event = events.record(session, "product.created", {"id": number})
            service.fan_out(session, event.id)
        event = events.record(session, "product.deleted", {"id": 9})
        service.fan_out(session, event.id)

    first = client.get(
        f"/api/webhooks/{endpoint_id}/deliveries", params={"page_size": 4, "page": 1}
    ).json()
    assert first["total"] == 6 and first["page"] == 1 and first["page_size"] == 4
    assert len(first["items"]) == 4
    ids = [item["id"] for item in first["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert first["items"][0]["event_type"] == "product.deleted"
    second = client.get(
        f"/api/webhooks/{endpoint_id}/deliveries", params={"page_size": 4, "page": 2}
    ).json()
    assert len(second["items"]) == 2
    deleted = client.get(
        f"/api/webhooks/{endpoint_id}/deliveries", params={"event": "product.deleted"}
    ).json()
    assert deleted["total"] == 1
    pending = client.get(
        f"/api/webhooks/{endpoint_id}/deliveries", params={"status": "pending"}
    ).json()
    assert pending["total"] == 6
    assert pending["items"][0]["webhook_id"].startswith("msg_")
    assert pending["items"][0]["attempts"] == []
    failed = client.get(
        f"/api/webhooks/{endpoint_id}/deliveries", params={"status": "failed"}
    ).json()
    assert failed == {"items": [], "total": 0, "page": 1, "page_size": 20}


def test_openapi_documents_the_webhooks_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in [
        "/api/webhooks",
        "/api/webhooks/events",
        "/api/webhooks/{endpoint_id}",
        "/api/webhooks/{endpoint_id}/test",
        "/api/webhooks/{endpoint_id}/rotate-secret",
        "/api/webhooks/{endpoint_id}/deliveries",
        "/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    ]:
        assert path in paths, path
    assert "only time" in paths["/api/webhooks"]["post"]["description"]


def test_a_bearer_token_works_and_a_browser_needs_the_csrf_header(
    anon_client: TestClient, client: TestClient, database: Database
) -> None:
    from tests.factories import make_token

    token = make_token(database)
    response = anon_client.get("/api/webhooks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    csrf = client.headers.pop("X-CSRF-Token")
    response = client.post("/api/webhooks", json={"url": URL, "events": ["product.created"]})
    assert response.status_code == 403
    client.headers["X-CSRF-Token"] = csrf
