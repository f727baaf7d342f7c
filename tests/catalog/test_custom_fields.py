"""Custom fields through the real API on both databases: definitions, product values, history,
undo of an edit and of a field's removal, type changes, and the import's merge of fields."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from product_importer.auth.roles import Role
from product_importer.catalog.models import Product
from product_importer.db import Database, compact_json, utcnow
from product_importer.history.recording import ChangeRequest
from product_importer.imports.merge import MergeCounts, merger_for
from tests.changes.helpers import undo
from tests.factories import make_token

PRICE = {"key": "price", "label": "Price", "type": "decimal"}
STOCK = {"key": "stock", "label": "Stock", "type": "integer"}
TAGS = {"key": "tags", "label": "Tags", "type": "list"}


def define(client: TestClient, *fields: dict[str, Any]) -> list[dict[str, Any]]:
    made = []
    for field in fields:
        response = client.post("/api/fields", json=field)
        assert response.status_code == 201, response.text
        made.append(response.json())
    return made


def create(client: TestClient, sku: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/products", json={"sku": sku, "name": sku, "fields": fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_fields(database: Database) -> dict[str, dict[str, Any]]:
    with database.session() as session:
        return dict(session.execute(select(Product.sku, Product.fields)).tuples().all())


# --- definitions -----------------------------------------------------------------------------


def test_an_admin_defines_fields_and_every_role_reads_them(
    client: TestClient, database: Database
) -> None:
    price, _stock = define(client, PRICE, STOCK)
    assert price["key"] == "price" and price["type"] == "decimal" and price["choices"] is None
    viewer = {"Authorization": f"Bearer {make_token(database, 'v', Role.viewer)}"}
    listed = client.get("/api/fields", headers=viewer)
    assert listed.status_code == 200
    assert [field["key"] for field in listed.json()] == ["price", "stock"]
    editor = {"Authorization": f"Bearer {make_token(database, 'e', Role.editor)}"}
    refused = client.post("/api/fields", json=TAGS, headers=editor)
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"key": "sku", "label": "X", "type": "text"}, 422, "built-in"),
        ({"key": "Price", "label": "X", "type": "text"}, 422, "lower-case"),
        ({"key": "1abc", "label": "X", "type": "text"}, 422, "lower-case"),
        ({"key": "a" * 64, "label": "X", "type": "text"}, 422, "63"),
        ({"key": "ok", "label": "X", "type": "money"}, 422, ""),
        ({"key": "ok", "label": "", "type": "text"}, 422, ""),
        ({"key": "ok", "label": "X", "type": "choice"}, 422, "at least one choice"),
        ({"key": "ok", "label": "X", "type": "text", "choices": ["a"]}, 422, "Only a field"),
        ({"key": "ok", "label": "X\x00", "type": "text"}, 422, "control"),
        ({"key": "price", "label": "Again", "type": "text"}, 409, "already exists"),
    ],
)
def test_a_bad_definition_is_refused_with_the_reason(
    client: TestClient, body: dict[str, Any], status: int, says: str
) -> None:
    define(client, PRICE)
    response = client.post("/api/fields", json=body)
    assert response.status_code == status, response.text
    assert says in response.text


def test_two_hundred_fields_fit_in_a_catalogue(client: TestClient) -> None:
    for number in range(200):
        define(client, {"key": f"f{number}", "label": f"Field {number}", "type": "text"})
    product = create(client, "MANY", **{f"f{n}": f"value {n}" for n in range(200)})
    assert len(product["fields"]) == 200
    assert len(client.get("/api/fields").json()) == 200


# --- product values ----------------------------------------------------------------------


def test_products_keep_typed_values_in_their_canonical_form(client: TestClient) -> None:
    define(
        client,
        PRICE,
        STOCK,
        TAGS,
        {"key": "launch", "label": "Launch", "type": "date"},
        {"key": "featured", "label": "Featured", "type": "boolean"},
        {"key": "colour", "label": "Colour", "type": "choice", "choices": ["Red", "Blue"]},
        {"key": "page", "label": "Page", "type": "url"},
    )
    product = create(
        client,
        "TEE-1",
        price="1299.90",
        stock=4,
        tags=["summer", " sale ", "summer"],
        launch="2026-03-01",
        featured=True,
        colour="blue",
        page="https://shop.example/tee",
    )
    assert product["fields"] == {
        "price": "1299.9",
        "stock": 4,
        "tags": ["summer", "sale"],
        "launch": "2026-03-01",
        "featured": True,
        "colour": "Blue",
        "page": "https://shop.example/tee",
    }
    again = client.get(f"/api/products/{product['id']}").json()
    assert again["fields"] == product["fields"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"price": "abc"}, "field 'price'"),
        ({"price": "1e400"}, "not a number"),
        ({"price": "NaN"}, "not a number"),
        ({"stock": 12.5}, "whole number"),
        ({"stock": 2**63}, "64-bit"),
        ({"stock": True}, "whole number"),
        ({"launch": "2026-02-30"}, "calendar"),
        ({"tags": [f"{n:03d}" + "x" * 150 for n in range(20)]}, "2000 characters"),
        ({"tags": "summer"}, "list of strings"),
        ({"nope": 1}, "field 'nope' is not a defined field"),
        ({"price": None}, "cannot be null"),
    ],
)
def test_a_wrong_value_is_a_422_naming_the_field(
    client: TestClient, database: Database, fields: dict[str, Any], says: str
) -> None:
    define(client, PRICE, STOCK, TAGS, {"key": "launch", "label": "Launch", "type": "date"})
    response = client.post("/api/products", json={"sku": "X-1", "name": "X", "fields": fields})
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
    assert stored_fields(database) == {}


def test_patch_sets_and_unsets_fields_and_leaves_the_others(client: TestClient) -> None:
    define(client, PRICE, STOCK, TAGS)
    product = create(client, "P-1", price="19.99", stock=4, tags=["a"])
    response = client.patch(
        f"/api/products/{product['id']}", json={"fields": {"price": "21.50", "stock": None}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["fields"] == {"price": "21.5", "tags": ["a"]}
    wrong = client.patch(f"/api/products/{product['id']}", json={"fields": {"stock": "four"}})
    assert wrong.status_code == 422 and "field 'stock'" in wrong.json()["detail"]
    unchanged = client.patch(f"/api/products/{product['id']}", json={"fields": {"price": "21.5"}})
    assert unchanged.headers["etag"] == response.headers["etag"]


def test_history_shows_each_field_change_and_undo_restores_it(client: TestClient) -> None:
    define(client, PRICE, STOCK)
    product = create(client, "H-1", price="10", stock=1)
    client.patch(f"/api/products/{product['id']}", json={"fields": {"price": "12.5"}})
    entries = client.get(f"/api/products/{product['id']}/history").json()["items"]
    latest = entries[0]
    assert latest["changes"] == [{"field": "fields.price", "old": "10", "new": "12.5"}]
    assert {c["field"] for c in entries[-1]["changes"]} >= {"fields.price", "fields.stock"}
    undo(client, latest["change_id"])
    assert client.get(f"/api/products/{product['id']}").json()["fields"] == {
        "price": "10",
        "stock": 1,
    }


# --- type changes and removal --------------------------------------------------------------


def test_a_type_change_converts_every_value_or_names_how_many_do_not(
    client: TestClient, database: Database
) -> None:
    code, _price = define(client, {"key": "code", "label": "Code", "type": "text"}, PRICE)
    create(client, "A", code="12")
    create(client, "B", code="0042")
    to_integer = client.patch(f"/api/fields/{code['id']}", json={"type": "integer"})
    assert to_integer.status_code == 200, to_integer.text
    assert stored_fields(database) == {"A": {"code": 12}, "B": {"code": 42}}
    create(client, "C", code=7)
    to_text = client.patch(f"/api/fields/{code['id']}", json={"type": "text"})
    assert to_text.status_code == 200
    create(client, "D", code="not a number")
    refused = client.patch(f"/api/fields/{code['id']}", json={"type": "decimal"})
    assert refused.status_code == 409
    assert "1 stored value of 'code' does not convert to decimal" in refused.json()["detail"]
    assert stored_fields(database)["D"] == {"code": "not a number"}
    renamed = client.patch(f"/api/fields/{code['id']}", json={"label": "Supplier code"})
    assert renamed.json()["label"] == "Supplier code"
    assert renamed.json()["type"] == "text"


def test_removing_a_field_is_one_change_that_undo_reverses(
    client: TestClient, database: Database
) -> None:
    price, _stock = define(client, PRICE, STOCK)
    for number in range(30):
        create(client, f"R-{number}", price=f"{number}.5", stock=number)
    create(client, "NO-PRICE", stock=1)
    before = stored_fields(database)
    removed = client.delete(f"/api/fields/{price['id']}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["products"] == 30
    assert [f["key"] for f in client.get("/api/fields").json()] == ["stock"]
    assert all("price" not in values for values in stored_fields(database).values())
    refused = client.post("/api/products", json={"sku": "Z", "name": "Z", "fields": {"price": "1"}})
    assert refused.status_code == 422
    undone = undo(client, removed.json()["change_id"])
    assert undone["status"] == "completed", undone
    assert stored_fields(database) == before
    assert [f["key"] for f in client.get("/api/fields").json()] == ["stock", "price"]
    listed = client.get("/api/products", params={"sku": "R-3"}).json()["items"]
    assert listed[0]["fields"] == {"price": "3.5", "stock": 3}


def test_a_removal_is_not_undone_over_a_field_made_again_with_another_type(
    client: TestClient,
) -> None:
    (price,) = define(client, PRICE)
    create(client, "A", price="1")
    removed = client.delete(f"/api/fields/{price['id']}").json()
    define(client, {"key": "price", "label": "Price text", "type": "text"})
    response = client.post(f"/api/changes/{removed['change_id']}/undo")
    if response.status_code == 202:
        assert "created again as text" in (undo_error := _wait_error(client, response.json()))
        assert undo_error
    else:
        assert response.status_code == 409, response.text
        assert "created again as text" in response.text


def _wait_error(client: TestClient, change: dict[str, Any]) -> str:
    from tests.changes.helpers import wait_for_change

    done = wait_for_change(client, change["id"])
    assert done["status"] == "failed", done
    return str(done["error"])


# --- the import's merge --------------------------------------------------------------------


def _merge(database: Database, rows: list[tuple[str, str, dict[str, Any] | None]]) -> MergeCounts:
    merger = merger_for(database.engine)
    staged = [
        (
            line,
            sku.casefold(),
            sku,
            name,
            "",
            None,
            None if fields is None else compact_json(fields),
        )
        for line, (sku, name, fields) in enumerate(rows, start=2)
    ]
    try:
        merger.stage(staged)
        request = ChangeRequest(kind="import", actor="test", summary="test import")
        return merger.merge(False, utcnow(), lambda _done: None, lambda _c: [], request)
    finally:
        merger.close()


def test_the_merge_patches_fields_counts_unchanged_rows_and_records_for_undo(
    client: TestClient, database: Database
) -> None:
    define(client, PRICE, STOCK, TAGS)
    first = _merge(
        database,
        [
            ("A", "A", {"price": "1.5", "stock": 3}),
            ("B", "B", {"tags": ["x", "y"]}),
            ("C", "C", None),
            ("D", "D", {"price": "2", "stock": None}),
        ],
    )
    assert (first.created, first.updated) == (4, 0)
    assert stored_fields(database) == {
        "A": {"price": "1.5", "stock": 3},
        "B": {"tags": ["x", "y"]},
        "C": {},
        "D": {"price": "2"},
    }
    same = _merge(database, [("A", "A", {"stock": 3}), ("B", "B", None), ("C", "C", {})])
    assert (same.created, same.updated, same.unchanged) == (0, 0, 3)
    second = _merge(
        database,
        [
            ("A", "A", {"stock": None, "price": "1.75"}),
            ("B", "B", {"tags": ["z"]}),
            ("C", "C", None),
        ],
    )
    assert (second.created, second.updated, second.unchanged) == (0, 2, 1)
    assert stored_fields(database)["A"] == {"price": "1.75"}
    assert stored_fields(database)["B"] == {"tags": ["z"]}
    assert second.change_id is not None
    undo(client, second.change_id)
    assert stored_fields(database)["A"] == {"price": "1.5", "stock": 3}
    assert stored_fields(database)["B"] == {"tags": ["x", "y"]}
    with database.engine.connect() as connection:
        kinds = connection.execute(text("SELECT kind FROM change_sets ORDER BY id")).scalars()
        assert list(kinds)[-1] == "undo"


def test_delete_all_and_its_undo_keep_every_field(client: TestClient, database: Database) -> None:
    from tests.catalog.helpers import wait_for_delete_job

    define(client, PRICE, STOCK, TAGS)
    for number in range(25):
        create(client, f"D-{number}", price=f"{number}.99", stock=number, tags=[f"t{number}"])
    create(client, "PLAIN")
    before = stored_fields(database)
    response = client.delete("/api/products", params={"confirm": "true"})
    assert response.status_code == 202, response.text
    job = wait_for_delete_job(client, response.json()["id"])
    assert job["status"] == "completed" and stored_fields(database) == {}
    result = undo(client, job["change_id"])
    assert result["status"] == "completed", result
    assert stored_fields(database) == before
