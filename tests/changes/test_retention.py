"""Retention: records older than PRODUCT_IMPORTER_HISTORY_RETENTION_DAYS are pruned by the
periodic sweep, and such a change can no longer be undone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import update

from product_importer.changes import tasks as changes_tasks
from product_importer.db import Database, utcnow
from product_importer.history import repository
from product_importer.history.models import ChangeSet
from product_importer.settings import Settings
from tests.changes.helpers import csv_of
from tests.imports.conftest import run_import


def _records(database: Database, change_id: int) -> int:
    """Records of the change, in the shared table or a table of its own."""
    with database.session() as session:
        return sum(repository.op_counts(session, change_id).values())


def test_pruning_removes_old_records_and_ends_undo(client: TestClient, database: Database) -> None:
    old = run_import(client, csv_of([(f"R-{i}", "Old", "") for i in range(5)]))
    recent = run_import(client, csv_of([(f"S-{i}", "New", "") for i in range(3)]))
    with database.session() as session:
        session.execute(
            update(ChangeSet)
            .where(ChangeSet.id == old["change_id"])
            .values(created_at=utcnow() - timedelta(days=31))
        )
    # Past retention already before the sweep runs: the API says so.
    change = client.get(f"/api/changes/{old['change_id']}").json()
    assert change["undoable"] is False
    assert "retention" in change["not_undoable_reason"]
    response = client.post(f"/api/changes/{old['change_id']}/undo?dry_run=true")
    assert response.status_code == 409 and "30-day retention" in response.json()["detail"]

    assert changes_tasks.prune_expired(database, 30) == 1
    assert _records(database, old["change_id"]) == 0
    assert _records(database, recent["change_id"]) == 3
    change = client.get(f"/api/changes/{old['change_id']}").json()
    assert change["undoable"] is False and change["undoable_until"] is None
    assert client.post(f"/api/changes/{old['change_id']}/undo").status_code == 409
    assert client.post(f"/api/changes/{recent['change_id']}/undo?dry_run=true").status_code == 200
    assert changes_tasks.prune_expired(database, 30) == 0  # nothing left to prune


def test_the_retention_setting_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(_env_file=None, home=tmp_path).history_retention_days == 30  # type: ignore[call-arg]
    monkeypatch.setenv("PRODUCT_IMPORTER_HISTORY_RETENTION_DAYS", "7.5")
    assert Settings(_env_file=None, home=tmp_path).history_retention_days == 7.5  # type: ignore[call-arg]
    monkeypatch.setenv("PRODUCT_IMPORTER_HISTORY_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError):
        Settings(_env_file=None, home=tmp_path)  # type: ignore[call-arg]
