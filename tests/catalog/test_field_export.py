"""Custom fields in the CSV export, on SQLite and PostgreSQL: a column per field headed by its
key, values as an imported cell reads them, formula-escaped, filtered by fields, and a file
that imports back unchanged (export -> import -> 0 created, 0 updated)."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi.testclient import TestClient

from product_importer.catalog.export import restore_cell
from product_importer.db import Database
from tests.catalog.field_helpers import EVERY_TYPE, add_with_fields, define, fields_by_sku
from tests.catalog.helpers import wait_for_delete_job
from tests.imports.conftest import run_import

BUILT_IN = ["name", "sku", "description", "active"]
KEYS = list(EVERY_TYPE)  # in the order the fields are created

PRODUCTS: list[dict[str, Any]] = [
    {
        "sku": "FULL-1",
        "name": "Oak chair",
        "description": 'Line one\nline two, with "quotes"',
        "fields": {
            "vendor": 'Acme, Inc. "the best"',
            "stock": 4,
            "price": "1299.5",
            "featured": True,
            "launch": "2026-03-01",
            "site": "https://acme.example/chair?x=1&y=2",
            "tags": ["summer", "sale", "été"],
            "colour": "Green",
        },
    },
    {
        "sku": "HOSTILE-2",
        "name": '=HYPERLINK("http://x")',
        "active": False,
        "fields": {
            "vendor": "=SUM(A1:A9)",
            "stock": -3,
            "price": "-0.5",
            "featured": False,
            "tags": ["@risk", "+plus"],
            "colour": "Red",
        },
    },
    {"sku": "EMPTY-3", "fields": {}},
    {"sku": "SOME-4", "fields": {"price": "0.0000000001", "stock": 9223372036854775807}},
]


def exported(client: TestClient, query: str = "") -> tuple[list[str], list[dict[str, str]]]:
    response = client.get(f"/api/products/export{query}")
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"), newline="")))
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, row, strict=True)) for row in body]


def test_each_field_is_a_column_after_the_built_ins(client: TestClient, database: Database) -> None:
    define(database, EVERY_TYPE)
    add_with_fields(database, PRODUCTS)
    header, rows = exported(client)
    assert header == BUILT_IN + KEYS
    by_sku = {row["sku"]: row for row in rows}
    assert [row["sku"] for row in rows] == ["FULL-1", "HOSTILE-2", "EMPTY-3", "SOME-4"]
    full = by_sku["FULL-1"]
    assert {key: full[key] for key in KEYS} == {
        "vendor": 'Acme, Inc. "the best"',
        "stock": "4",
        "price": "1299.5",
        "featured": "true",
        "launch": "2026-03-01",
        "site": "https://acme.example/chair?x=1&y=2",
        "tags": "summer, sale, été",
        "colour": "Green",
    }
    hostile = by_sku["HOSTILE-2"]
    # Formula starts are escaped in field cells as in the others, reversibly.
    assert (hostile["vendor"], hostile["stock"], hostile["price"]) == (
        "'=SUM(A1:A9)",
        "'-3",
        "'-0.5",
    )
    assert hostile["tags"] == "'@risk, +plus"
    assert (hostile["featured"], hostile["launch"], hostile["site"]) == ("false", "", "")
    assert {restore_cell(hostile[key]) for key in ("vendor", "stock")} == {"=SUM(A1:A9)", "-3"}
    assert all(by_sku["EMPTY-3"][key] == "" for key in KEYS)
    assert (by_sku["SOME-4"]["price"], by_sku["SOME-4"]["stock"]) == (
        "0.0000000001",
        "9223372036854775807",
    )


def test_the_export_takes_the_field_filters(client: TestClient, database: Database) -> None:
    define(database, EVERY_TYPE)
    add_with_fields(database, PRODUCTS)
    _header, rows = exported(client, "?field.stock.lt=5&field.tags=sale")
    assert [row["sku"] for row in rows] == ["FULL-1"]
    _header, rows = exported(client, "?field.price.set=false")
    assert [row["sku"] for row in rows] == ["EMPTY-3"]
    _header, rows = exported(client, "?field.colour=red&active=false")
    assert [row["sku"] for row in rows] == ["HOSTILE-2"]


def test_without_fields_the_export_is_as_before(client: TestClient, database: Database) -> None:
    add_with_fields(database, [{"sku": "A-1"}])
    header, rows = exported(client)
    assert header == BUILT_IN and [row["sku"] for row in rows] == ["A-1"]


def test_an_exported_file_imports_back_unchanged(client: TestClient, database: Database) -> None:
    define(database, EVERY_TYPE)
    add_with_fields(database, PRODUCTS)
    before = fields_by_sku(database)
    content = client.get("/api/products/export").content

    again = run_import(client, content, filename="export.csv")
    assert again["status"] == "completed", again
    assert (again["rows_created"], again["rows_updated"], again["rows_rejected"]) == (0, 0, 0)
    assert again["rows_unchanged"] == len(PRODUCTS)
    assert fields_by_sku(database) == before

    # Into an empty catalogue, the same file brings every value back.
    deleting = client.delete("/api/products?confirm=true")
    assert wait_for_delete_job(client, deleting.json()["id"])["status"] == "completed"
    restored = run_import(client, content, filename="export.csv")
    assert (restored["rows_created"], restored["rows_rejected"]) == (len(PRODUCTS), 0), restored
    assert fields_by_sku(database) == before
