"""Workbooks through the import API on SQLite and PostgreSQL: same pipeline, same promises."""

from __future__ import annotations

import functools
import json
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from product_importer.db import Database
from tests.factories import make_product
from tests.imports import workbooks
from tests.imports.conftest import wait_for
from tests.imports.test_routes import catalogue
from tests.processes import cli_env, free_port, run_cli, start_server

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def post(client: TestClient, content: bytes, filename: str, **data: str) -> Any:
    return client.post(
        "/api/imports", files={"file": (filename, content, XLSX_TYPE)}, data=data or None
    )


def test_an_xlsx_with_numbers_leading_zeros_and_dates_imports_like_csv(
    client: TestClient, database: Database
) -> None:
    make_product(database, "12345", name="Old chair")
    rows = [
        ["Item code", "Product name", "Long description", "Visible", "Launched"],
        [12345, "Chair", "Oak", "yes", date(2024, 3, 1)],
        ["00123", "Desk", date(2024, 5, 17), "hidden", None],
        [None, None, None, None, None],
        [4006381333931, "Lamp", 19.5, True, None],
        ["", "No SKU", "", "", ""],
        ["B-1", "Bad flag", "", "maybe", ""],
    ]
    data = workbooks.xlsx({"Read me": [["Exported by ERP"]], "Products": rows})
    refused = post(client, data, "erp.xlsx", sheet="Products")
    assert refused.status_code == 422
    assert refused.json()["sheets"] == ["Read me", "Products"]
    suggested = refused.json()["suggested_mapping"]
    assert suggested == {
        "sku": "Item code",
        "name": "Product name",
        "description": "Long description",
        "active": "Visible",
    }
    response = post(client, data, "erp.xlsx", sheet="2", mapping=json.dumps(suggested))
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "completed", job
    assert (job["rows_created"], job["rows_updated"], job["rows_rejected"]) == (2, 1, 2)
    assert job["percent"] == 100 and job["sheet"] == "2"
    assert catalogue(database) == {
        "12345": ("12345", "Chair", "Oak", True),
        "00123": ("00123", "Desk", "2024-05-17", False),
        "4006381333931": ("4006381333931", "Lamp", "19.5", True),
    }
    assert job["warnings"] == ["Ignored columns: Launched."]
    errors = client.get(f"/api/imports/{job['id']}/errors").text.splitlines()
    assert errors[0] == "line,reason,Item code,Product name,Long description,Visible,Launched"
    assert errors[1].startswith("6,SKU is empty.")  # spreadsheet row numbers
    assert errors[2].startswith('7,"Active must be')


def test_ods_and_xls_import_with_their_own_headers(client: TestClient, database: Database) -> None:
    ods = workbooks.ods(
        {
            "Artikel": [
                ["Artikelnummer", "Bezeichnung", "Beschreibung", "Aktiv"],
                [1001, "Stuhl", "Eiche", True],
                ["0042", "Tisch", ("=1+1", 2), False],
            ]
        }
    )
    mapping = {"sku": "Artikelnummer", "name": "Bezeichnung", "description": "Beschreibung"}
    mapping["active"] = "Aktiv"
    job = wait_for(
        client, post(client, ods, "artikel.ods", mapping=json.dumps(mapping)).json()["id"]
    )
    assert (job["status"], job["rows_created"]) == ("completed", 2)
    xls = workbooks.xls([["sku", "name", "active"], [2002, "Lampe", 1], ["0007", "Regal", 0]])
    job = wait_for(client, post(client, xls, "old.xls").json()["id"])
    assert (job["status"], job["rows_created"]) == ("completed", 2)
    assert catalogue(database) == {
        "1001": ("1001", "Stuhl", "Eiche", True),
        "0042": ("0042", "Tisch", "2", False),
        "2002": ("2002", "Lampe", "", True),
        "0007": ("0007", "Regal", "", False),
    }


def test_hostile_workbooks_are_refused_and_change_nothing(
    client: TestClient, database: Database
) -> None:
    make_product(database, "KEEP-1", name="Kept")
    good = workbooks.xlsx({"Products": [["sku", "name"], ["A-1", "One"]], "Other": [["x"]]})
    cases = [
        (good[: len(good) // 2], 422, "damaged ZIP archive"),
        (workbooks.encrypted(good), 422, "password-protected"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4000), 422, "not a spreadsheet that can"),
        (workbooks.xlsx({"Empty": []}), 422, "The sheet 'Empty' is empty."),
        (workbooks.xlsx({"S": [["price", "weight"], [1, 2]]}), 422, "no sku and no name"),
    ]
    for content, status, message in cases:
        response = post(client, content, "book.xlsx")
        assert response.status_code == status, (message, response.text)
        assert message in response.json()["detail"]
    for sheet, message in (("Prices", "no sheet named 'Prices'"), ("3", "no sheet number 3")):
        response = post(client, good, "book.xlsx", sheet=sheet)
        assert response.status_code == 422
        assert message in response.json()["detail"]
        assert response.json()["sheets"] == ["Products", "Other"]
    long_sheet = post(client, good, "book.xlsx", sheet="x" * 300)
    assert long_sheet.status_code == 422
    assert client.get("/api/imports").json()["total"] == 0
    assert list(catalogue(database)) == ["keep-1"]


CORNER_MESSAGE = (
    "The sheet 'Products' spans 1,048,576 rows by 16,384 columns (its last value is in row "
    "1,048,576, column XFD): 17,179,869,184 cells, over the limit of 12,000,000 cells"
)


def corner_workbook(ref: str = "XFD1048576") -> bytes:
    """The 5 KB .xlsx that made calamine abort the server: one value in the sheet's far corner."""
    return workbooks.raw_xlsx(
        workbooks.HEADER_ROWS + '<row r="1048576">' + workbooks.cell(ref, "x") + "</row>"
    )


@functools.cache
def shared_string_bomb() -> bytes:
    """200 MB of shared string packed into about 200 KB (built once: packing takes seconds)."""
    return workbooks.raw_xlsx(
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>',
        shared=["sku", "x" * (200 * 1024 * 1024)],
    )


def test_a_workbook_over_a_limit_is_refused_by_preview_and_upload(
    client: TestClient, database: Database
) -> None:
    make_product(database, "KEEP-1", name="Kept")
    cases = [
        (corner_workbook(), CORNER_MESSAGE),
        (corner_workbook("BZ1048576"), "81,788,928 cells, over the limit of 12,000,000 cells"),
        (shared_string_bomb(), "times its packed size, over the limit of 100 times"),
    ]
    for content, message in cases:
        preview = client.post(
            "/api/imports/preview", files={"file": ("book.xlsx", content, XLSX_TYPE)}
        )
        assert preview.status_code == 422, preview.text
        assert message in preview.json()["detail"]
        for dry_run in ("true", "false"):
            upload = client.post(
                f"/api/imports?dry_run={dry_run}",
                files={"file": ("book.xlsx", content, XLSX_TYPE)},
            )
            assert upload.status_code == 422, upload.text
            assert message in upload.json()["detail"]
    good = workbooks.xlsx({"Products": [["sku", "name"], ["A-1", "One"]]})
    still = client.post("/api/imports/preview", files={"file": ("good.xlsx", good, XLSX_TYPE)})
    assert still.status_code == 200 and still.json()["rows"][0]["sku"] == "A-1"
    assert client.get("/api/imports").json()["total"] == 0
    assert list(catalogue(database)) == ["keep-1"]


def test_a_real_server_refuses_the_corner_workbook_and_stays_small(
    database: Database, tmp_path: Path
) -> None:
    """The reported crash, end to end: the server process answers 422 and keeps answering, and
    its peak memory (VmHWM) stays under 500 MB."""
    env = cli_env(tmp_path, database.engine.url.render_as_string(hide_password=False))
    token = run_cli("token", "create", "limits-test", env=env).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(env, port)
    try:
        for content, message in (
            (corner_workbook(), CORNER_MESSAGE),
            (corner_workbook("BZ1048576"), "81,788,928 cells"),
            (shared_string_bomb(), "over the limit of 100 times"),
        ):
            for path in ("/api/imports/preview", "/api/imports?dry_run=true"):
                response = httpx.post(
                    url + path,
                    headers=headers,
                    files={"file": ("book.xlsx", content, XLSX_TYPE)},
                    timeout=60,
                )
                assert response.status_code == 422, response.text
                assert message in response.json()["detail"]
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/api/imports", headers=headers).json()["total"] == 0
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak_mb = next(int(line.split()[1]) for line in status.splitlines() if "VmHWM" in line)
        assert peak_mb // 1024 < 500, f"server peak {peak_mb // 1024} MB"
    finally:
        server.terminate()
        server.wait(timeout=30)
