"""The `encoding` option and over-long fields, through the import API on both databases."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from product_importer.db import Database
from tests.factories import make_product
from tests.imports.conftest import wait_for
from tests.imports.test_routes import catalogue


def post(client: TestClient, content: bytes, query: str = "", **data: str) -> Any:
    return client.post(
        "/api/imports" + query, files={"file": ("p.csv", content, "text/csv")}, data=data or None
    )


def test_excel_windows_1252_is_read_right_and_an_encoding_overrides_detection(
    client: TestClient, database: Database
) -> None:
    excel = "sku,name\r\nE-1,Costs €5 – “quoted”\r\n".encode("cp1252")
    job = wait_for(client, post(client, excel).json()["id"])
    assert catalogue(database)["e-1"][1] == "Costs €5 – “quoted”"
    assert "The file is not UTF-8; it was read as cp1252." in job["warnings"]
    # A short Polish file is Windows-1252 to the detector; the person says otherwise.
    polish = "sku,name\nP-1,Łódź\n".encode("cp1250")
    response = post(client, polish, "?encoding=cp1250")
    assert response.status_code == 202 and response.json()["encoding"] == "cp1250"
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "completed" and job["warnings"] == []
    assert catalogue(database)["p-1"][1] == "Łódź"
    # As a form field too.
    job = wait_for(client, post(client, polish, encoding="windows-1250").json()["id"])
    assert job["encoding"] == "cp1250" and job["rows_unchanged"] == 1


def test_hostile_encodings_are_refused_and_a_wrong_one_fails_the_job(
    client: TestClient, database: Database
) -> None:
    make_product(database, "KEEP-1", name="Kept")
    for bad in ("rot13", "zlib_codec", "klingon", "x" * 41):
        response = post(client, b"sku,name\nA,B\n", "?encoding=" + bad)
        assert response.status_code == 422, (bad, response.text)
    assert "Unknown text encoding 'rot13'" in post(client, b"sku,name\n", encoding="rot13").text
    assert client.get("/api/imports").json()["total"] == 0
    # UTF-8 asked for, but a row near the start is Windows-1252: refused at upload.
    rows = b"".join(b"R-%d,Row\n" % i for i in range(3000))
    content = b"sku,name\n" + rows + "X-1,Café\n".encode("cp1252")
    response = post(client, content, "?encoding=utf-8")
    assert response.status_code == 422
    assert "The start of the file cannot be decoded as utf-8" in response.json()["detail"]
    # ... and one far into the file: the job fails with the reason.
    rows = b"".join(b"R-%d,Row\n" % i for i in range(40_000))
    content = b"sku,name\n" + rows + "X-1,Café\n".encode("cp1252")
    job = wait_for(client, post(client, content, "?encoding=utf-8").json()["id"])
    assert job["status"] == "failed"
    assert "cannot be decoded as utf-8" in job["error"]
    assert list(catalogue(database)) == ["keep-1"]


def test_an_over_long_field_rejects_its_row_and_the_rest_is_imported(
    client: TestClient, database: Database
) -> None:
    huge = "d" * 2_000_000
    content = f'sku,name,description\nA-1,One,"{huge}"\nB-1,Two,fine\n"C-1",Three,\n'.encode()
    job = wait_for(client, post(client, content).json()["id"])
    assert (job["status"], job["rows_created"], job["rows_rejected"]) == ("completed", 2, 1)
    assert set(catalogue(database)) == {"b-1", "c-1"}
    errors = client.get(f"/api/imports/{job['id']}/errors").text
    assert errors.startswith("line,reason,sku,name,description\r\n2,")
    assert "Description is 2000000 characters; the limit is 10000." in errors
    assert "cut: 2,000,000 characters in the file" in errors
    assert len(errors) < 20_000


def test_a_quote_left_open_fails_the_file_naming_the_line(
    client: TestClient, database: Database
) -> None:
    make_product(database, "KEEP-1", name="Kept")
    rows = b"".join(b"R-%d,Row\n" % i for i in range(100))
    job = wait_for(
        client, post(client, b"sku,name\n" + rows + b'BAD-1,"unclosed\nx,y\n').json()["id"]
    )
    assert job["status"] == "failed"
    assert job["error"].startswith("Line 102: a quote opened on this line is never closed")
    assert list(catalogue(database)) == ["keep-1"]


def test_encodings_that_cannot_read_csv_text_get_a_precise_422(
    client: TestClient, database: Database
) -> None:
    content = "sku,name\nA-1,Äpfel\n".encode("utf-16-le")  # no byte-order mark
    for path in ("/api/imports", "/api/imports/preview"):
        response = client.post(
            path + "?encoding=utf-16", files={"file": ("p.csv", content, "text/csv")}
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(
            "The file does not start with a byte-order mark, so its UTF-16 byte order is unknown: "
            "choose utf-16-le"
        )
        for name in ("idna", "punycode"):
            response = client.post(
                path,
                files={"file": ("p.csv", b"sku,name\nA-1,B\n", "text/csv")},
                data={"encoding": name},
            )
            assert response.status_code == 422, response.text
            assert f"The encoding '{name}' cannot be used for CSV text" in response.json()["detail"]
    assert client.get("/api/imports").json()["total"] == 0
    job = wait_for(client, post(client, content, "?encoding=utf-16-le").json()["id"])
    assert job["status"] == "completed" and catalogue(database)["a-1"][1] == "Äpfel"
