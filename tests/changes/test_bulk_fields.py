"""The bulk action `set_fields` on SQLite and PostgreSQL: by ids and by a field filter, values
checked against the fields, only products it changes recorded, undone exactly, and as a job
for a large selection."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from product_importer.catalog import custom_fields
from product_importer.catalog.locking import CatalogueLock
from product_importer.changes import bulk
from product_importer.db import Database
from tests.catalog.field_helpers import add_with_fields, define, fields_by_sku
from tests.catalog.helpers import events
from tests.changes.helpers import catalogue, undo, wait_for_change

FIELDS: dict[str, tuple[str, list[str] | None]] = {
    "vendor": ("text", None),
    "stock": ("integer", None),
    "price": ("decimal", None),
    "tags": ("list", None),
}


@pytest.fixture
def products(database: Database) -> dict[str, dict[str, Any]]:
    define(database, FIELDS)
    add_with_fields(
        database,
        [
            {"sku": "P-1", "fields": {"vendor": "Café Nord", "stock": 4, "price": "19.9"}},
            {"sku": "P-2", "fields": {"vendor": "Acme", "stock": 9, "tags": ["oak", "été"]}},
            {"sku": "P-3", "fields": {"stock": 12}, "active": False},
            {"sku": "P-4", "fields": {}},
        ],
    )
    return fields_by_sku(database)


def ids_of(client: TestClient) -> dict[str, int]:
    items = client.get("/api/products?page_size=100").json()["items"]
    return {item["sku"]: item["id"] for item in items}


def post(client: TestClient, body: dict[str, Any], query: str = "") -> Any:
    return client.post(f"/api/products/bulk{query}", json=body)


def test_set_fields_by_ids_sets_and_unsets_then_undo_restores(
    client: TestClient, database: Database, products: dict[str, dict[str, Any]]
) -> None:
    before = catalogue(database)
    ids = ids_of(client)
    response = post(
        client,
        {
            "action": "set_fields",
            "fields": {"vendor": "Café Nord", "stock": None, "tags": ["new", "été"]},
            "ids": [ids["P-1"], ids["P-3"], ids["P-4"]],
        },
    )
    assert response.status_code == 200, response.text
    change = response.json()
    assert (change["kind"], change["status"], change["updated"]) == ("bulk", "completed", 3)
    assert "set_fields (stock, tags, vendor)" in change["summary"]
    after = fields_by_sku(database)
    assert after["P-1"] == {"vendor": "Café Nord", "price": "19.9", "tags": ["new", "été"]}
    assert after["P-3"] == {"vendor": "Café Nord", "tags": ["new", "été"]}
    assert after["P-4"] == {"vendor": "Café Nord", "tags": ["new", "été"]}
    assert after["P-2"] == products["P-2"]  # not selected
    assert catalogue(database) == before  # sku, name, description, active untouched
    # The product's API shape and its history show the change.
    product = client.get(f"/api/products/{ids['P-3']}").json()
    assert product["fields"] == {"vendor": "Café Nord", "tags": ["new", "été"]}
    history = client.get(f"/api/products/{ids['P-3']}/history").json()["items"]
    assert history[0]["change_id"] == change["id"]
    assert {item["field"] for item in history[0]["changes"]} >= {"fields.stock", "fields.vendor"}

    result = undo(client, change["id"])
    assert (result["status"], result["restored"], result["kept"]) == ("completed", 3, 0)
    assert fields_by_sku(database) == products
    assert catalogue(database) == before


def test_set_fields_records_only_the_products_it_changes(
    client: TestClient, database: Database, products: dict[str, dict[str, Any]]
) -> None:
    ids = ids_of(client)
    # P-1 has this vendor already (non-ASCII text: compared as the values stored) but loses
    # its price; P-4 gains the vendor (and has no price to lose).
    response = post(
        client,
        {
            "action": "set_fields",
            "fields": {"vendor": "Café Nord", "price": None},
            "ids": [ids["P-1"], ids["P-4"]],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["updated"] == 2
    response = post(
        client,
        {
            "action": "set_fields",
            "fields": {"vendor": "Café Nord", "price": None},
            "ids": list(ids.values()),
        },
    )
    assert response.json()["updated"] == 2  # P-2 and P-3: P-1 and P-4 have it already
    assert fields_by_sku(database)["P-4"] == {"vendor": "Café Nord"}


def test_set_fields_by_a_field_filter_checks_the_total(
    client: TestClient, database: Database, products: dict[str, dict[str, Any]]
) -> None:
    body: dict[str, Any] = {
        "action": "set_fields",
        "fields": {"price": "1,299.5"},  # JSON strings are read as the API reads them
        "filter": {"field.stock.gte": "5", "active": True},
        "expected_total": 2,
    }
    counted = post(client, body | {"expected_total": None}, "?dry_run=true")
    assert counted.status_code == 200, counted.text
    assert counted.json()["matched"] == 1  # P-2 (P-3 is inactive)
    stale = post(client, body)
    assert stale.status_code == 409, stale.text
    assert "matches 1 products, not the 2" in stale.json()["detail"]
    assert fields_by_sku(database) == products
    # A number in a field filter is taken as the query string would spell it.
    done = post(client, body | {"filter": {"field.stock.gte": 5}, "expected_total": 2})
    assert done.status_code == 200, done.text
    assert done.json()["updated"] == 2
    after = fields_by_sku(database)
    assert (after["P-2"]["price"], after["P-3"]["price"]) == ("1299.5", "1299.5")
    assert "price" not in after["P-4"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"stock": "abc"}, "field 'stock' must be a whole number"),
        ({"stock": 12.5}, "field 'stock' must be a whole number"),
        ({"price": "1e400"}, "field 'price'"),
        ({"price": True}, "field 'price'"),
        ({"tags": "oak"}, "field 'tags' must be a list of strings"),
        ({"tags": ["x" * 10_000]}, "field 'tags'"),
        ({"vendor": "v" * 10_000}, "field 'vendor' is 10000 characters"),
        ({"vendor": "a\x00b"}, "field 'vendor' must not contain control characters"),
        ({"nope": 1}, "field 'nope' is not a defined field"),
        ({"k" * 10_000: 1}, "is not a defined field"),
    ],
)
def test_set_fields_values_are_checked_with_422_naming_the_field(
    client: TestClient,
    database: Database,
    products: dict[str, dict[str, Any]],
    fields: dict[str, Any],
    reason: str,
) -> None:
    ids = list(ids_of(client).values())
    for query in ("", "?dry_run=true"):
        response = post(client, {"action": "set_fields", "fields": fields, "ids": ids}, query)
        assert response.status_code == 422, response.text
        assert reason in response.json()["detail"], response.text
    assert fields_by_sku(database) == products


@pytest.mark.parametrize(
    "body",
    [
        {"action": "set_fields", "ids": [1]},
        {"action": "set_fields", "fields": {}, "ids": [1]},
        {"action": "set_fields", "fields": None, "ids": [1]},
        {"action": "set_fields", "fields": ["vendor"], "ids": [1]},
        {"action": "activate", "fields": {"vendor": "x"}, "ids": [1]},
        {"action": "set_fields", "fields": {"vendor": "x"}, "filter": {"bogus": "1"}},
        {"action": "set_fields", "fields": {"vendor": "x"}, "filter": {"field.stock": {"a": 1}}},
        {"action": "set_fields", "fields": {"vendor": "x"}, "filter": {"field.stock": None}},
        {"action": "set_fields", "fields": {"vendor": "x"}, "filter": {"field.stock": "1" * 3000}},
        {
            "action": "set_fields",
            "fields": {"vendor": "x"},
            "filter": {f"field.stock.gt{i}": "1" for i in range(21)},
        },
    ],
)
def test_malformed_set_fields_requests_are_422(
    client: TestClient, products: dict[str, dict[str, Any]], body: dict[str, Any]
) -> None:
    response = post(client, body | {"expected_total": 1} if "filter" in body else body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("field_filter", "reason"),
    [
        ({"field.price.gt": "abc"}, "filter field.price.gt: the value 'abc' is not a number"),
        ({"field.price.gt": "1e400"}, "is not a number"),
        ({"field.nope": "1"}, "filter field.nope: there is no field 'nope'"),
        ({"field.vendor.gt": "1"}, "vendor is a text field"),
        ({"field.stock.contains": "1"}, "stock is a integer field"),
        ({"field..x": "1"}, "field.<key>"),
        ({"field.price.bogus": "1"}, "unknown operator 'bogus'"),
        ({"field.vendor": "v" * 1990 + "\x07"}, "control characters"),
    ],
)
def test_hostile_field_filters_in_a_bulk_request_are_422(
    client: TestClient,
    database: Database,
    products: dict[str, dict[str, Any]],
    field_filter: dict[str, str],
    reason: str,
) -> None:
    for action, extra in (("set_fields", {"fields": {"vendor": "x"}}), ("delete", {})):
        body = {"action": action, "filter": field_filter, "expected_total": 1, **extra}
        for query in ("", "?dry_run=true"):
            response = post(client, body, query)
            assert response.status_code == 422, response.text
            assert reason in response.json()["detail"], response.text
    assert fields_by_sku(database) == products


def test_a_large_set_fields_runs_as_a_job_and_is_undone(
    client: TestClient, database: Database
) -> None:
    define(database, FIELDS)
    count = bulk.INLINE_LIMIT + 200
    add_with_fields(
        database,
        [
            {"sku": f"J-{i:05d}", "fields": {"stock": i, **({"vendor": "Old"} if i % 2 else {})}}
            for i in range(count)
        ],
    )
    before = fields_by_sku(database)
    response = post(
        client,
        {
            "action": "set_fields",
            "fields": {"vendor": "New", "stock": None, "tags": ["bulk"]},
            "filter": {"sku": "J-*", "field.stock.gte": "0"},
            "expected_total": count,
        },
    )
    assert response.status_code == 202, response.text
    change = wait_for_change(client, response.json()["id"])
    assert (change["status"], change["updated"]) == ("completed", count), change
    after = fields_by_sku(database)
    assert all(fields == {"vendor": "New", "tags": ["bulk"]} for fields in after.values())
    assert len(after) == count
    [event] = [e for e in events(database, "products.bulk_changed")]
    assert event.payload["data"] == {
        "change_id": change["id"],
        "action": "set_fields",
        "matched": count,
        "changed": count,
        "fields": {"vendor": "New", "stock": None, "tags": ["bulk"]},
    }
    # The filter now finds them by their new value.
    listed = client.get("/api/products?field.vendor=new&field.tags=bulk&field.stock.set=false")
    assert listed.json()["total"] == count

    result = undo(client, change["id"])
    assert (result["status"], result["restored"]) == ("completed", count), result
    assert fields_by_sku(database) == before


def test_a_queued_set_fields_fails_cleanly_when_its_field_is_gone(
    client: TestClient, database: Database
) -> None:
    define(database, FIELDS)
    count = bulk.INLINE_LIMIT + 1
    add_with_fields(database, [{"sku": f"G-{i:05d}", "fields": {"stock": 1}} for i in range(count)])
    field_id = next(f["id"] for f in client.get("/api/fields").json() if f["key"] == "vendor")
    lock = CatalogueLock(database)
    assert lock.try_acquire()  # hold the job back while the field is removed
    try:
        response = post(
            client,
            {
                "action": "set_fields",
                "fields": {"vendor": "X"},
                "filter": {"field.stock": "1"},
                "expected_total": count,
            },
        )
        assert response.status_code == 202, response.text
        with database.session() as session:
            custom_fields.remove(session, field_id, "test")
    finally:
        lock.release()
    change = wait_for_change(client, response.json()["id"])
    assert change["status"] == "failed", change
    assert "field 'vendor' is not a defined field" in change["error"]
    assert all(fields == {"stock": 1} for fields in fields_by_sku(database).values())
