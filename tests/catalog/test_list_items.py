"""SQLite keeps a list field's elements in `product_list_items` by triggers, so that "has this
tag" reads an index: after every kind of write (create, edit, import, bulk, undo, delete-all, a
type change, a field's removal) the table holds exactly the elements the products hold, the
filter uses it, and a catalogue from before migration 0019 gets it filled."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from product_importer import migrate
from product_importer.db import Database
from tests.catalog.helpers import wait_for_delete_job
from tests.changes.helpers import undo
from tests.imports.conftest import wait_for

TAGS = {"key": "tags", "label": "Tags", "type": "list"}
MORE = {"key": "labels", "label": "Labels", "type": "list"}


@pytest.fixture(autouse=True)
def sqlite_only(database: Database) -> None:
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL serves lists from a GIN index; this table is SQLite's")


def held(database: Database) -> set[tuple[str, str, str]]:
    """(field key, element, sku) in the elements table."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT f.key, i.item, p.sku FROM product_list_items AS i "
                "JOIN custom_fields AS f ON f.id = i.field_id "
                "JOIN products AS p ON p.id = i.product_id"
            )
        ).all()
        total = connection.execute(text("SELECT count(*) FROM product_list_items")).scalar_one()
    assert total == len(rows), "elements of products or fields that are gone"
    return {(key, item, sku) for key, item, sku in rows}


def expected(database: Database) -> set[tuple[str, str, str]]:
    """What the products' JSON holds, for every list field."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT f.key, j.value, p.sku FROM products AS p, custom_fields AS f, "
                "json_each(p.fields, '$.' || f.key) AS j WHERE f.type = 'list'"
            )
        ).all()
    return {(key, item, sku) for key, item, sku in rows}


def in_step(database: Database) -> set[tuple[str, str, str]]:
    found = held(database)
    assert found == expected(database)
    return found


def define(client: TestClient, field: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/fields", json=field)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def tagged(client: TestClient, tag: str) -> list[str]:
    response = client.get("/api/products", params={"field.tags": tag, "page_size": 100})
    assert response.status_code == 200, response.text
    return sorted(item["sku"] for item in response.json()["items"])


def test_every_write_keeps_the_elements_table_in_step(
    client: TestClient, database: Database
) -> None:
    define(client, TAGS)
    define(client, MORE)
    for sku, tags in [("A", ["summer", "sale"]), ("B", ["winter"]), ("C", ["sale", "sale"])]:
        response = client.post(
            "/api/products", json={"sku": sku, "name": sku, "fields": {"tags": tags}}
        )
        assert response.status_code == 201, response.text
    assert in_step(database) >= {("tags", "sale", "A"), ("tags", "sale", "C")}
    assert tagged(client, "sale") == ["A", "C"]

    # An edit replaces the elements; a null unsets them.
    a_id = client.get("/api/products", params={"sku": "A"}).json()["items"][0]["id"]
    edited = client.patch(f"/api/products/{a_id}", json={"fields": {"tags": ["autumn"]}})
    assert edited.status_code == 200, edited.text
    assert tagged(client, "sale") == ["C"] and tagged(client, "autumn") == ["A"]
    in_step(database)

    # An import that creates, changes and leaves products, then its undo.
    csv = 'sku,name,tags,labels\nA,A,"sale, new",x\nD,D,winter,\nB,B,winter,y\n'
    upload = client.post("/api/imports", files={"file": ("t.csv", io.BytesIO(csv.encode()))})
    assert upload.status_code == 202, upload.text
    job = wait_for(client, upload.json()["id"])
    assert job["status"] == "completed", job
    assert tagged(client, "sale") == ["A", "C"] and tagged(client, "winter") == ["B", "D"]
    in_step(database)
    undone = undo(client, job["change_id"])
    assert undone["status"] == "completed", undone
    assert tagged(client, "winter") == ["B"] and tagged(client, "autumn") == ["A"]
    in_step(database)

    # A bulk action on a filter by tag.
    bulk = client.post(
        "/api/products/bulk",
        json={
            "action": "set_fields",
            "fields": {"tags": ["bulk"]},
            "filter": {"field.tags": "sale"},
            "expected_total": 1,
        },
    )
    assert bulk.status_code == 200, bulk.text
    assert tagged(client, "bulk") == ["C"] and tagged(client, "sale") == []
    in_step(database)

    # Removing a field takes its elements; undoing it brings them back.
    labels = next(f for f in client.get("/api/fields").json() if f["key"] == "labels")
    removed = client.delete(f"/api/fields/{labels['id']}")
    assert removed.status_code == 200, removed.text
    assert not {row for row in held(database) if row[0] == "labels"}
    restored = undo(client, removed.json()["change_id"])
    assert restored["status"] == "completed", restored
    in_step(database)


def test_delete_all_empties_the_elements_and_keeps_the_triggers(
    client: TestClient, database: Database
) -> None:
    define(client, TAGS)
    for number in range(20):
        client.post(
            "/api/products",
            json={"sku": f"P{number}", "name": "P", "fields": {"tags": [f"t{number % 3}"]}},
        )
    assert len(in_step(database)) == 20
    response = client.delete("/api/products", params={"confirm": "true"})
    assert response.status_code == 202, response.text
    job = wait_for_delete_job(client, response.json()["id"])
    assert job["status"] == "completed", job
    assert in_step(database) == set()
    undone = undo(client, job["change_id"])
    assert undone["status"] == "completed", undone
    assert len(in_step(database)) == 20  # the restored rows went through the triggers again
    assert len(tagged(client, "t1")) == 7


def test_a_type_change_to_and_from_a_list(client: TestClient, database: Database) -> None:
    field = define(client, {"key": "tags", "label": "Tags", "type": "text"})
    client.post("/api/products", json={"sku": "A", "name": "A", "fields": {"tags": "red"}})
    changed = client.patch(f"/api/fields/{field['id']}", json={"type": "list"})
    assert changed.status_code == 200, changed.text
    assert in_step(database) == {("tags", "red", "A")}
    assert tagged(client, "red") == ["A"]
    back = client.patch(f"/api/fields/{field['id']}", json={"type": "text"})
    assert back.status_code == 200, back.text
    assert held(database) == set()


@pytest.mark.parametrize("scan", [False, True], ids=["gathering", "walking"])
def test_the_list_filter_reads_the_elements_index(database: Database, scan: bool) -> None:
    from product_importer.catalog import custom_fields, repository
    from product_importer.catalog.schemas import FieldFilter

    with database.session() as session:
        custom_fields.create(session, "tags", "Tags", "list")
    wanted = FieldFilter("tags", "list", "eq", ["a", "b"])
    condition = repository._field_condition("sqlite", wanted, scan=scan)
    with database.engine.connect() as connection:
        compiled = condition.compile(
            dialect=connection.dialect, compile_kwargs={"literal_binds": True}
        )
        plan = connection.execute(
            text(f"EXPLAIN QUERY PLAN SELECT id FROM products WHERE {compiled}")
        ).all()
    details = [str(row[-1]) for row in plan]
    by_key = [d for d in details if "USING PRIMARY KEY (field_id=? AND item=?" in d]
    assert len(by_key) == 2, details  # one lookup per element, by the elements' key
    assert not any("json_each" in d for d in details), details


def test_migration_0019_fills_the_elements_of_an_existing_catalogue(tmp_path: Any) -> None:
    database = Database(f"sqlite:///{tmp_path}/old.db")
    try:
        migrate.upgrade(database, "0018")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO custom_fields (key, label, type, created_at, updated_at) "
                    "VALUES ('tags', 'Tags', 'list', '2026-01-01', '2026-01-01')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO products (sku, sku_key, name, description, active, fields, "
                    "created_at, updated_at) VALUES ('A', 'a', 'A', '', 1, "
                    "'{\"tags\":[\"old\",\"kept\"]}', '2026-01-01', '2026-01-01')"
                )
            )
        migrate.upgrade(database)
        assert in_step(database) == {("tags", "old", "A"), ("tags", "kept", "A")}
        with database.engine.begin() as connection:  # and the triggers work from now on
            connection.execute(text("""UPDATE products SET fields = '{"tags":["new"]}'"""))
        assert in_step(database) == {("tags", "new", "A")}
    finally:
        database.dispose()
