"""An import's counts account for every row read (rows merged into an earlier one of the same
SKU included), and an undone import names its undo."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.changes.helpers import csv_of, undo
from tests.imports.conftest import run_import


def test_repeated_skus_are_counted_as_merged_and_every_row_is_accounted_for(
    client: TestClient,
) -> None:
    rows = [("A-1", "First", ""), ("B-1", "B", ""), ("a-1", "Second", ""), ("A-1", "Last", "")]
    job = run_import(client, csv_of([*rows, ("", "no sku", "")]))
    assert job["status"] == "completed"
    assert (job["rows_created"], job["rows_rejected"], job["rows_merged"]) == (2, 1, 2)
    counted = sum(
        job[f"rows_{name}"] for name in ("created", "updated", "unchanged", "rejected", "merged")
    )
    assert counted == job["rows_processed"] == 5
    dry = run_import(client, csv_of(rows), dry_run=True)
    assert dry["dry_run"] is True and dry["rows_merged"] == 2


def test_an_undone_import_names_its_undo(client: TestClient) -> None:
    job = run_import(client, csv_of([("A-1", "A", "")]))
    assert job["undone_by_change_id"] is None
    done = undo(client, job["change_id"])
    again = client.get(f"/api/imports/{job['id']}").json()
    assert again["undone_by_change_id"] == done["id"]
    listed = client.get("/api/imports").json()["items"][0]
    assert listed["undone_by_change_id"] == done["id"]
