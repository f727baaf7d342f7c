"""Stored upload files are removed when no import needs them: at once for a completed import,
after the retention period for a failed or cancelled one (kept until then for Retry), and after a
grace period for a file no import refers to. Both kinds of storage, on both databases."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from product_importer.db import Database, utcnow
from product_importer.imports.models import ImportJob
from product_importer.imports.retention import OrphanWatch, prune_stored_uploads
from product_importer.imports.storage import DatabaseUploadStorage, UploadStorage
from product_importer.imports.tasks import prune_uploads
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext
from tests.imports.conftest import run_import


@pytest.fixture(params=["local", "database"])
def storage(request: pytest.FixtureRequest, database: Database, tmp_path: Path) -> UploadStorage:
    if request.param == "local":
        return UploadStorage(tmp_path / "uploads")
    return DatabaseUploadStorage(database)


def _stored(storage: UploadStorage, content: bytes = b"sku,name\nA-1,Alpha\n") -> str:
    key = storage.new_key(".upload")
    with storage.open_write(key) as sink:
        sink.write(content)
    return key


def _job(database: Database, key: str, status: str, finished_days_ago: float | None) -> int:
    finished = None if finished_days_ago is None else utcnow() - timedelta(days=finished_days_ago)
    with database.session() as session:
        job = ImportJob(filename="f.csv", status=status, storage_key=key, finished_at=finished)
        session.add(job)
        session.flush()
        return job.id


def _key_of(database: Database, job_id: int) -> str:
    with database.session() as session:
        return session.scalars(select(ImportJob.storage_key).where(ImportJob.id == job_id)).one()


def test_failed_and_cancelled_files_are_kept_for_the_retention_period_then_removed(
    database: Database, storage: UploadStorage
) -> None:
    old_failed = _job(database, _stored(storage), "failed", finished_days_ago=8)
    old_cancelled = _job(database, _stored(storage), "cancelled", finished_days_ago=7.5)
    recent_failed = _job(database, _stored(storage), "failed", finished_days_ago=6)
    queued = _job(database, _stored(storage), "queued", finished_days_ago=None)
    running = _job(database, _stored(storage), "running", finished_days_ago=None)
    keys = {job: _key_of(database, job) for job in (old_failed, old_cancelled, recent_failed)}

    result = prune_stored_uploads(database, storage, 7, utcnow(), OrphanWatch())

    assert (result.expired, result.orphans) == (2, 0)
    assert not storage.exists(keys[old_failed])
    assert not storage.exists(keys[old_cancelled])
    assert _key_of(database, old_failed) == _key_of(database, old_cancelled) == ""
    for kept in (recent_failed, queued, running):
        assert storage.exists(_key_of(database, kept))


def test_a_completed_imports_leftover_file_is_removed_at_once(
    database: Database, storage: UploadStorage
) -> None:
    # A crash between the merge's commit and the file's removal leaves the file behind.
    job_id = _job(database, (key := _stored(storage)), "completed", finished_days_ago=0)
    prune_stored_uploads(database, storage, 7, utcnow(), OrphanWatch())
    assert not storage.exists(key)
    assert _key_of(database, job_id) == ""


def test_a_file_no_import_refers_to_is_removed_after_the_grace_period(
    database: Database, storage: UploadStorage
) -> None:
    orphan = _stored(storage)
    referenced = _stored(storage)
    _job(database, referenced, "queued", finished_days_ago=None)
    watch = OrphanWatch()

    first = prune_stored_uploads(database, storage, 7, utcnow(), watch, grace_seconds=0.3)
    assert first.orphans == 0
    assert storage.exists(orphan)  # it may be an upload whose job is being recorded right now
    time.sleep(0.35)
    second = prune_stored_uploads(database, storage, 7, utcnow(), watch, grace_seconds=0.3)
    assert second.orphans == 1
    assert not storage.exists(orphan)
    assert storage.exists(referenced)
    assert watch.first_seen == {}


def test_an_orphan_that_gets_its_job_within_the_grace_period_is_kept(
    database: Database, storage: UploadStorage
) -> None:
    key = _stored(storage)
    watch = OrphanWatch()
    prune_stored_uploads(database, storage, 7, utcnow(), watch, grace_seconds=0.2)
    _job(database, key, "queued", finished_days_ago=None)
    time.sleep(0.25)
    assert (
        prune_stored_uploads(database, storage, 7, utcnow(), watch, grace_seconds=0.2).orphans == 0
    )
    assert storage.exists(key)


def test_retry_after_the_file_was_removed_asks_for_a_new_upload(
    client: TestClient, database: Database, settings: Settings
) -> None:
    failed = run_import(client, b"sku,name\n\n")  # no rows at all: fails
    assert failed["status"] == "failed"
    with database.session() as session:
        job = session.get(ImportJob, failed["id"])
        assert job is not None
        job.finished_at = utcnow() - timedelta(days=settings.upload_retention_days + 1)

    prune_uploads(TaskContext(database=database, settings=settings))

    refused = client.post(f"/api/imports/{failed['id']}/retry")
    assert refused.status_code == 409
    assert "no longer stored; upload it again" in refused.json()["detail"]
    assert list((settings.home / "uploads").iterdir()) == []


def test_the_retention_period_is_a_setting(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from tests.conftest import make_settings

    assert make_settings(tmp_path, "sqlite://").upload_retention_days == 7
    assert make_settings(tmp_path, "sqlite://", upload_retention_days=0).upload_retention_days == 0
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        make_settings(tmp_path, "sqlite://", upload_retention_days=-1)
