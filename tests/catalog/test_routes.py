"""The products API over HTTP, on SQLite and PostgreSQL: every rule and every bad input."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from product_importer.db import Database
from tests.catalog.helpers import add_products, events, numbered, wait_for_delete_job
from tests.factories import make_product

CHAIR = {"sku": "CHAIR-OAK-01", "name": "Oak dining chair", "description": "Solid oak."}


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/products", json=CHAIR | fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- create -------------------------------------------------------------------------------


def test_create_returns_the_product_with_location_and_etag(
    client: TestClient, database: Database
) -> None:
    response = client.post("/api/products", json=CHAIR)
    assert response.status_code == 201
    body = response.json()
    assert body["sku"] == "CHAIR-OAK-01"
    assert body["active"] is True
    assert set(body) == {
        "id", "sku", "name", "description", "active", "fields", "created_at", "updated_at"
    }  # fmt: skip
    assert body["fields"] == {}
    assert response.headers["location"] == f"/api/products/{body['id']}"
    assert response.headers["etag"].startswith('"')
    created = events(database, "product.created")
    assert [event.payload["data"]["sku"] for event in created] == ["CHAIR-OAK-01"]


def test_create_trims_sku_and_name(client: TestClient) -> None:
    body = create(client, sku="  TRIM-1 \t", name="  Padded  ")
    assert (body["sku"], body["name"]) == ("TRIM-1", "Padded")


@pytest.mark.parametrize(
    ("existing", "new"),
    [("CHAIR-OAK-01", "chair-oak-01"), ("abc", " ABC "), ("Straße-1", "STRASSE-1")],
)
def test_create_onto_an_existing_sku_in_any_case_is_409_naming_the_clash(
    client: TestClient, database: Database, existing: str, new: str
) -> None:
    product_id = make_product(database, existing)
    response = client.post("/api/products", json=CHAIR | {"sku": new})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert existing in detail and str(product_id) in detail
    assert not events(database, "product.created")


INVALID_BODIES: list[tuple[str, Any]] = [
    ("missing sku", {"name": "x"}),
    ("missing name", {"sku": "x"}),
    ("empty sku", {"sku": "", "name": "x"}),
    ("blank sku", {"sku": "   ", "name": "x"}),
    ("blank name", {"sku": "x", "name": " \t "}),
    ("sku too long", {"sku": "S" * 256, "name": "x"}),
    ("name too long", {"sku": "x", "name": "N" * 501}),
    ("description too long", {"sku": "x", "name": "x", "description": "d" * 10_001}),
    ("sku a number", {"sku": 12345, "name": "x"}),
    ("name a list", {"sku": "x", "name": ["x"]}),
    ("active a string", {"sku": "x", "name": "x", "active": "yes"}),
    ("active a number", {"sku": "x", "name": "x", "active": 1}),
    ("null name", {"sku": "x", "name": None}),
    ("unknown field", {"sku": "x", "name": "x", "price": 3}),
    ("id supplied", {"sku": "x", "name": "x", "id": 7}),
    ("NUL in name", {"sku": "x", "name": "a\x00b"}),
    ("newline in sku", {"sku": "a\nb", "name": "x"}),
    ("control char in description", {"sku": "x", "name": "x", "description": "a\x07b"}),
    ("array body", [{"sku": "x", "name": "x"}]),
    ("string body", "sku"),
]


@pytest.mark.parametrize(("case", "body"), INVALID_BODIES, ids=[case for case, _ in INVALID_BODIES])
def test_create_rejects_invalid_bodies_with_422(
    client: TestClient, database: Database, case: str, body: Any
) -> None:
    response = client.post("/api/products", json=body)
    assert response.status_code == 422, (case, response.text)
    assert response.json()["detail"]
    assert not events(database)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"sku": "x", "name": ', "application/json"),
        (b"\xff\xfe not utf-8", "application/json"),
        (b'{"sku": "\\ud800", "name": "lone surrogate"}', "application/json"),
        (b"", "application/json"),
        (b"sku=x&name=y", "application/x-www-form-urlencoded"),
    ],
    ids=["truncated", "not-utf8", "lone-surrogate", "empty", "form"],
)
def test_create_rejects_malformed_payloads_with_422(
    client: TestClient, content: bytes, content_type: str
) -> None:
    response = client.post("/api/products", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text


def test_description_keeps_lines_and_unicode(client: TestClient) -> None:
    text = "Line one\r\nLine two\twith tab — ünïcödé 🪑"
    body = create(client, description=text)
    assert client.get(f"/api/products/{body['id']}").json()["description"] == text


# --- read ---------------------------------------------------------------------------------


def test_get_returns_the_product_and_its_etag(client: TestClient) -> None:
    created = client.post("/api/products", json=CHAIR)
    response = client.get(f"/api/products/{created.json()['id']}")
    assert response.status_code == 200
    assert response.json() == created.json()
    assert response.headers["etag"] == created.headers["etag"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/products/999999", 404),
        ("/api/products/0", 422),
        ("/api/products/-1", 422),
        ("/api/products/abc", 422),
        ("/api/products/1.5", 422),
        ("/api/products/99999999999999999999999", 422),
        ("/api/products/delete-jobs/999", 404),
        ("/api/products/delete-jobs/x", 422),
    ],
)
def test_unknown_or_malformed_ids(client: TestClient, path: str, code: int) -> None:
    for method in ("GET", "PATCH", "DELETE") if "delete-jobs" not in path else ("GET",):
        response = client.request(method, path, json={"name": "x"})
        assert response.status_code == code, (method, path, response.text)
        assert "detail" in response.json()


def test_latest_delete_job_is_404_before_any(client: TestClient) -> None:
    response = client.get("/api/products/delete-jobs/latest")
    assert response.status_code == 404
    assert "No delete-all job" in response.json()["detail"]


# --- update -------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent_and_emits_an_event(
    client: TestClient, database: Database
) -> None:
    created = client.post("/api/products", json=CHAIR)
    product_id = created.json()["id"]
    response = client.patch(
        f"/api/products/{product_id}", json={"name": "  Renamed ", "active": False}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["active"], body["sku"]) == ("Renamed", False, "CHAIR-OAK-01")
    assert body["updated_at"] > created.json()["updated_at"]
    assert response.headers["etag"] != created.headers["etag"]
    updated = events(database, "product.updated")
    assert [event.payload["data"]["name"] for event in updated] == ["Renamed"]


def test_patch_without_changes_writes_nothing(client: TestClient, database: Database) -> None:
    created = client.post("/api/products", json=CHAIR)
    product_id = created.json()["id"]
    for body in ({}, {"name": CHAIR["name"]}, {"sku": CHAIR["sku"]}):
        response = client.patch(f"/api/products/{product_id}", json=body)
        assert response.status_code == 200
        assert response.headers["etag"] == created.headers["etag"]
    assert not events(database, "product.updated")


def test_patch_may_change_the_letter_case_of_its_own_sku(client: TestClient) -> None:
    product_id = create(client)["id"]
    response = client.patch(f"/api/products/{product_id}", json={"sku": "chair-oak-01"})
    assert response.status_code == 200
    assert response.json()["sku"] == "chair-oak-01"


def test_patch_onto_another_sku_in_any_case_is_409(client: TestClient, database: Database) -> None:
    other = make_product(database, "TABLE-1")
    product_id = create(client)["id"]
    response = client.patch(f"/api/products/{product_id}", json={"sku": "table-1"})
    assert response.status_code == 409
    assert "TABLE-1" in response.json()["detail"] and str(other) in response.json()["detail"]
    assert client.get(f"/api/products/{product_id}").json()["sku"] == "CHAIR-OAK-01"


def test_patch_with_a_stale_if_match_is_412(client: TestClient, database: Database) -> None:
    created = client.post("/api/products", json=CHAIR)
    product_id, first_etag = created.json()["id"], created.headers["etag"]
    second = client.patch(
        f"/api/products/{product_id}",
        json={"name": "Alice's edit"},
        headers={"If-Match": first_etag},
    )
    assert second.status_code == 200
    stale = client.patch(
        f"/api/products/{product_id}", json={"name": "Bob's edit"}, headers={"If-Match": first_etag}
    )
    assert stale.status_code == 412
    assert "changed since you loaded it" in stale.json()["detail"]
    assert client.get(f"/api/products/{product_id}").json()["name"] == "Alice's edit"
    current = second.headers["etag"]
    for make_header in (lambda tag: tag, lambda tag: f'"nope", {tag}', lambda _tag: "*"):
        header = make_header(current)
        response = client.patch(
            f"/api/products/{product_id}", json={"name": header}, headers={"If-Match": header}
        )
        assert response.status_code == 200, header
        current = response.headers["etag"]
    for header in ("garbage", "W/" + response.headers["etag"], '""'):
        response = client.patch(
            f"/api/products/{product_id}", json={"active": True}, headers={"If-Match": header}
        )
        assert response.status_code == 412, header


@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"sku": ""},
        {"sku": None},
        {"active": "false"},
        {"description": 5},
        {"colour": "red"},
        [],
    ],
)
def test_patch_rejects_invalid_bodies_with_422(client: TestClient, body: Any) -> None:
    product_id = create(client)["id"]
    response = client.patch(f"/api/products/{product_id}", json=body)
    assert response.status_code == 422, response.text
    assert client.get(f"/api/products/{product_id}").json()["name"] == CHAIR["name"]


# --- delete one ---------------------------------------------------------------------------


def test_delete_removes_the_product_and_emits_an_event(
    client: TestClient, database: Database
) -> None:
    product_id = create(client)["id"]
    assert client.delete(f"/api/products/{product_id}").status_code == 204
    assert client.get(f"/api/products/{product_id}").status_code == 404
    assert client.delete(f"/api/products/{product_id}").status_code == 404
    deleted = events(database, "product.deleted")
    assert [event.payload["data"] for event in deleted] == [
        {"id": product_id, "sku": "CHAIR-OAK-01"}
    ]
    # The SKU is free again.
    assert client.post("/api/products", json=CHAIR).status_code == 201


def test_delete_with_a_stale_if_match_is_412(client: TestClient) -> None:
    created = client.post("/api/products", json=CHAIR)
    product_id = created.json()["id"]
    client.patch(f"/api/products/{product_id}", json={"name": "Changed"})
    response = client.delete(
        f"/api/products/{product_id}", headers={"If-Match": created.headers["etag"]}
    )
    assert response.status_code == 412
    assert client.get(f"/api/products/{product_id}").status_code == 200


# --- list, filter, sort, page -------------------------------------------------------------


def _skus(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["sku"] for item in response.json()["items"]]


@pytest.fixture
def catalogue(database: Database) -> None:
    add_products(
        database,
        [
            {"sku": "CHAIR-OAK-01", "name": "Oak dining chair", "description": "Solid oak, oiled."},
            {"sku": "chair-pine-02", "name": "Pine kitchen chair", "description": "Painted white."},
            {"sku": "TABLE-OAK-01", "name": "Oak table", "description": "Seats six; 100% oak."},
            {
                "sku": "LAMP-1",
                "name": "Desk lamp",
                "description": "LED, warm_white",
                "active": False,
            },
            {"sku": "Straße-9", "name": "Café Ärger stool", "description": "Ünïcode text"},
        ],
    )


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["CHAIR-OAK-01", "chair-pine-02", "LAMP-1", "Straße-9", "TABLE-OAK-01"]),
        ("sku=chair-oak-01", ["CHAIR-OAK-01"]),
        ("sku=CHAIR", []),
        ("sku=chair*", ["CHAIR-OAK-01", "chair-pine-02"]),
        ("sku=STRASSE*", ["Straße-9"]),
        ("sku=*", ["CHAIR-OAK-01", "chair-pine-02", "LAMP-1", "Straße-9", "TABLE-OAK-01"]),
        ("name=OAK", ["CHAIR-OAK-01", "TABLE-OAK-01"]),
        ("name=dining chair", ["CHAIR-OAK-01"]),
        ("name=ak", ["CHAIR-OAK-01", "TABLE-OAK-01"]),
        ("name=café", ["Straße-9"]),
        ("name=CAFÉ ÄRGER", ["Straße-9"]),
        ("description=oak", ["CHAIR-OAK-01", "TABLE-OAK-01"]),
        ("description=100%", ["TABLE-OAK-01"]),
        ("description=%", ["TABLE-OAK-01"]),
        ("description=_", ["LAMP-1"]),
        ("description=m_w", ["LAMP-1"]),
        ("active=false", ["LAMP-1"]),
        ("active=true&name=chair", ["CHAIR-OAK-01", "chair-pine-02"]),
        ("q=oak", ["CHAIR-OAK-01", "TABLE-OAK-01"]),
        ("q=oak chair", ["CHAIR-OAK-01"]),
        ("q=table-oak", ["TABLE-OAK-01"]),
        ("q=white", ["chair-pine-02", "LAMP-1"]),
        ("q=   ", ["CHAIR-OAK-01", "chair-pine-02", "LAMP-1", "Straße-9", "TABLE-OAK-01"]),
        ("q=nothing-like-this", []),
        ('q="oak"', []),
        ("q=oak AND", []),
        ("q=NOT oak", []),
        ("q=oak*", []),
        # Free text alone is answered from the search documents: wildcards stay literal there.
        ("q=%", ["TABLE-OAK-01"]),
        ("q=_", ["LAMP-1"]),
        ("q=m_w", ["LAMP-1"]),
        ("q=ÄRGER", ["Straße-9"]),
        ("q=\\", []),
        ("q=name:oak", []),
        ("q=(oak", []),
        ("name=\\", []),
    ],
)
def test_filters(client: TestClient, query: str, expected: list[str]) -> None:
    response = client.get(f"/api/products?{query}")
    assert _skus(response) == expected
    assert response.json()["total"] == len(expected)
    assert response.json()["total_is_estimate"] is False


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("sku", ["CHAIR-OAK-01", "chair-pine-02", "LAMP-1", "Straße-9", "TABLE-OAK-01"]),
        ("-sku", ["TABLE-OAK-01", "Straße-9", "LAMP-1", "chair-pine-02", "CHAIR-OAK-01"]),
        ("name", ["Straße-9", "LAMP-1", "CHAIR-OAK-01", "TABLE-OAK-01", "chair-pine-02"]),
        ("created_at", ["CHAIR-OAK-01", "chair-pine-02", "TABLE-OAK-01", "LAMP-1", "Straße-9"]),
        ("-created_at", ["Straße-9", "LAMP-1", "TABLE-OAK-01", "chair-pine-02", "CHAIR-OAK-01"]),
    ],
)
def test_sorting(client: TestClient, sort: str, expected: list[str]) -> None:
    assert _skus(client.get(f"/api/products?sort={sort}")) == expected


def test_sort_by_updated_at_follows_edits(client: TestClient, database: Database) -> None:
    add_products(database, numbered(3))
    ids = {item["sku"]: item["id"] for item in client.get("/api/products").json()["items"]}
    client.patch(f"/api/products/{ids['SKU-00001']}", json={"name": "Edited"})
    assert _skus(client.get("/api/products?sort=-updated_at"))[0] == "SKU-00001"
    assert _skus(client.get("/api/products?sort=updated_at"))[-1] == "SKU-00001"


def test_pages_cover_every_product_once(client: TestClient, database: Database) -> None:
    add_products(database, numbered(23))
    seen: list[str] = []
    for page in (1, 2, 3):
        response = client.get(f"/api/products?page={page}&page_size=10")
        body = response.json()
        assert (body["total"], body["page"], body["page_size"]) == (23, page, 10)
        seen += _skus(response)
    assert seen == [f"SKU-{index:05d}" for index in range(23)]
    beyond = client.get("/api/products?page=9&page_size=10").json()
    assert beyond["items"] == [] and beyond["total"] == 23


def test_page_size_defaults_to_50(client: TestClient, database: Database) -> None:
    add_products(database, numbered(60))
    body = client.get("/api/products").json()
    assert (len(body["items"]), body["page_size"], body["total"]) == (50, 50, 60)


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page=1.5",
        "page=1000001",
        "page=99999999999999999999999999",
        "page_size=0",
        "page_size=501",
        "page_size=ten",
        "sort=price",
        "sort=sku;drop table products",
        "sort=",
        "active=maybe",
        "active=",
        "name=" + "x" * 201,
        "q=a%00b",
        "sku=a%0Ab",
        "description=%07",
    ],
)
def test_invalid_list_parameters_are_422_with_the_reason(client: TestClient, query: str) -> None:
    response = client.get(f"/api/products?{query}")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail and detail[0]["loc"][0] == "query" and detail[0]["msg"]


def test_an_empty_catalogue_lists_nothing(client: TestClient) -> None:
    body = client.get("/api/products").json()
    assert body == {
        "items": [],
        "total": 0,
        "total_is_estimate": False,
        "page": 1,
        "page_size": 50,
        "search_pending": False,
    }


# --- delete all ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?confirm=false", "?confirm=0"])
def test_delete_all_needs_confirmation(client: TestClient, database: Database, query: str) -> None:
    make_product(database, "KEEP-1")
    response = client.delete(f"/api/products{query}")
    assert response.status_code == 400
    assert "confirm=true" in response.json()["detail"]
    assert client.get("/api/products").json()["total"] == 1


def test_delete_all_with_a_malformed_confirm_is_422(client: TestClient) -> None:
    assert client.delete("/api/products?confirm=please").status_code == 422


def test_delete_all_runs_in_the_background_and_emits_one_event(
    client: TestClient, database: Database
) -> None:
    add_products(database, numbered(250, description="searchable words"))
    response = client.delete("/api/products?confirm=true")
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/api/products/delete-jobs/{job['id']}"
    assert job["status"] in ("queued", "running", "completed")
    finished = wait_for_delete_job(client, job["id"])
    assert finished["status"] == "completed", finished
    assert (finished["total"], finished["deleted"]) == (250, 250)
    assert finished["finished_at"] and finished["requested_by"] == "alice"
    assert client.get("/api/products").json()["total"] == 0
    assert client.get("/api/products/delete-jobs/latest").json()["id"] == job["id"]
    emitted = events(database, "products.deleted_all")
    assert [event.payload["data"]["deleted_count"] for event in emitted] == [250]
    assert not events(database, "product.deleted")
    # The catalogue works normally afterwards, search included.
    created = create(client, description="searchable again")
    assert _skus(client.get("/api/products?q=searchable")) == [created["sku"]]
