"""A WooCommerce product export, on SQLite and PostgreSQL: an admin keeps the columns the
preview proposes as new fields, and prices, stock, categories and tags arrive exact."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from product_importer.db import Database
from tests.catalog.field_helpers import fields_by_sku
from tests.imports.test_fields_import import csv_bytes, preview, rejects, run
from tests.imports.test_routes import catalogue

HEADER = [
    "ID", "Type", "SKU", "Name", "Published", "Short description", "Description",
    "Regular price", "Sale price", "Stock", "Categories", "Tags", "Images",
]  # fmt: skip
ROWS = [
    ["12", "simple", "WOO-HOODIE", "Hoodie", "1", "Warm.", "<p>Cotton hoodie</p>", "1,299.00",
     "999.90", "34", "Clothing > Hoodies, Clothing", "winter, warm",
     "https://shop.example/hoodie.jpg, https://shop.example/hoodie-2.jpg"],
    ["13", "simple", "WOO-CAP", "Cap", "0", "", "A cap, blue", "19.90", "", "", "Clothing",
     "", ""],
    ["14", "variable", "000123", "Beanie", "1", "", "Wool", "18", "", "0",
     "Clothing > Hats", "winter", "https://shop.example/beanie.jpg"],
]  # fmt: skip
# A row the preview does not see (a file's head is what it proposes types from).
BROKEN = ["15", "simple", "WOO-BAD", "Broken", "1", "", "", "12,50 €", "", "many", "", "", ""]
KEPT = ("Regular price", "Sale price", "Stock", "Categories", "Tags")


def woocommerce_export(*more: list[str]) -> bytes:
    """As WooCommerce writes it (Products > Export): UTF-8 with a byte-order mark."""
    return "\ufeff".encode() + csv_bytes(HEADER, [*ROWS, *more])


def test_a_woocommerce_export_keeps_prices_stock_categories_and_tags(
    client: TestClient, database: Database
) -> None:
    mapping = {"sku": "SKU", "name": "Name", "description": "Description", "active": "Published"}
    answer = preview(client, woocommerce_export(), mapping=json.dumps(mapping))
    proposed = {p["column"]: p for p in answer["proposed_fields"]}
    assert {column: proposed[column]["type"] for column in KEPT} == {
        "Regular price": "decimal",
        "Sale price": "decimal",
        "Stock": "integer",
        "Categories": "list",
        "Tags": "list",
    }
    assert proposed["Regular price"]["key"] == "regular_price"
    assert proposed["ID"]["type"] == "integer"
    new_fields = [proposed[column] for column in KEPT]
    job = run(
        client,
        woocommerce_export(BROKEN),
        mapping=json.dumps(mapping),
        new_fields=json.dumps(new_fields),
    )
    assert (job["rows_created"], job["rows_rejected"]) == (3, 1)
    [(line, reason, *_cells)] = rejects(client, job["id"])
    assert line == "5"
    assert reason == "Column 'Regular price' (regular_price): '12,50 €' is not a number."
    assert catalogue(database) == {
        "woo-hoodie": ("WOO-HOODIE", "Hoodie", "<p>Cotton hoodie</p>", True),
        "woo-cap": ("WOO-CAP", "Cap", "A cap, blue", False),
        "000123": ("000123", "Beanie", "Wool", True),
    }
    assert fields_by_sku(database) == {
        "WOO-HOODIE": {
            "regular_price": "1299",
            "sale_price": "999.9",
            "stock": 34,
            "categories": ["Clothing > Hoodies", "Clothing"],
            "tags": ["winter", "warm"],
        },
        "WOO-CAP": {"regular_price": "19.9", "categories": ["Clothing"]},
        "000123": {
            "regular_price": "18",
            "stock": 0,
            "categories": ["Clothing > Hats"],
            "tags": ["winter"],
        },
    }
    # The same file again, now that the fields exist: they map by their labels by themselves.
    again = run(client, woocommerce_export(), mapping=json.dumps(mapping))
    assert again["rows_created"] == 0
    keys = {field["key"] for field in client.get("/api/fields").json()}
    assert keys == {"regular_price", "sale_price", "stock", "categories", "tags"}
    second = preview(client, woocommerce_export())
    assert {k: v for k, v in second["mapping"].items() if k in keys} == {
        "regular_price": "Regular price",
        "sale_price": "Sale price",
        "stock": "Stock",
        "categories": "Categories",
        "tags": "Tags",
    }
