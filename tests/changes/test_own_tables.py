"""Large changes keep their records in a table of their own (PostgreSQL): the undo, history,
bulk and retention scenarios again with every change large, and what the tables themselves do.

On SQLite every change stays in the shared table, so there the scenarios below run as they do
in their own modules, and the checks here prove that no table is ever created.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from product_importer.changes import tasks as changes_tasks
from product_importer.db import Database, utcnow
from product_importer.history import record_tables, repository
from product_importer.history.models import ChangeSet
from product_importer.history.recording import ChangeRequest
from tests.changes.helpers import csv_of, undo
from tests.changes.test_bulk import (  # noqa: F401 (collected again here)
    test_bulk_by_ids_delete_and_activate,
    test_bulk_deactivate_by_filter_checks_the_total_then_undoes,
)
from tests.changes.test_history import (  # noqa: F401
    test_a_deleted_products_history_by_sku,
    test_history_follows_a_sku_edit,
    test_history_shows_who_changed_what_newest_first,
)
from tests.changes.test_retention import (  # noqa: F401
    test_pruning_removes_old_records_and_ends_undo,
)
from tests.changes.test_undo import (  # noqa: F401
    test_delete_all_then_undo_gives_the_catalogue_back,
    test_undo_import_keeps_what_was_edited_since_and_the_undo_can_be_undone,
    test_undo_keeps_a_deleted_product_whose_sku_was_taken_again,
)
from tests.imports.conftest import run_import
from tests.imports.test_pipeline import big_file, stage


@pytest.fixture(autouse=True)
def every_change_is_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_tables, "OWN_TABLE_MIN_ROWS", 1)


def _tables(database: Database) -> dict[int, str]:
    with database.session() as session:
        return repository.own_tables(session)


def test_a_large_import_writes_its_own_indexed_table_and_pruning_drops_it(
    client: TestClient, database: Database
) -> None:
    job = run_import(client, csv_of([(f"T-{i}", f"Name {i}", "same") for i in range(5)]))
    change_id = job["change_id"]
    if database.dialect == "sqlite":
        assert _tables(database) == {}
        return
    assert _tables(database) == {change_id: f"change_records_{change_id}"}
    with database.session() as session:
        assert repository.op_counts(session, change_id) == {"created": 5}
        assert session.scalar(text("SELECT count(*) FROM product_changes")) == 0
        indexes = session.scalars(
            text("SELECT indexname FROM pg_indexes WHERE tablename = :t ORDER BY 1"),
            {"t": f"change_records_{change_id}"},
        ).all()
    assert indexes == [
        f"ix_change_records_{change_id}_before_sku_key",
        f"ix_change_records_{change_id}_sku_key",
    ]
    # An update records only the after values that changed; history still shows both sides.
    again = run_import(client, csv_of([("T-1", "Renamed", "same")]))
    product = client.get("/api/products", params={"sku": "T-1"}).json()["items"][0]
    history = client.get(f"/api/products/{product['id']}/history").json()
    assert history["items"][0]["changes"] == [{"field": "name", "old": "Name 1", "new": "Renamed"}]
    with database.session() as session:
        after = session.execute(
            text(
                "SELECT before_sku, before_name, before_description, after_name, "
                f"after_description FROM change_records_{again['change_id']}"
            )
        ).one()
    assert tuple(after) == ("T-1", "Name 1", None, "Renamed", None)

    with database.session() as session:
        session.execute(
            update(ChangeSet)
            .where(ChangeSet.id == change_id)
            .values(created_at=utcnow() - timedelta(days=31))
        )
    assert changes_tasks.prune_expired(database, 30) == 1
    assert change_id not in _tables(database)
    assert client.get(f"/api/products/{product['id']}/history").json()["total"] == 1


def test_a_merge_that_fails_at_the_end_leaves_no_table(database: Database, tmp_path: Path) -> None:
    merger = stage(database, big_file(1000), tmp_path)
    with pytest.raises(Exception, match="no_such_table"):
        merger.merge(  # type: ignore[attr-defined]
            False,
            utcnow(),
            lambda _f: None,
            lambda c: [("UPDATE no_such_table SET x = 1", {})],
            ChangeRequest(kind="import", actor="test", summary="fails"),
        )
    merger.close()  # type: ignore[attr-defined]
    assert _tables(database) == {}
    with database.session() as session:
        assert session.scalar(text("SELECT count(*) FROM change_sets")) == 0


def test_history_reads_again_when_retention_drops_a_table_meanwhile(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_import(client, csv_of([("P-1", "Pen", "blue")]))
    product = client.get("/api/products", params={"sku": "P-1"}).json()["items"][0]
    if database.dialect == "postgresql":
        # The first listing still names a table that the sweep has just dropped.
        listed = repository.own_tables
        stale = [{999_999: "change_records_999999"}]

        def racing(session: object) -> dict[int, str]:
            found = listed(session)  # type: ignore[arg-type]
            return {**found, **stale.pop()} if stale else found

        monkeypatch.setattr(repository, "own_tables", racing)
    response = client.get(f"/api/products/{product['id']}/history")
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 1
    assert database.dialect == "sqlite" or stale == []


def test_undo_keeps_what_a_later_large_change_touched(client: TestClient) -> None:
    first = run_import(client, csv_of([("K-1", "One", ""), ("K-2", "Two", "")]))
    later = run_import(client, csv_of([("K-2", "Two again", "")]))
    result = undo(client, first["change_id"])
    assert (result["deleted"], result["kept"]) == (1, 1)
    kept = client.get(f"/api/changes/{result['id']}/kept").text
    assert "K-2" in kept and f"by change {later['change_id']}" in kept
    assert [p["sku"] for p in client.get("/api/products").json()["items"]] == ["K-2"]
