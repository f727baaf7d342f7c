"""The preview and saved mappings, through the API on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from product_importer.db import Database
from tests.imports import workbooks
from tests.imports.test_mapping_routes import SHOPIFY_MAPPING, shopify_export
from tests.imports.test_routes import catalogue


def preview(
    client: TestClient, content: bytes, query: str = "", filename: str = "f.csv", **data: str
) -> Any:
    return client.post(
        "/api/imports/preview" + query,
        files={"file": (filename, content, "application/octet-stream")},
        data=data or None,
    )


def test_preview_shows_rows_as_they_will_be_imported(
    client: TestClient, database: Database
) -> None:
    response = preview(client, shopify_export())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["kind"], body["delimiter"], body["encoding"]) == ("csv", ",", "utf-8")
    assert body["header_matches"] is False
    assert (body["mapping"], body["mapping_source"]) == (SHOPIFY_MAPPING, "suggested")
    assert body["mapping_error"] is None
    assert body["columns"][:2] == ["Handle", "Title"]
    shown = [(r["line"], r["sku"], r["name"], r["active"], r["rejected"]) for r in body["rows"]]
    assert shown[:4] == [
        (2, "OAK-CH-01", "Oak chair", True, None),
        (3, "PINE-DK-02", "Pine desk", False, None),
        (5, "00123", "Old lamp", False, None),
        (6, "", "", None, "SKU is empty."),
    ]
    assert shown[4][0] == 7 and "'pending'" in shown[4][4]
    assert body["rows"][1]["description"] == 'Desk, "pine"\nwith drawer'
    assert any(w.startswith("Ignored columns: Handle") for w in body["warnings"])
    # A mapping that does not fit is reported, not refused: the person fixes it on the page.
    wrong = preview(client, shopify_export(), mapping=json.dumps({"sku": "Handle", "name": "X"}))
    assert wrong.status_code == 200
    assert "names the column 'X' for name" in wrong.json()["mapping_error"]
    assert wrong.json()["rows"] == []
    assert client.get("/api/imports").json()["total"] == 0
    assert catalogue(database) == {}


def test_preview_of_the_head_of_a_big_file_drops_the_cut_row(client: TestClient) -> None:
    rows = b"".join(b"SKU-%d,Product %d\n" % (i, i) for i in range(100))
    head = (b"sku,name\n" + rows)[:200]  # cut in the middle of a row
    body = preview(client, head, "?partial=true").json()
    assert body["header_matches"] is True and body["mapping_source"] == "header"
    lines = [row["line"] for row in body["rows"]]
    assert len(lines) == len(set(lines)) and lines == list(range(2, 2 + len(lines)))
    assert all(row["name"] == f"Product {row['line'] - 2}" for row in body["rows"])
    full = preview(client, b"sku,name\n" + rows).json()
    assert len(full["rows"]) == 20
    # A quote opened in the sample and cut by it is not an error in a partial preview.
    cut_in_quote = preview(client, b'sku,name\nA,One\nB,"Two\nstill', "?partial=true")
    assert cut_in_quote.status_code == 200
    assert [r["sku"] for r in cut_in_quote.json()["rows"]] == ["A"]


def test_preview_of_workbooks_and_encodings(client: TestClient) -> None:
    book = workbooks.xlsx(
        {"Notes": [["x"]], "Products": [["Artikelnummer", "Bezeichnung"], ["0042", "Tisch"]]}
    )
    body = preview(client, book, filename="b.xlsx", sheet="Products").json()
    assert (body["kind"], body["sheets"], body["sheet"]) == (
        "workbook",
        ["Notes", "Products"],
        "Products",
    )
    assert body["mapping"] == {"sku": "Artikelnummer", "name": "Bezeichnung"}
    assert [(r["line"], r["sku"], r["name"]) for r in body["rows"]] == [(2, "0042", "Tisch")]
    missing = preview(client, book, "?sheet=9", filename="b.xlsx")
    assert missing.status_code == 422 and missing.json()["sheets"] == ["Notes", "Products"]
    mac = "sku,name\nM-1,Ärger über Öl\n".encode("mac_roman")
    guessed = preview(client, mac).json()  # thin evidence: read as Windows-1252, visibly wrong
    assert (guessed["encoding"], guessed["rows"][0]["name"]) == ("cp1252", "€rger Ÿber …l")
    chosen = preview(client, mac, "?encoding=mac_roman").json()
    assert (chosen["encoding"], chosen["rows"][0]["name"]) == ("mac-roman", "Ärger über Öl")


def test_hostile_previews_get_a_precise_4xx(client: TestClient) -> None:
    assert preview(client, b"\x89PNG\r\n\x1a\n" + bytes(100)).status_code == 415
    assert client.post("/api/imports/preview", content=b"sku,name\n").status_code == 415
    assert preview(client, b"").json()["detail"] == "The file is empty."
    assert "not valid JSON" in preview(client, b"sku,name\n", mapping="{").json()["detail"]
    assert "Unknown text encoding" in preview(client, b"sku,name\n", encoding="rot13").text
    protected = workbooks.encrypted(workbooks.xlsx({"S": [["sku", "name"]]}))
    assert "password-protected" in preview(client, protected, filename="p.xlsx").text
    assert client.get("/api/imports").json()["total"] == 0


def test_saved_mappings_are_offered_first_for_the_same_header_set(client: TestClient) -> None:
    header = json.loads(json.dumps(preview(client, shopify_export()).json()["columns"]))
    mapping = {**SHOPIFY_MAPPING, "sku": "Handle"}
    saved = client.post(
        "/api/import-mappings", json={"name": "Shopify", "mapping": mapping, "header": header}
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["mapping"] == mapping
    body = preview(client, shopify_export()).json()
    assert (body["mapping"], body["mapping_source"], body["saved_mapping"]) == (
        mapping,
        "saved",
        "Shopify",
    )
    refused = client.post("/api/imports", files={"file": ("s.csv", shopify_export())})
    assert refused.json()["suggestion_source"] == "saved"
    assert refused.json()["suggested_mapping"] == mapping
    # Another header set is not affected.
    other = preview(client, b"Variant SKU,Title\nA,B\n").json()
    assert other["mapping_source"] == "suggested"
    # Same name in another case replaces it.
    again = client.post(
        "/api/import-mappings",
        json={"name": "SHOPIFY", "mapping": SHOPIFY_MAPPING, "header": header},
    )
    assert again.status_code == 201
    listed = client.get("/api/import-mappings").json()
    assert [(m["name"], m["mapping"]["sku"]) for m in listed] == [("SHOPIFY", "Variant SKU")]
    assert client.delete(f"/api/import-mappings/{listed[0]['id']}").status_code == 204
    assert client.delete(f"/api/import-mappings/{listed[0]['id']}").status_code == 404
    assert client.get("/api/import-mappings").json() == []


def test_hostile_saved_mappings_are_refused(client: TestClient) -> None:
    cases = [
        ({"name": "x", "mapping": {"sku": "A"}}, "must name a column for name"),
        ({"name": "x", "mapping": {"sku": "A", "name": "a"}}, "to both sku and name"),
        ({"name": "x", "mapping": {"sku": "A", "name": "B", "colour": "C"}}, "unknown fields"),
        ({"name": "x", "mapping": {"sku": "A", "name": "B"}, "header": ["A", "C"]}, "'B' for name"),
        ({"name": " ", "mapping": {"sku": "A", "name": "B"}}, "1 to 100 characters"),
        ({"name": "x" * 101, "mapping": {"sku": "A", "name": "B"}}, ""),
        ({"name": "x", "mapping": ["sku"]}, ""),
        ({"name": "x", "mapping": {"sku": 1, "name": "B"}}, ""),
        ({"mapping": {"sku": "A", "name": "B"}}, ""),
    ]
    for body, message in cases:
        response = client.post("/api/import-mappings", json=body)
        assert response.status_code == 422, (body, response.text)
        assert message in json.dumps(response.json()["detail"])
    assert client.post("/api/import-mappings", content=b"{").status_code == 422
    assert client.get("/api/import-mappings").json() == []
