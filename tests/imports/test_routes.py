"""The import API end to end on SQLite and PostgreSQL: semantics, hostile input, job control."""

from __future__ import annotations

import csv
import gzip
import io
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from product_importer.app import create_app
from product_importer.catalog.locking import CatalogueLock
from product_importer.catalog.models import Product
from product_importer.db import Database
from product_importer.imports import pipeline
from product_importer.settings import Settings
from product_importer.webhooks.models import Event
from tests.factories import make_product, sign_in
from tests.imports.conftest import run_import, upload, wait_for


def catalogue(database: Database) -> dict[str, tuple[str, str, str, bool]]:
    with database.session() as session:
        rows = session.execute(
            select(Product.sku_key, Product.sku, Product.name, Product.description, Product.active)
        ).all()
    return {key: (sku, name, desc, active) for key, sku, name, desc, active in rows}


def test_import_creates_products_and_reports_counts(client: TestClient, database: Database) -> None:
    job = run_import(client, b"name,sku,description\nChair,CH-1,Oak\nDesk,DE-1,Pine\n")
    assert job["status"] == "completed"
    assert job["percent"] == 100
    assert (job["rows_processed"], job["rows_created"], job["rows_rejected"]) == (2, 2, 0)
    assert job["phase"] == "Completed"
    assert job["finished_at"] is not None
    assert catalogue(database) == {
        "ch-1": ("CH-1", "Chair", "Oak", True),
        "de-1": ("DE-1", "Desk", "Pine", True),
    }


def test_last_row_wins_and_skus_match_case_insensitively(
    client: TestClient, database: Database
) -> None:
    make_product(database, "ÄPFEL-1", name="Old apples")
    job = run_import(
        client,
        "sku,name\nabc-1,First\näpfel-1,New apples\nABC-1,Second\nAbc-1,Third\n".encode(),
    )
    assert (job["rows_created"], job["rows_updated"], job["rows_unchanged"]) == (1, 1, 0)
    assert catalogue(database) == {
        "abc-1": ("Abc-1", "Third", "", True),
        "äpfel-1": ("äpfel-1", "New apples", "", True),
    }


def test_reimporting_the_same_file_changes_nothing(client: TestClient, database: Database) -> None:
    content = b"name,sku,description\nChair,CH-1,Oak\nDesk,DE-1,Pine\n"
    run_import(client, content)
    with database.session() as session:
        before = session.scalar(select(func.max(Product.updated_at)))
    job = run_import(client, content)
    assert (job["rows_created"], job["rows_updated"], job["rows_unchanged"]) == (0, 0, 2)
    with database.session() as session:
        assert session.scalar(select(func.max(Product.updated_at))) == before


def test_active_flag_is_kept_unless_the_file_sets_it(
    client: TestClient, database: Database
) -> None:
    run_import(client, b"sku,name,active\nA-1,Alpha,no\nB-1,Beta,\nC-1,Gamma,yes\n")
    assert {k: v[3] for k, v in catalogue(database).items()} == {
        "a-1": False,
        "b-1": True,
        "c-1": True,
    }
    # No active column: names change, the flags set before stay.
    job = run_import(client, b"sku,name\nA-1,Alpha 2\nB-1,Beta 2\n")
    assert job["rows_updated"] == 2
    assert catalogue(database)["a-1"] == ("A-1", "Alpha 2", "", False)
    # An empty cell keeps the flag; a value sets it.
    job = run_import(client, b"sku,name,active\nA-1,Alpha 2,\nB-1,Beta 2,false\n")
    assert (job["rows_updated"], job["rows_unchanged"]) == (1, 1)
    assert {k: v[3] for k, v in catalogue(database).items()} == {
        "a-1": False,
        "b-1": False,
        "c-1": True,
    }


def test_rejected_rows_are_counted_and_downloadable(client: TestClient, database: Database) -> None:
    content = (
        b"sku,name,description\n"
        b'OK-1,Fine,"two\nlines"\n'
        b",No sku,x\n"
        b"OK-2,,no name\n"
        b"=HYPERLINK(1),Formula,x\n"
        b"OK-3,Fine,ok,extra\n"
    )
    job = run_import(client, content)
    assert (job["rows_processed"], job["rows_created"], job["rows_rejected"]) == (5, 2, 3)
    response = client.get(f"/api/imports/{job['id']}/errors")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["line", "reason", "sku", "name", "description"]
    assert [(r[0], r[1]) for r in rows[1:]] == [
        ("4", "SKU is empty."),
        ("5", "Name is empty."),
        (
            "7",
            "Row has 4 fields but the header has 3; the extra values would be lost "
            "(check quoting and delimiters).",
        ),
    ]
    assert rows[1][2:] == ["", "No sku", "x"]
    assert set(catalogue(database)) == {"ok-1", "=hyperlink(1)"}


def test_formula_cells_are_neutralised_in_the_rejects_file(client: TestClient) -> None:
    job = run_import(client, b"sku,name\n=cmd|' /C calc'!A0,\n")
    text = client.get(f"/api/imports/{job['id']}/errors").text
    assert "'=cmd" in text


def test_dry_run_counts_and_writes_nothing(client: TestClient, database: Database) -> None:
    make_product(database, "KEEP-1", name="Same")
    make_product(database, "CHG-1", name="Before")
    job = run_import(client, b"sku,name\nKEEP-1,Same\nCHG-1,After\nNEW-1,New\n,bad\n", dry_run=True)
    assert job["dry_run"] is True
    assert job["status"] == "completed"
    counts = ("rows_created", "rows_updated", "rows_unchanged", "rows_rejected")
    assert tuple(job[c] for c in counts) == (1, 1, 1, 1)
    assert catalogue(database)["chg-1"][1] == "Before"
    assert "new-1" not in catalogue(database)


def test_windows_1252_and_gzip_uploads(client: TestClient, database: Database) -> None:
    latin = "sku;name;description\nC-1;Café;Crème brûlée – 5 €\n".encode("cp1252")
    job = run_import(client, latin, filename="excel.csv")
    assert job["status"] == "completed"
    assert any("not UTF-8" in w for w in job["warnings"])
    assert catalogue(database)["c-1"][1:3] == ("Café", "Crème brûlée – 5 €")
    job = run_import(client, gzip.compress(b"sku,name\nG-1,Gzip\n"), filename="p.csv.gz")
    assert job["status"] == "completed"
    assert "g-1" in catalogue(database)


def test_non_utf8_bytes_late_in_the_file_fall_back_to_windows_1252(
    client: TestClient, database: Database
) -> None:
    head = b"sku,name\n" + b"".join(b"A-%d,Plain %d\n" % (i, i) for i in range(30_000))
    job = run_import(client, head + "Z-1,Ol\u00e9\n".encode("cp1252"))
    assert job["status"] == "completed"
    assert job["rows_created"] == 30_001
    assert any("Windows-1252" in w for w in job["warnings"])
    assert catalogue(database)["z-1"][1] == "Olé"


def test_unknown_columns_are_reported_once_as_a_warning(client: TestClient) -> None:
    job = run_import(client, b"sku,name,price,colour\nA-1,Alpha,1,red\n")
    assert job["warnings"] == ["Ignored columns: price, colour."]


def _zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"", 422, "The file is empty."),
        (b"name,description\nx,y\n", 422, "no sku column"),
        (b"sku,name,Name\nx,y,z\n", 422, "more than once: name"),
        (b"PK\x03\x04" + b"\x00" * 100, 422, "damaged ZIP archive"),
        (_zip_of({"readme.txt": b"hello"}), 415, "This is a ZIP archive, not a CSV file"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 415, "PNG image"),
        (bytes(range(256)) * 8, 415, "binary data"),
        (b"\x1f\x8b\x08\x00garbage", 422, "gzip"),
    ],
)
def test_unusable_files_are_refused_at_upload(
    client: TestClient, database: Database, content: bytes, status: int, message: str
) -> None:
    response = upload(client, content)
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert client.get("/api/imports").json()["total"] == 0
    assert catalogue(database) == {}


def test_file_with_header_only_fails_with_a_reason(client: TestClient) -> None:
    job = run_import(client, b"sku,name\n\n")
    assert job["status"] == "failed"
    assert job["error"] == "The file has a header but no data rows."


def test_unclosed_quote_fails_the_job_and_changes_nothing(
    client: TestClient, database: Database
) -> None:
    make_product(database, "KEEP-1", name="Kept")
    rows = b"".join(b"R-%d,Row\n" % i for i in range(100))
    job = run_import(client, b"sku,name\n" + rows + b'BAD-1,"unclosed\n' + b"x" * 1_100_000)
    assert job["status"] == "failed"
    assert "not valid CSV" in job["error"]
    assert job["percent"] < 100
    assert catalogue(database) == {"keep-1": ("KEEP-1", "Kept", "", True)}


def test_requests_that_are_not_uploads_get_a_4xx(client: TestClient) -> None:
    assert client.post("/api/imports", content=b"sku,name\n").status_code == 415
    assert client.post("/api/imports", json={"file": "x"}).status_code == 415
    no_file = client.post("/api/imports", files={"other": ("a.csv", b"sku,name\nA,B\n")})
    assert no_file.status_code == 422
    assert "field named 'file'" in no_file.json()["detail"]
    broken = client.post(
        "/api/imports",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nsku,name',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert 400 <= broken.status_code < 500
    assert (
        client.post("/api/imports?dry_run=perhaps", files={"file": ("a", b"x")}).status_code == 422
    )


def test_file_names_cannot_escape_storage(client: TestClient, settings: Settings) -> None:
    job = run_import(client, b"sku,name\nA-1,Alpha\n", filename="../../etc/passwd")
    assert job["filename"] == "passwd"
    assert not (settings.home.parent.parent / "etc" / "passwd").exists()


def test_oversize_upload_is_refused_with_413(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 1000})
    with TestClient(create_app(small, database)) as client:
        sign_in(client, database)
        response = upload(client, b"sku,name\n" + b"A-1,Alpha\n" * 200)
        assert response.status_code == 413
        assert "1,000 bytes" in response.json()["detail"]
        assert list((settings.home / "uploads").glob("*")) == []
        assert upload(client, b"sku,name\nA-1,Alpha\n").status_code == 202


def test_unknown_and_malformed_job_ids(client: TestClient) -> None:
    assert client.get("/api/imports/999").status_code == 404
    assert client.get("/api/imports/abc").status_code == 422
    assert client.get("/api/imports/999/errors").status_code == 404
    assert client.post("/api/imports/999/cancel").status_code == 404
    assert client.post("/api/imports/999/retry").status_code == 404
    assert client.get("/api/imports?page=0").status_code == 422
    assert client.get("/api/imports?page_size=100000").status_code == 422


def test_history_is_newest_first_and_paginated(client: TestClient) -> None:
    ids = [run_import(client, b"sku,name\nA-%d,x\n" % i)["id"] for i in range(3)]
    page = client.get("/api/imports?page=1&page_size=2").json()
    assert page["total"] == 3
    assert [item["id"] for item in page["items"]] == [ids[2], ids[1]]
    assert [i["id"] for i in client.get("/api/imports?page=2&page_size=2").json()["items"]] == [
        ids[0]
    ]


def test_the_catalogue_is_free_once_an_import_has_completed(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The planner statistics are refreshed after `completed` (seconds on PostgreSQL after a
    # large import); a bulk action or another import must not wait for them.
    free: list[bool] = []

    def refresh(*_: object) -> None:
        probe = CatalogueLock(database)
        free.append(probe.try_acquire())
        probe.release()

    monkeypatch.setattr(pipeline, "_refresh_statistics", refresh)
    assert run_import(client, b"sku,name\nF-1,Free\n")["status"] == "completed"
    # The refresh follows `completed` on the import's thread: wait for it to have run.
    deadline = time.monotonic() + 30
    while not free and time.monotonic() < deadline:
        time.sleep(0.02)
    assert free == [True]


def test_imports_wait_their_turn_and_can_be_cancelled_and_retried(
    client: TestClient, database: Database
) -> None:
    lock = CatalogueLock(database)
    assert lock.try_acquire()  # as if another import were running
    try:
        job_id = upload(client, b"sku,name\nW-1,Waiting\n").json()["id"]
        time.sleep(0.5)
        job = client.get(f"/api/imports/{job_id}").json()
        assert (job["status"], job["phase"]) == ("queued", "Queued")
        cancelled = client.post(f"/api/imports/{job_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
    finally:
        lock.release()
    assert catalogue(database) == {}
    again = client.post(f"/api/imports/{job_id}/cancel")
    assert again.status_code == 409
    assert "already ended" in again.json()["detail"]
    assert client.post(f"/api/imports/{job_id}/retry").status_code == 202
    job = wait_for(client, job_id)
    assert job["status"] == "completed"
    assert "w-1" in catalogue(database)
    refused = client.post(f"/api/imports/{job_id}/retry")
    assert refused.status_code == 409
    assert "Only failed or cancelled" in refused.json()["detail"]


def test_outcomes_are_recorded_as_webhook_events(client: TestClient, database: Database) -> None:
    done = run_import(client, b"sku,name\nE-1,Evented\n")
    run_import(client, b"sku,name\nD-1,Dry\n", dry_run=True)
    failed = run_import(client, b"sku,name\n\n")
    with database.session() as session:
        events = session.scalars(select(Event).order_by(Event.id)).all()
        payloads = [(e.type, e.payload["data"]) for e in events]
    assert [t for t, _ in payloads] == ["import.completed", "import.failed"]
    assert payloads[0][1]["id"] == done["id"]
    assert payloads[0][1]["rows_created"] == 1
    assert payloads[1][1]["id"] == failed["id"]
    assert payloads[1][1]["error"] == "The file has a header but no data rows."


def test_event_stream_follows_the_job_to_its_end(client: TestClient) -> None:
    job_id = upload(client, b"sku,name\nS-1,Streamed\n").json()["id"]
    events = []
    with client.stream("GET", f"/api/imports/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                import json

                events.append(json.loads(line[5:]))
    assert events[-1]["status"] == "completed"
    assert events[-1]["rows_created"] == 1
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents)
    assert client.get("/api/imports/999/events").status_code == 404


def test_an_exported_catalogue_imports_back_unchanged(
    client: TestClient, database: Database
) -> None:
    original = (
        "sku,name,description,active\n"
        "=SUM(A1),+plus,-minus,true\n"
        '@at,\'quoted,"tab\tinside",false\n'
        'X-1,Plain,"two\nlines",true\n'
    )
    run_import(client, original.encode())
    before = catalogue(database)
    exported = client.get("/api/products/export")
    assert exported.status_code == 200
    with database.session() as session:
        session.execute(Product.__table__.delete())
    job = run_import(client, exported.content)
    assert job["rows_rejected"] == 0
    assert catalogue(database) == before
