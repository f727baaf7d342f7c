"""Imports of other systems' exports through a mapping, on SQLite and PostgreSQL: the API."""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from product_importer.db import Database
from tests.factories import make_product
from tests.imports.conftest import wait_for
from tests.imports.test_routes import catalogue

SHOPIFY_MAPPING = {
    "sku": "Variant SKU",
    "name": "Title",
    "description": "Body (HTML)",
    "active": "Status",
}


def shopify_export() -> bytes:
    """A small Shopify product export, shaped as Shopify writes it (45 columns in real life)."""
    header = [
        "Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags",
        "Published", "Option1 Name", "Option1 Value", "Variant SKU", "Variant Grams",
        "Variant Inventory Tracker", "Variant Price", "Variant Barcode", "Image Src",
        "SEO Title", "SEO Description", "Status",
    ]  # fmt: skip
    rows = [
        ["oak-chair", "Oak chair", "<p>Solid <b>oak</b>, seats one.</p>", "Woodworks",
         "Furniture", "Chair", "oak, chair", "TRUE", "Title", "Default Title", "OAK-CH-01",
         "5400", "shopify", "120.00", "4006381333931", "https://cdn.example/oak.jpg",
         "Oak chair", "A chair", "active"],
        ["pine-desk", "Pine desk", "Desk, \"pine\"\nwith drawer", "Woodworks", "Furniture",
         "Desk", "", "FALSE", "Title", "Default Title", "PINE-DK-02", "20000", "shopify",
         "300.00", "", "", "", "", "draft"],
        ["old-lamp", "Old lamp", "", "Lights", "", "Lamp", "", "FALSE", "Title",
         "Default Title", "00123", "800", "", "25.00", "", "", "", "", "archived"],
        # An extra image row, as Shopify writes for a second product image: no SKU, no title.
        ["oak-chair", "", "", "", "", "", "", "", "", "", "", "", "", "", "",
         "https://cdn.example/oak-2.jpg", "", "", ""],
        ["odd-stool", "Odd stool", "", "", "", "", "", "", "", "", "ODD-1", "", "", "", "",
         "", "", "", "pending"],
    ]  # fmt: skip
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def woocommerce_export() -> bytes:
    """A WooCommerce product export (Products > Export), UTF-8 with a byte-order mark."""
    text = (
        'ID,Type,SKU,Name,Published,"Is featured?","Visibility in catalog",'
        '"Short description",Description,"Tax status","In stock?",Stock,'
        '"Regular price",Categories,Tags,Images\n'
        '12,simple,WOO-HOODIE,Hoodie,1,0,visible,"Warm.","<p>Cotton hoodie</p>",taxable,1,'
        "34,45,Clothing > Hoodies,,https://shop.example/hoodie.jpg\n"
        '13,simple,WOO-CAP,Cap,0,0,visible,,"A cap, blue",taxable,1,,16,Clothing,,\n'
        "14,variable,1000234,Beanie,1,1,visible,,Wool,taxable,1,,18,Clothing,,\n"
    )
    return "\ufeff".encode() + text.encode()


def post(client: TestClient, content: bytes, query: str = "", **data: str) -> Any:
    return client.post(
        "/api/imports" + query,
        files={"file": ("export.csv", content, "text/csv")},
        data=data or None,
    )


def test_a_shopify_export_imports_with_a_mapping_in_the_query(
    client: TestClient, database: Database
) -> None:
    response = post(client, shopify_export(), "?mapping=" + quote(json.dumps(SHOPIFY_MAPPING)))
    assert response.status_code == 202, response.text
    assert response.json()["mapping"] == SHOPIFY_MAPPING
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "completed", job
    assert (job["rows_created"], job["rows_rejected"]) == (3, 2)
    assert catalogue(database) == {
        "oak-ch-01": ("OAK-CH-01", "Oak chair", "<p>Solid <b>oak</b>, seats one.</p>", True),
        "pine-dk-02": ("PINE-DK-02", "Pine desk", 'Desk, "pine"\nwith drawer', False),
        "00123": ("00123", "Old lamp", "", False),
    }
    assert any(w.startswith("Ignored columns: Handle, Vendor") for w in job["warnings"])
    errors = list(csv.reader(io.StringIO(client.get(f"/api/imports/{job['id']}/errors").text)))
    assert [row[:2] for row in errors[1:]] == [
        ["6", "SKU is empty."],  # the pine desk's description spans lines 3 and 4
        ["7", errors[2][1]],
    ]
    assert errors[2][1].startswith("Active must be true/false") and "'pending'" in errors[2][1]
    assert errors[0][:4] == ["line", "reason", "Handle", "Title"]


def test_a_woocommerce_export_imports_with_a_mapping_as_a_form_field(
    client: TestClient, database: Database
) -> None:
    make_product(database, "WOO-CAP", name="Old cap")
    mapping = {"sku": "SKU", "name": "Name", "description": "Description", "active": "Published"}
    response = post(client, woocommerce_export(), mapping=json.dumps(mapping))
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["id"])
    assert (job["status"], job["rows_created"], job["rows_updated"]) == ("completed", 2, 1)
    assert catalogue(database) == {
        "woo-hoodie": ("WOO-HOODIE", "Hoodie", "<p>Cotton hoodie</p>", True),
        "woo-cap": ("WOO-CAP", "Cap", "A cap, blue", False),
        "1000234": ("1000234", "Beanie", "Wool", True),
    }


def test_an_unmatched_header_gets_columns_and_a_suggested_mapping_to_retry_with(
    client: TestClient, database: Database
) -> None:
    refused = post(client, shopify_export())
    assert refused.status_code == 422
    body = refused.json()
    assert "The header has no sku and no name column" in body["detail"]
    assert body["columns"][:3] == ["Handle", "Title", "Body (HTML)"]
    assert body["suggested_mapping"] == SHOPIFY_MAPPING
    assert body["suggestion_source"] == "suggested"
    assert client.get("/api/imports").json()["total"] == 0
    # The client retries with what it was offered.
    retry = post(client, shopify_export(), mapping=json.dumps(body["suggested_mapping"]))
    assert wait_for(client, retry.json()["id"])["rows_created"] == 3


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ('{"sku": "Variant SKU", "name": "Nope"}', "names the column 'Nope' for name"),
        ('{"sku": "Variant SKU", "name": "variant sku"}', "to both sku and name"),
        ('{"sku": "Variant SKU"}', "must name a column for name"),
        ('{"name": "Title"}', "must name a column for sku"),
        ("{oops", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"sku": "Variant SKU", "name": "Title", "price": "Variant Price"}', "unknown fields"),
        ('{"sku": {"a": 1}, "name": "Title"}', "must be a column name"),
    ],
)
def test_a_mapping_that_does_not_fit_is_refused_before_any_job(
    client: TestClient, database: Database, mapping: str, message: str
) -> None:
    make_product(database, "KEEP-1", name="Kept")
    for response in (
        post(client, shopify_export(), "?mapping=" + quote(mapping)),
        post(client, shopify_export(), mapping=mapping),
    ):
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
    assert client.get("/api/imports").json()["total"] == 0
    assert list(catalogue(database)) == ["keep-1"]


def test_mapping_given_twice_differently_or_oversized_is_refused(client: TestClient) -> None:
    one = json.dumps(SHOPIFY_MAPPING)
    other = json.dumps({**SHOPIFY_MAPPING, "active": "Published"})
    twice = post(client, shopify_export(), "?mapping=" + quote(one), mapping=other)
    assert twice.status_code == 422
    assert "both as a query parameter and as a form field" in twice.json()["detail"]
    same = post(client, shopify_export(), "?mapping=" + quote(one), mapping=one)
    assert same.status_code == 202
    huge = post(client, shopify_export(), mapping="x" * 70_000)
    assert huge.status_code == 422
    assert "longer than 65,536 bytes" in huge.json()["detail"]
    not_utf8 = client.post(
        "/api/imports",
        files={"file": ("a.csv", b"sku,name\nA,B\n"), "mapping": (None, b"\xff\xfe{")},
    )
    assert not_utf8.status_code == 422
    assert "not UTF-8" in not_utf8.json()["detail"]
    twice_in_form = client.post(
        "/api/imports",
        files=[
            ("mapping", (None, one.encode())),
            ("mapping", (None, other.encode())),
            ("file", ("a.csv", shopify_export())),
        ],
    )
    assert twice_in_form.status_code == 422
    assert "sent more than once" in twice_in_form.json()["detail"]
    assert client.get("/api/imports").json()["total"] == 1  # only the good one above


def test_ids_beyond_64_bits_are_a_422_not_a_500(client: TestClient) -> None:
    big = "99999999999999999999999"
    for path in (
        f"/api/imports/{big}",
        "/api/imports/9223372036854775808",
        "/api/imports/-1",
        "/api/imports/0",
        "/api/imports/1e3",
        f"/api/imports/{big}/events",
        f"/api/imports/{big}/errors",
    ):
        response = client.get(path)
        assert response.status_code == 422, (path, response.text)
    for action in ("cancel", "retry"):
        assert client.post(f"/api/imports/{big}/{action}").status_code == 422
    assert client.delete(f"/api/import-mappings/{big}").status_code == 422
    assert client.get("/api/imports/9223372036854775807").status_code == 404
    assert client.post("/api/imports/9223372036854775807/cancel").status_code == 404
