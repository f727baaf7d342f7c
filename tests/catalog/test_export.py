"""CSV export: formula neutralisation that round-trips, filters, streaming over HTTP."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from product_importer.catalog.export import neutralise_cell, restore_cell, stream_csv
from product_importer.catalog.schemas import ProductFilters
from product_importer.db import Database
from tests.catalog.helpers import add_products, numbered

HOSTILE = [
    "=1+1",
    "+33 1 23",
    "-5 degrees",
    "@SUM(A1)",
    "\tTabbed",
    "\rReturn",
    "'=already quoted",
    "''-twice",
    "'plain apostrophe",
    '=HYPERLINK("http://x","y")',
    "",
    "normal",
    "a=b",
]
# Spreadsheets skip leading spaces before a formula: each of these runs one when opened.
SPACED = [
    " =1+1",
    "   +33",
    "\u00a0=cmd|' /C calc'!A0",  # no-break space
    "\u00a0\u00a0-2",
    "\n=1+1",
    "\r\n@SUM(A1)",
    "\t =1",
    "\x0b=1",  # vertical tab
    "\x0c=1",  # form feed
    "\u2003=1",  # em space
    "\u3000=1",  # ideographic space
    "\u200b=1",  # zero-width space
    "\ufeff=1",  # byte order mark
    " \u00a0\n\t=1",
    "'  =already quoted after spaces",
]


@pytest.mark.parametrize("value", SPACED)
def test_formulas_after_leading_spaces_are_neutralised_and_restore_exactly(value: str) -> None:
    safe = neutralise_cell(value)
    assert safe == "'" + value
    assert restore_cell(safe) == value


@pytest.mark.parametrize("value", ["  plain", "\u00a0text", "\nline", " 5", "a =b", "   "])
def test_leading_spaces_alone_change_nothing(value: str) -> None:
    assert neutralise_cell(value) == value
    assert restore_cell(value) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_neutralised_cells_cannot_start_a_formula_and_restore_exactly(value: str) -> None:
    safe = neutralise_cell(value)
    assert safe[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert restore_cell(safe) == value


def test_only_risky_cells_change() -> None:
    assert neutralise_cell("normal") == "normal"
    assert neutralise_cell("'plain apostrophe") == "'plain apostrophe"
    assert neutralise_cell("=1+1") == "'=1+1"


def parse(content: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content, newline="")))


def test_export_streams_every_product_and_reads_back_the_same(database: Database) -> None:
    products = [
        {"sku": "=CMD", "name": "-Minus", "description": 'Line 1\nLine "2", with comma'},
        {"sku": "PLAIN", "name": "Café ☕", "description": "", "active": False},
        {"sku": "@AT", "name": "'=quoted", "description": "\tTab first"},
    ]
    add_products(database, products)
    content = b"".join(stream_csv(database, ProductFilters())).decode("utf-8")
    rows = parse(content)
    assert rows[0] == ["name", "sku", "description", "active"]
    for cells in rows[1:]:
        assert all(cell[:1] not in ("=", "+", "-", "@", "\t", "\r") for cell in cells)
    read_back = [
        {"sku": restore_cell(sku), "name": restore_cell(name), "description": restore_cell(d),
         "active": active == "true"}
        for name, sku, d, active in rows[1:]
    ]  # fmt: skip
    assert read_back == [{"active": True} | row for row in products]


def test_export_neutralises_formulas_behind_spaces_on_each_database(database: Database) -> None:
    products = [
        {"sku": "NBSP-1", "name": '\u00a0=HYPERLINK("http://x")', "description": "\n=1+1"},
        {"sku": " -2", "name": "\r\n@cmd", "description": "\u2003 +3"},
    ]
    add_products(database, products)
    rows = parse(b"".join(stream_csv(database, ProductFilters())).decode("utf-8"))
    for cells in rows[1:]:
        assert all(cell[:1] == "'" for cell in cells[:3] if cell != "NBSP-1"), cells
    read_back = [
        {"sku": restore_cell(sku), "name": restore_cell(name), "description": restore_cell(d)}
        for name, sku, d, _active in rows[1:]
    ]
    assert sorted(read_back, key=lambda row: row["name"]) == sorted(
        products, key=lambda row: row["name"]
    )


def test_export_applies_the_list_filters(database: Database) -> None:
    add_products(database, numbered(30))
    add_products(database, [{"sku": "OTHER-1", "name": "Lamp", "active": False}])
    content = b"".join(stream_csv(database, ProductFilters(active=False))).decode()
    assert [row[1] for row in parse(content)[1:]] == ["OTHER-1"]
    content = b"".join(stream_csv(database, ProductFilters(sku="sku-0001*"))).decode()
    assert [row[1] for row in parse(content)[1:]] == [f"SKU-0001{i}" for i in range(10)]


def test_export_is_written_in_batches(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("product_importer.catalog.export.BATCH_ROWS", 100)
    add_products(database, numbered(1_050))
    chunks = list(stream_csv(database, ProductFilters()))
    assert len(chunks) == 1 + 11  # the header, then one chunk per batch
    assert sum(chunk.count(b"\n") for chunk in chunks) == 1 + 1_050


def test_export_over_http(client: TestClient, database: Database) -> None:
    add_products(database, numbered(3))
    response = client.get("/api/products/export?q=SKU-00002")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="products-')
    assert parse(response.text) == [
        ["name", "sku", "description", "active"],
        ["Product SKU-00002", "SKU-00002", "", "true"],
    ]


@pytest.mark.parametrize("query", ["active=sometimes", "q=a%00", "sku=" + "x" * 201, "page=0"])
def test_export_rejects_bad_filters_before_streaming(client: TestClient, query: str) -> None:
    response = client.get(f"/api/products/export?{query}")
    if query == "page=0":  # not an export parameter: ignored
        assert response.status_code == 200
        return
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"
