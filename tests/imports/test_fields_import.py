"""Custom fields through an import, on SQLite and PostgreSQL: mapping, typed values, rejects,
options, new fields from a file, the preview's proposals, saved mappings and the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from product_importer.auth.roles import Role
from product_importer.catalog.models import CustomField, Product
from product_importer.db import Database
from tests.catalog.field_helpers import EVERY_TYPE, add_with_fields, define, fields_by_sku
from tests.factories import sign_in
from tests.imports.conftest import wait_for
from tests.processes import cli_env, run_cli

PRICED = {
    "price": ("decimal", None),
    "stock": ("integer", None),
    "tags": ("list", None),
    "barcode": ("text", None),
}


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def post(client: TestClient, content: bytes, name: str = "file.csv", **data: str) -> Any:
    return client.post(
        "/api/imports", files={"file": (name, content, "text/csv")}, data=data or None
    )


def run(client: TestClient, content: bytes, **data: str) -> dict[str, Any]:
    response = post(client, content, **data)
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "completed", job
    return job


def rejects(client: TestClient, job_id: int) -> list[list[str]]:
    text = client.get(f"/api/imports/{job_id}/errors").text
    return list(csv.reader(io.StringIO(text)))[1:]


def preview(client: TestClient, content: bytes, **data: str) -> dict[str, Any]:
    response = client.post(
        "/api/imports/preview", files={"file": ("file.csv", content, "text/csv")}, data=data
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def field_count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(CustomField)) or 0


def product_count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Product)) or 0


FOREIGN = csv_bytes(
    ["Code", "Title", "Price", "Qty", "Labels", "EAN"],
    [
        ["A-1", "Chair", "1,299.00", "4", "oak, chair,  , oak", "0012345678905"],
        ["B-2", "Desk", "19.90", "0", "", "00042"],
        ["C-3", "Lamp", "0.50", "-3", "light", ""],
    ],
)
FOREIGN_MAPPING = {
    "sku": "Code",
    "name": "Title",
    "price": "Price",
    "stock": "Qty",
    "tags": "Labels",
    "barcode": "EAN",
}


def test_mapped_columns_feed_custom_fields_with_exact_values(
    client: TestClient, database: Database
) -> None:
    define(database, PRICED)
    job = run(client, FOREIGN, mapping=json.dumps(FOREIGN_MAPPING))
    assert (job["rows_created"], job["rows_rejected"]) == (3, 0)
    assert fields_by_sku(database) == {
        "A-1": {"price": "1299", "stock": 4, "tags": ["oak", "chair"], "barcode": "0012345678905"},
        "B-2": {"price": "19.9", "stock": 0, "barcode": "00042"},
        "C-3": {"price": "0.5", "stock": -3, "tags": ["light"]},
    }
    product = client.get("/api/products", params={"q": "A-1"}).json()["items"][0]
    assert product["fields"]["price"] == "1299"
    again = run(client, FOREIGN, mapping=json.dumps(FOREIGN_MAPPING))
    assert (again["rows_created"], again["rows_updated"], again["rows_unchanged"]) == (0, 0, 3)


def test_unknown_fields_in_a_mapping_are_named_in_a_422(
    client: TestClient, database: Database
) -> None:
    define(database, {"price": ("decimal", None)})
    mapping = {"sku": "Code", "name": "Title", "price": "Price", "colour": "Qty", "Size": "EAN"}
    response = post(client, FOREIGN, mapping=json.dumps(mapping))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "unknown fields: 'colour', 'Size'" in detail
    assert "custom fields: price" in detail
    assert product_count(database) == 0


def test_columns_named_like_a_field_key_or_label_feed_it_without_a_mapping(
    client: TestClient, database: Database
) -> None:
    with database.session() as session:
        from product_importer.catalog import custom_fields

        custom_fields.create(session, "price", "Sale price", "decimal")
        custom_fields.create(session, "stock", "In stock", "integer")
        custom_fields.create(session, "vendor", "Vendor", "text")
    content = csv_bytes(
        ["SKU", "Name", "PRICE", "in stock", "Vendor", "Other"],
        [["A-1", "Chair", "10.00", "3", "Acme", "x"]],
    )
    job = run(client, content)
    assert fields_by_sku(database) == {"A-1": {"price": "10", "stock": 3, "vendor": "Acme"}}
    assert job["warnings"] == ["Ignored columns: Other."]


def test_an_export_with_every_field_type_imports_back_unchanged(
    client: TestClient, database: Database
) -> None:
    define(database, EVERY_TYPE)
    add_with_fields(
        database,
        [
            {
                "sku": "A-1",
                "fields": {
                    "vendor": '=Acme, "quoted"',
                    "stock": -4,
                    "price": "-0.5",
                    "featured": True,
                    "launch": "2026-03-01",
                    "site": "https://example.com/a?b=c",
                    "tags": ["summer", "sale"],
                    "colour": "Green",
                },
            },
            {"sku": "B-2", "fields": {"price": "1299", "featured": False}},
            {"sku": "C-3"},
        ],
    )
    exported = client.get("/api/products/export")
    assert exported.status_code == 200
    header = next(csv.reader(io.StringIO(exported.text)))
    assert header[4:] == list(EVERY_TYPE)
    before = fields_by_sku(database)
    job = run(client, exported.content)
    assert (job["rows_created"], job["rows_updated"], job["rows_unchanged"]) == (0, 0, 3)
    assert job["rows_rejected"] == 0
    assert fields_by_sku(database) == before


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("decimal", "abc", "'abc' is not a number"),
        ("decimal", "1e400", "'1e400' is not a number"),
        ("decimal", "12.5.1", "'12.5.1' is not a number"),
        ("decimal", "1" * 25, "is too large"),
        ("integer", "12.5", "'12.5' is not a whole number"),
        ("integer", "99999999999999999999", "outside the 64-bit integer range"),
        ("date", "2026-02-30", "'2026-02-30' is not a date on the calendar"),
        ("date", "03/01/2026", "is not a date (YYYY-MM-DD)"),
        ("boolean", "maybe", "not 'maybe'"),
        ("url", "javascript:alert(1)", "is not an http:// or https:// address"),
        ("list", "x" * 10_000, "is 10000 characters; the limit is 2000"),
        ("list", ",".join(f"t{i}" for i in range(150)), "has 150 items; the limit is 100"),
        ("text", "a\x01b", "must not contain control characters (found U+0001)"),
        ("text", "y" * 2001, "is 2001 characters; the limit is 2000"),
        ("choice", "Purple", "'Purple' is not one of the choices (Red, Green, Blue)"),
    ],
)
def test_a_value_that_does_not_parse_rejects_its_row_with_the_reason(
    client: TestClient, database: Database, kind: str, value: str, reason: str
) -> None:
    define(database, {"value": (kind, ["Red", "Green", "Blue"] if kind == "choice" else None)})
    good = {"decimal": "1.5", "integer": "7", "date": "2026-01-31", "boolean": "yes",
            "url": "https://a.example", "list": "a, b", "text": "ok", "choice": "red"}  # fmt: skip
    content = csv_bytes(
        ["sku", "name", "Value Column"],
        [["OK-1", "Fine", good[kind]], ["BAD-1", "Bad", value], ["OK-2", "Empty", ""]],
    )
    mapping = {"sku": "sku", "name": "name", "value": "Value Column"}
    job = run(client, content, mapping=json.dumps(mapping))
    assert (job["rows_created"], job["rows_rejected"]) == (2, 1)
    [(line, why, *cells)] = rejects(client, job["id"])
    assert line == "3"
    assert why.startswith("Column 'Value Column' (value): ")
    assert reason in why
    assert len(why) <= 500
    assert cells[0] == "BAD-1"
    assert set(fields_by_sku(database)) == {"OK-1", "OK-2"}


def test_hostile_values_in_a_preview_are_reasons_not_errors(
    client: TestClient, database: Database
) -> None:
    define(database, {"price": ("decimal", None), "when": ("date", None)})
    content = csv_bytes(
        ["sku", "name", "price", "when"],
        [["A", "a", "1e400", ""], ["B", "b", "NaN", "2026-02-30"], ["C", "c", "-0", "2026-02-28"]],
    )
    answer = preview(client, content)
    rows = {row["sku"]: row for row in answer["rows"]}
    assert "'1e400' is not a number" in rows["A"]["rejected"]
    assert "'NaN' is not a number" in rows["B"]["rejected"]
    assert rows["C"]["rejected"] is None
    assert rows["C"]["field_values"] == {"price": "0", "when": "2026-02-28"}


def test_a_comma_decimal_separator_reads_european_numbers(
    client: TestClient, database: Database
) -> None:
    define(database, {"price": ("decimal", None), "stock": ("integer", None)})
    content = csv_bytes(
        ["sku", "name", "price", "stock"],
        [["A", "a", "19,99", "1.000"], ["B", "b", "1.299,00", "2"], ["C", "c", "19.99", "3"]],
    )
    job = run(client, content, decimal_separator=",")
    assert job["decimal_separator"] == ","
    assert fields_by_sku(database) == {
        "A": {"price": "19.99", "stock": 1000},
        "B": {"price": "1299", "stock": 2},
        "C": {"price": "1999", "stock": 3},  # the point groups thousands here
    }
    bad = post(client, content, decimal_separator=";")
    assert bad.status_code == 422
    assert 'decimal_separator must be "." or ","' in bad.json()["detail"]


def test_empty_cells_keep_values_unless_asked_to_clear_them(
    client: TestClient, database: Database
) -> None:
    define(database, {"price": ("decimal", None), "vendor": ("text", None)})
    add_with_fields(
        database,
        [
            {"sku": "A", "name": "a", "fields": {"price": "5", "vendor": "Acme"}},
            {"sku": "B", "name": "b", "fields": {"price": "6", "vendor": "Beta"}},
        ],
    )
    content = csv_bytes(
        ["sku", "name", "price", "vendor"], [["A", "a", "", "Acme"], ["B", "b", "", ""]]
    )
    kept = run(client, content)
    assert (kept["rows_updated"], kept["rows_unchanged"]) == (0, 2)
    assert fields_by_sku(database) == {
        "A": {"price": "5", "vendor": "Acme"},
        "B": {"price": "6", "vendor": "Beta"},
    }
    cleared = run(client, content, empty_cells="clear")
    assert (cleared["rows_updated"], cleared["empty_cells"]) == (2, "clear")
    assert fields_by_sku(database) == {"A": {"vendor": "Acme"}, "B": {}}
    bad = post(client, content, empty_cells="wipe")
    assert bad.status_code == 422


def test_new_fields_from_a_file_are_created_with_the_import_by_an_admin(
    client: TestClient, database: Database
) -> None:
    define(database, {"price": ("decimal", None)})
    new = [
        {"column": "Qty", "key": "stock", "label": "Stock", "type": "integer"},
        {"column": "Labels", "key": "tags", "label": "Tags", "type": "list"},
        {"column": "EAN", "key": "ean", "type": "text"},
    ]
    mapping = {"sku": "Code", "name": "Title", "price": "Price", "stock": "Qty"}
    dry = client.post(
        "/api/imports?dry_run=true",
        files={"file": ("file.csv", FOREIGN, "text/csv")},
        data={"mapping": json.dumps(mapping), "new_fields": json.dumps(new)},
    )
    assert dry.status_code == 202, dry.text
    counted = wait_for(client, dry.json()["id"])
    assert (counted["status"], counted["rows_created"], counted["rows_rejected"]) == (
        "completed",
        3,
        0,
    )
    assert (field_count(database), product_count(database)) == (1, 0)  # a dry run writes nothing
    job = run(client, FOREIGN, mapping=json.dumps(mapping), new_fields=json.dumps(new))
    assert job["rows_created"] == 3
    fields = {f["key"]: (f["label"], f["type"]) for f in client.get("/api/fields").json()}
    assert fields == {
        "price": ("Price", "decimal"),
        "stock": ("Stock", "integer"),
        "tags": ("Tags", "list"),
        "ean": ("EAN", "text"),
    }
    assert fields_by_sku(database)["B-2"] == {"price": "19.9", "stock": 0, "ean": "00042"}
    # The header names sku and name: new fields join what it maps by itself.
    own = csv_bytes(["sku", "name", "Weight (g)"], [["W-1", "Weighty", "250"]])
    new = [{"column": "Weight (g)", "key": "weight_g", "label": "Weight", "type": "integer"}]
    run(client, own, new_fields=json.dumps(new))
    assert fields_by_sku(database)["W-1"] == {"weight_g": 250}
    audit = client.get("/api/audit", params={"action": "field.create"}).json()
    assert any("weight_g" in str(item) for item in audit["items"])


@pytest.mark.parametrize(
    ("new_fields", "message"),
    [
        ([{"column": "Qty", "key": "Stock", "type": "integer"}], "must start with a lower-case"),
        ([{"column": "Qty", "key": "sku", "type": "integer"}], "is a built-in name"),
        ([{"column": "Qty", "key": "price", "type": "integer"}], "'price' exists already"),
        ([{"column": "Qty", "key": "qty", "type": "money"}], "Type 'money' is not one of"),
        ([{"column": "Qty", "key": "qty", "type": "choice"}], "needs at least one choice"),
        ([{"column": "Nope", "key": "qty", "type": "integer"}], "no such column"),
        ([{"column": "Qty", "key": "qty"}], "type must be a non-empty text"),
        (
            [
                {"column": "Qty", "key": "qty", "type": "integer"},
                {"column": "EAN", "key": "qty", "type": "text"},
            ],
            "names the key 'qty' twice",
        ),
        ({"column": "Qty"}, "must be a JSON list of objects"),
        ("[", "not valid JSON"),
    ],
)
def test_invalid_new_fields_are_refused_before_any_work(
    client: TestClient, database: Database, new_fields: Any, message: str
) -> None:
    define(database, {"price": ("decimal", None)})
    text = new_fields if isinstance(new_fields, str) else json.dumps(new_fields)
    mapping = {"sku": "Code", "name": "Title"}
    response = post(client, FOREIGN, mapping=json.dumps(mapping), new_fields=text)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert field_count(database) == 1
    assert product_count(database) == 0
    assert client.get("/api/imports").json()["total"] == 0


def test_an_editor_sending_new_fields_gets_403_and_nothing_is_imported(
    anon_client: TestClient, database: Database
) -> None:
    sign_in(anon_client, database, "eddie", Role.editor)
    new = [{"column": "Qty", "key": "stock", "label": "Stock", "type": "integer"}]
    mapping = {"sku": "Code", "name": "Title", "stock": "Qty"}
    response = post(anon_client, FOREIGN, mapping=json.dumps(mapping), new_fields=json.dumps(new))
    assert response.status_code == 403
    assert response.json()["detail"].startswith("An admin must create fields")
    assert "your role is editor" in response.json()["detail"]
    assert field_count(database) == 0
    assert product_count(database) == 0
    assert anon_client.get("/api/imports").json()["total"] == 0
    # The same import without new fields is an editor's to run; the preview proposes them.
    job = run(anon_client, FOREIGN, mapping=json.dumps({"sku": "Code", "name": "Title"}))
    assert job["rows_created"] == 3
    answer = preview(anon_client, FOREIGN, mapping=json.dumps({"sku": "Code", "name": "Title"}))
    assert [p["column"] for p in answer["proposed_fields"]] == ["Price", "Qty", "Labels", "EAN"]


def test_the_preview_proposes_typed_fields_for_unmapped_columns(
    client: TestClient, database: Database
) -> None:
    define(database, {"price": ("decimal", None)})
    content = csv_bytes(
        ["SKU", "Name", "Price", "Variant Price", "Stock", "Tags", "Variant Barcode", "Launch",
         "Featured", "Site", "Notes", "price!"],
        [
            ["A", "a", "1.50", "2.00", "4", "x, y", "0012", "2026-01-02", "yes",
             "https://a.example", "hello", "1"],
            ["B", "b", "3", "4.5", "0", "", "9", "2026-01-03", "no", "http://b.example",
             "", "2"],
        ],
    )  # fmt: skip
    answer = preview(client, content)
    assert answer["mapping"] == {"sku": "SKU", "name": "Name", "price": "Price"}
    assert answer["fields"] == [
        {"id": answer["fields"][0]["id"], "key": "price", "label": "Price", "type": "decimal",
         "choices": None}
    ]  # fmt: skip
    proposed = {p["column"]: (p["key"], p["label"], p["type"]) for p in answer["proposed_fields"]}
    assert proposed == {
        "Variant Price": ("variant_price", "Variant Price", "decimal"),
        "Stock": ("stock", "Stock", "integer"),
        "Tags": ("tags", "Tags", "list"),
        "Variant Barcode": ("variant_barcode", "Variant Barcode", "text"),
        "Launch": ("launch", "Launch", "date"),
        "Featured": ("featured", "Featured", "boolean"),
        "Site": ("site", "Site", "url"),
        "Notes": ("notes", "Notes", "text"),
        "price!": ("price_2", "price!", "integer"),
    }
    assert answer["group_by_suggestion"] is None
    assert answer["rows"][0]["field_values"] == {"price": "1.5"}


def test_the_needs_mapping_answer_carries_proposals_and_fields(
    client: TestClient, database: Database
) -> None:
    define(database, {"vendor": ("text", None)})
    content = csv_bytes(
        ["Handle", "Title", "Variant SKU", "Vendor", "Variant Price", "Variant Barcode"],
        [["tee", "Tee", "TEE-S", "Acme", "19.90", "0042"]],
    )
    response = post(client, content)
    assert response.status_code == 422
    body = response.json()
    assert body["suggested_mapping"] == {
        "sku": "Variant SKU",
        "name": "Title",
        "vendor": "Vendor",
    }
    assert [f["key"] for f in body["fields"]] == ["vendor"]
    assert body["proposed_fields"] == [
        {"column": "Handle", "key": "handle", "label": "Handle", "type": "text"},
        {"column": "Variant Price", "key": "variant_price", "label": "Variant Price",
         "type": "decimal"},
        {"column": "Variant Barcode", "key": "variant_barcode", "label": "Variant Barcode",
         "type": "text"},
    ]  # fmt: skip
    assert body["group_by_suggestion"] == "Handle"


def test_saved_mappings_keep_custom_fields_and_reading_options(
    client: TestClient, database: Database
) -> None:
    define(database, PRICED)
    body = {
        "name": "Foreign",
        "mapping": FOREIGN_MAPPING,
        "header": ["Code", "Title", "Price", "Qty", "Labels", "EAN"],
        "decimal_separator": ",",
        "empty_cells": "clear",
    }
    saved = client.post("/api/import-mappings", json=body)
    assert saved.status_code == 201, saved.text
    assert saved.json()["mapping"] == FOREIGN_MAPPING
    assert (saved.json()["decimal_separator"], saved.json()["empty_cells"]) == (",", "clear")
    listed = client.get("/api/import-mappings").json()[0]
    assert (listed["decimal_separator"], listed["group_by"]) == (",", None)
    answer = preview(client, FOREIGN)
    assert (answer["mapping_source"], answer["mapping"]) == ("saved", FOREIGN_MAPPING)
    assert (answer["decimal_separator"], answer["empty_cells"]) == (",", "clear")
    unknown = client.post(
        "/api/import-mappings", json={**body, "mapping": {**FOREIGN_MAPPING, "colour": "EAN"}}
    )
    assert unknown.status_code == 422
    assert "unknown fields: 'colour'" in unknown.json()["detail"]


def test_the_command_line_maps_custom_fields_and_reads_options(
    database: Database, tmp_path: Path
) -> None:
    define(database, PRICED)
    file = tmp_path / "foreign.csv"
    file.write_bytes(
        csv_bytes(
            ["Code", "Title", "Variant Price", "Qty"],
            [["A-1", "Chair", "1.299,50", "4"], ["B-2", "Desk", "", "1"]],
        )
    )
    env = cli_env(tmp_path, database.engine.url.render_as_string(hide_password=False))
    maps = ["--map", "sku=Code", "--map", "name=Title", "--map", "price=Variant Price"]
    result = run_cli(
        "import", str(file), *maps, "--map", "stock=Qty", "--decimal-separator", ",", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "created 2, updated 0, unchanged 0, rejected 0" in result.stdout
    assert fields_by_sku(database) == {
        "A-1": {"price": "1299.5", "stock": 4},
        "B-2": {"stock": 1},
    }
    cleared = run_cli("import", str(file), *maps, "--empty-cells", "clear", "--decimal-separator",
                      ",", env=env)  # fmt: skip
    assert cleared.returncode == 0, cleared.stderr
    assert fields_by_sku(database)["B-2"] == {"stock": 1}  # stock is not mapped this time
    unknown = run_cli("import", str(file), *maps, "--map", "colour=Qty", env=env)
    assert unknown.returncode == 2
    assert "unknown fields: 'colour'" in unknown.stderr
