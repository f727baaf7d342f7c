"""A Shopify product export with variants, on SQLite and PostgreSQL: rows of a Handle take the
product's columns from its first row, variants are named by their options, and the preview
shows it all before anything is imported."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from product_importer.db import Database
from product_importer.imports.columns import Columns, FieldColumn, FieldSpec
from product_importer.imports.grouping import inherit
from tests.catalog.field_helpers import define, fields_by_sku
from tests.imports.test_fields_import import csv_bytes, post, preview, rejects, run
from tests.imports.test_routes import catalogue

HEADER = [
    "Handle", "Title", "Body (HTML)", "Vendor", "Type", "Tags", "Published", "Option1 Name",
    "Option1 Value", "Variant SKU", "Variant Grams", "Variant Inventory Qty", "Variant Price",
    "Variant Compare At Price", "Variant Barcode", "Image Src", "Status",
]  # fmt: skip
TEE_IMAGE = "https://cdn.shopify.example/files/tee.jpg?v=1700000000"
ROWS = [
    ["example-t-shirt", "Example T-Shirt", "<p>Soft <b>cotton</b> tee.</p>", "Acme", "Shirts",
     "mens, t-shirt, summer", "TRUE", "Size", "Small", "TS-S", "200", "10", "19.99", "24.99",
     "0012345678905", TEE_IMAGE, "active"],
    ["example-t-shirt", "", "", "", "", "", "", "", "Medium", "TS-M", "210", "0", "19.99", "",
     "0012345678912", "", ""],
    ["example-t-shirt", "", "", "", "", "", "", "", "Large", "TS-L", "220", "5", "21.00", "",
     "0012345678929", "", ""],
    # A second image of the product: Shopify writes it as a row with no variant at all.
    ["example-t-shirt", "", "", "", "", "", "", "", "", "", "", "", "", "", "",
     "https://cdn.shopify.example/files/tee-back.jpg", ""],
    ["oak-chair", "Oak chair", "Solid oak, seats one.", "Woodworks", "Furniture", "oak, chair",
     "FALSE", "Title", "Default Title", "OAK-1", "5400", "3", "1299.00", "1499.00",
     "4006381333931", "https://cdn.shopify.example/files/oak.jpg", "draft"],
]  # fmt: skip
FIELDS = {
    "price": ("decimal", None),
    "compare_at": ("decimal", None),
    "stock": ("integer", None),
    "grams": ("integer", None),
    "barcode": ("text", None),
    "vendor": ("text", None),
    "tags": ("list", None),
    "image": ("url", None),
}
MAPPING = {
    "sku": "Variant SKU",
    "name": "Title",
    "description": "Body (HTML)",
    "active": "Status",
    "price": "Variant Price",
    "compare_at": "Variant Compare At Price",
    "stock": "Variant Inventory Qty",
    "grams": "Variant Grams",
    "barcode": "Variant Barcode",
    "vendor": "Vendor",
    "tags": "Tags",
    "image": "Image Src",
}
TEE = {"vendor": "Acme", "tags": ["mens", "t-shirt", "summer"], "image": TEE_IMAGE,
       "compare_at": "24.99"}  # fmt: skip


def shopify_export() -> bytes:
    return csv_bytes(HEADER, ROWS)


def options(**extra: str) -> dict[str, str]:
    return {"mapping": json.dumps(MAPPING), "group_by": "Handle", "variant_names": "true", **extra}


def test_variants_take_the_products_columns_and_are_named_by_their_options(
    client: TestClient, database: Database
) -> None:
    define(database, FIELDS)
    job = run(client, shopify_export(), **options())
    assert (job["rows_created"], job["rows_rejected"]) == (4, 1)
    assert (job["group_by"], job["variant_names"]) == ("Handle", True)
    [(line, reason, *_cells)] = rejects(client, job["id"])
    assert (line, reason) == ("5", "SKU is empty.")  # the extra image row, as before
    body = "<p>Soft <b>cotton</b> tee.</p>"
    assert catalogue(database) == {
        "ts-s": ("TS-S", "Example T-Shirt / Small", body, True),
        "ts-m": ("TS-M", "Example T-Shirt / Medium", body, True),
        "ts-l": ("TS-L", "Example T-Shirt / Large", body, True),
        "oak-1": ("OAK-1", "Oak chair", "Solid oak, seats one.", False),
    }
    assert fields_by_sku(database) == {
        "TS-S": {**TEE, "price": "19.99", "stock": 10, "grams": 200, "barcode": "0012345678905"},
        "TS-M": {**TEE, "price": "19.99", "stock": 0, "grams": 210, "barcode": "0012345678912"},
        "TS-L": {**TEE, "price": "21", "stock": 5, "grams": 220, "barcode": "0012345678929"},
        "OAK-1": {
            "price": "1299",
            "compare_at": "1499",
            "stock": 3,
            "grams": 5400,
            "barcode": "4006381333931",
            "vendor": "Woodworks",
            "tags": ["oak", "chair"],
            "image": "https://cdn.shopify.example/files/oak.jpg",
        },
    }
    again = run(client, shopify_export(), **options())
    assert (again["rows_created"], again["rows_updated"], again["rows_unchanged"]) == (0, 0, 4)


def test_without_a_group_column_variant_rows_have_no_name(
    client: TestClient, database: Database
) -> None:
    define(database, FIELDS)
    job = run(client, shopify_export(), mapping=json.dumps(MAPPING))
    assert (job["rows_created"], job["rows_rejected"]) == (2, 3)
    assert [reason for _line, reason, *_ in rejects(client, job["id"])] == [
        "Name is empty.",
        "Name is empty.",
        "SKU is empty.",
    ]
    # Names without the options: only the variants tell them apart.
    plain = run(client, shopify_export(), mapping=json.dumps(MAPPING), group_by="Handle")
    assert plain["rows_rejected"] == 1
    assert {name for _sku, name, _d, _a in catalogue(database).values()} == {
        "Example T-Shirt",
        "Oak chair",
    }


def test_the_preview_suggests_the_group_column_and_shows_inherited_values(
    client: TestClient, database: Database
) -> None:
    define(database, FIELDS)
    first = preview(client, shopify_export(), mapping=json.dumps(MAPPING))
    assert first["group_by_suggestion"] == "Handle"
    assert first["group_by"] is None
    assert [row["rejected"] for row in first["rows"]][:3] == [
        None,
        "Name is empty.",
        "Name is empty.",
    ]
    grouped = preview(client, shopify_export(), **options())
    assert (grouped["group_by"], grouped["variant_names"]) == ("Handle", True)
    rows: list[dict[str, Any]] = grouped["rows"]
    medium = rows[1]
    assert (medium["sku"], medium["name"], medium["active"]) == (
        "TS-M",
        "Example T-Shirt / Medium",
        True,
    )
    assert medium["field_values"] == {
        **TEE,
        "price": "19.99",
        "stock": 0,
        "grams": 210,
        "barcode": "0012345678912",
    }
    assert medium["fields"][HEADER.index("Vendor")] == "Acme"  # the cell as the import sees it
    assert rows[3]["rejected"] == "SKU is empty."
    assert rows[4]["name"] == "Oak chair"  # "Default Title" is no option to show
    # Handle ties the rows together: it is not proposed as a field once it is the group column.
    proposed = [p["column"] for p in grouped["proposed_fields"]]
    assert proposed == ["Type", "Published", "Option1 Name", "Option1 Value"]


def test_a_group_column_missing_from_the_file_is_a_422(
    client: TestClient, database: Database
) -> None:
    define(database, FIELDS)
    response = post(client, shopify_export(), **options(group_by="Product Handle"))
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "The group column 'Product Handle' is not in the file"
    )


def test_a_group_that_comes_back_after_another_is_a_new_group(
    client: TestClient, database: Database
) -> None:
    content = csv_bytes(
        ["Handle", "sku", "name", "description"],
        [
            ["tee", "T-1", "Tee", "Cotton"],
            ["tee", "T-2", "", ""],
            ["cap", "C-1", "Cap", "Wool"],
            ["tee", "T-3", "", "Late"],  # not joined to the first tee rows: no name of its own
            ["", "X-1", "Lone", ""],
            ["", "X-2", "", ""],  # an empty group value stands alone
        ],
    )
    job = run(client, content, group_by="Handle")
    assert (job["rows_created"], job["rows_rejected"]) == (4, 2)
    assert {line: reason for line, reason, *_ in rejects(client, job["id"])} == {
        "5": "Name is empty.",
        "7": "Name is empty.",
    }
    assert catalogue(database)["t-2"] == ("T-2", "Tee", "Cotton", True)


def columns(width: int, **extra: Any) -> Columns:
    values: dict[str, Any] = {"sku": 1, "name": 2, "description": None, "active": None}
    return Columns(width=width, **{**values, **extra})


def test_grouping_copies_rows_only_when_it_changes_them_and_keeps_the_first_row() -> None:
    price = FieldColumn(3, "Price", FieldSpec("price", "Price", "decimal"))
    cols = columns(6, fields=(price,), group=0, options=(4, 5))
    first = ["tee", "T-1", "Tee", "9.50", "Small", "Red"]
    second = ["tee", "T-2", "", "", "Large", "Default Title"]
    third = ["tee", "T-3", "Tee", "8", "", ""]
    short = ["tee", "T-4"]
    out = list(inherit(enumerate([first, second, third, short], start=2), cols, True))
    assert [row for _line, row in out] == [
        ["tee", "T-1", "Tee / Small / Red", "9.50", "Small", "Red"],
        ["tee", "T-2", "Tee / Large", "9.50", "Large", "Default Title"],
        ["tee", "T-3", "Tee", "8", "", ""],
        ["tee", "T-4", "Tee", "9.50"],
    ]
    assert first == ["tee", "T-1", "Tee", "9.50", "Small", "Red"]  # not changed in place
    assert out[2][1] is third  # nothing to change: the row itself
    # Without variant names the options stay in their own columns.
    plain = list(inherit(enumerate([first, second], start=2), cols, False))
    assert plain[1][1][2] == "Tee"
