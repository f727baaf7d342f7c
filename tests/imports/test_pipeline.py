"""The import task itself: all or nothing under cancel and failure, and crash recovery."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from product_importer.catalog.models import Product
from product_importer.db import Database, utcnow
from product_importer.imports import pipeline, service
from product_importer.imports import tasks as import_tasks
from product_importer.imports.merge import MergeCounts, merger_for
from product_importer.imports.models import ImportJob
from product_importer.imports.progress import ImportCancelled
from product_importer.imports.reading import CsvSource, detect_format
from product_importer.imports.storage import UploadStorage
from product_importer.imports.validation import normalise
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext
from tests.factories import make_product


def skus(database: Database) -> dict[str, str]:
    with database.session() as session:
        return dict(session.execute(select(Product.sku_key, Product.name)).all())


def stage(database: Database, content: bytes, tmp_path: Path) -> object:
    path = tmp_path / "stage.csv"
    path.write_bytes(content)
    merger = merger_for(database.engine)
    with path.open("rb") as raw:
        source = CsvSource(raw, detect_format(raw))
        columns = source.read_header()
        merger.stage(normalise(source.rows(), columns, lambda *_: None))
    return merger


def big_file(rows: int) -> bytes:
    return b"sku,name\n" + b"".join(b"K-%d,Name %d\n" % (i, i) for i in range(rows))


def test_cancel_during_the_merge_leaves_the_catalogue_as_it_was(
    database: Database, tmp_path: Path
) -> None:
    make_product(database, "K-1", name="Before")
    merger = stage(database, big_file(120_000), tmp_path)

    def cancel_halfway(fraction: float) -> None:
        if fraction >= 0.3:
            raise ImportCancelled

    with pytest.raises(ImportCancelled):
        merger.merge(False, utcnow(), cancel_halfway, lambda c: [("SELECT 1", {})])  # type: ignore[attr-defined]
    merger.close()  # type: ignore[attr-defined]
    assert skus(database) == {"k-1": "Before"}


def test_a_failure_at_the_end_of_the_merge_rolls_everything_back(
    database: Database, tmp_path: Path
) -> None:
    make_product(database, "K-1", name="Before")
    merger = stage(database, big_file(1000), tmp_path)
    with pytest.raises(Exception, match="no_such_table"):
        merger.merge(  # type: ignore[attr-defined]
            False, utcnow(), lambda _f: None, lambda c: [("UPDATE no_such_table SET x = 1", {})]
        )
    merger.close()  # type: ignore[attr-defined]
    assert skus(database) == {"k-1": "Before"}


def test_merge_counts_and_progress(database: Database, tmp_path: Path) -> None:
    make_product(database, "K-1", name="Name 1")
    make_product(database, "K-2", name="Old")
    merger = stage(database, big_file(120_000), tmp_path)
    seen: list[float] = []
    counts = merger.merge(False, utcnow(), seen.append, lambda c: [("SELECT 1", {})])  # type: ignore[attr-defined]
    merger.close()  # type: ignore[attr-defined]
    assert counts == MergeCounts(created=119_998, updated=1, unchanged=1)
    assert len(seen) >= 2
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


def _job(database: Database, storage: UploadStorage, content: bytes, **values: object) -> int:
    key = storage.new_key(".upload")
    with storage.open_write(key) as handle:
        handle.write(content)
    with database.session() as session:
        job = service.start_import(
            session,
            filename="f.csv",
            storage_key=key,
            total_bytes=len(content),
            dry_run=False,
            created_by="test",
        )
        for name, value in values.items():
            setattr(job, name, value)
        return job.id


def _status(database: Database, job_id: int) -> ImportJob:
    with database.session() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        return job


def test_shutdown_puts_the_job_back_in_the_queue(database: Database, settings: Settings) -> None:
    storage = UploadStorage(settings.home / "uploads")
    job_id = _job(database, storage, big_file(50_000))
    stopping = threading.Event()
    stopping.set()
    pipeline.run_import(database, storage, job_id, stopping)
    job = _status(database, job_id)
    assert (job.status, job.phase) == ("queued", "Interrupted; will resume")
    assert skus(database) == {}
    pipeline.run_import(database, storage, job_id)
    assert _status(database, job_id).status == "completed"
    assert len(skus(database)) == 50_000


@pytest.mark.parametrize(
    ("phase", "attempts", "expected_status"),
    [("Reading and validating", 1, "completed"), ("Merging", 3, "failed")],
)
def test_recovery_resumes_or_gives_up_on_jobs_whose_worker_died(
    database: Database, settings: Settings, phase: str, attempts: int, expected_status: str
) -> None:
    storage = UploadStorage(settings.home / "uploads")
    stale = utcnow() - timedelta(minutes=5)
    job_id = _job(
        database,
        storage,
        b"sku,name\nR-1,Recovered\n",
        status="running",
        phase=phase,
        attempts=attempts,
        heartbeat_at=stale,
    )
    context = TaskContext(database=database, settings=settings)
    import_tasks.recover(context)  # with no dispatcher attached, queued jobs wait in the table
    job = _status(database, job_id)
    if expected_status == "completed":
        assert (job.status, job.phase) == ("queued", "Interrupted; will resume")
        pipeline.run_import(database, storage, job_id)
    assert _status(database, job_id).status == expected_status
    if expected_status == "failed":
        assert "interrupted 3 times" in (_status(database, job_id).error or "")
        assert skus(database) == {}
    else:
        assert skus(database) == {"r-1": "Recovered"}


def test_recovery_completes_a_job_whose_merge_had_committed(
    database: Database, settings: Settings
) -> None:
    storage = UploadStorage(settings.home / "uploads")
    job_id = _job(
        database,
        storage,
        b"sku,name\nM-1,Merged\n",
        status="running",
        phase="Merged",
        attempts=1,
        rows_created=1,
        heartbeat_at=utcnow() - timedelta(minutes=1),
    )
    import_tasks.recover(TaskContext(database=database, settings=settings))
    job = _status(database, job_id)
    assert (job.status, job.percent, job.rows_created) == ("completed", 100.0, 1)


def test_recovery_leaves_live_jobs_alone(database: Database, settings: Settings) -> None:
    storage = UploadStorage(settings.home / "uploads")
    job_id = _job(
        database,
        storage,
        b"sku,name\nL-1,Live\n",
        status="running",
        phase="Reading and validating",
        heartbeat_at=utcnow(),
    )
    import_tasks.recover(TaskContext(database=database, settings=settings))
    assert _status(database, job_id).status == "running"
    with database.session() as session:
        session.execute(update(ImportJob).values(status="failed"))


def _stale_running(database: Database, job_id: int, phase: str) -> None:
    with database.session() as session:
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(
                status="running",
                phase=phase,
                attempts=ImportJob.attempts + 1,
                heartbeat_at=utcnow() - timedelta(minutes=5),
            )
        )


def test_a_job_whose_worker_stopped_while_reading_is_resumed_once_then_fails(
    database: Database, settings: Settings
) -> None:
    """A file that kills its worker (out of memory) would kill every worker it is given to."""
    storage = UploadStorage(settings.home / "uploads")
    job_id = _job(database, storage, b"sku,name\nR-1,Read\n")
    context = TaskContext(database=database, settings=settings)
    _stale_running(database, job_id, "Reading and validating")
    import_tasks.recover(context)
    job = _status(database, job_id)
    assert (job.status, job.phase) == ("queued", "Interrupted; will resume")
    assert job.warnings[0].startswith("The worker stopped while reading this file (after 0 rows)")

    _stale_running(database, job_id, "Opening the workbook")  # the second attempt dies too
    import_tasks.recover(context)
    job = _status(database, job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.error == (
        "The worker stopped twice while reading this file, possibly out of memory; it is not "
        "tried again. Nothing was imported. Limits while reading: rows up to 8 MiB each, and a "
        ".gz file up to 10,737,418,240 bytes decompressed "
        "(PRODUCT_IMPORTER_MAX_DECOMPRESSED_BYTES). Split the file into smaller ones, or save "
        "a big workbook as CSV, then upload it again."
    )
    assert skus(database) == {}


def test_a_resumed_job_keeps_the_note_and_a_shutdown_is_not_an_attempt(
    database: Database, settings: Settings
) -> None:
    storage = UploadStorage(settings.home / "uploads")
    job_id = _job(database, storage, big_file(50_000))
    context = TaskContext(database=database, settings=settings)
    _stale_running(database, job_id, "Reading and validating")
    import_tasks.recover(context)
    stopping = threading.Event()
    stopping.set()
    pipeline.run_import(database, storage, job_id, stopping)  # handed back at shutdown
    job = _status(database, job_id)
    assert (job.status, job.attempts) == ("queued", 1)
    pipeline.run_import(database, storage, job_id)
    job = _status(database, job_id)
    assert (job.status, job.attempts, len(skus(database))) == ("completed", 2, 50_000)
    assert job.warnings[0].startswith("The worker stopped while reading this file")


def test_an_orphan_whose_cancel_was_asked_is_cancelled_not_resumed(
    database: Database, settings: Settings
) -> None:
    storage = UploadStorage(settings.home / "uploads")
    job_id = _job(database, storage, b"sku,name\nC-1,Cancel\n", cancel_requested=True)
    _stale_running(database, job_id, "Cancelling")
    import_tasks.recover(TaskContext(database=database, settings=settings))
    assert _status(database, job_id).status == "cancelled"
