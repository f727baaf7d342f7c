"""A worker that takes imports and other queues lets delivery turns end early only while an
import could start (one queued, none running), and asks the database at most once a second."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import update

from product_importer.db import Database
from product_importer.imports.models import ImportJob
from product_importer.imports.service import import_ready_to_start
from product_importer.tasks.celery_app import ImportWaitingCheck
from product_importer.tasks.registry import TaskContext
from tests.conftest import make_settings


def _add(database: Database, status: str) -> int:
    with database.session() as session:
        job = ImportJob(filename="f.csv", status=status)
        session.add(job)
        session.flush()
        return job.id


def _ready(database: Database) -> bool:
    with database.session() as session:
        return import_ready_to_start(session)


def test_an_import_is_ready_to_start_only_when_queued_with_none_running(
    database: Database,
) -> None:
    assert not _ready(database)  # nothing at all
    _add(database, "completed")
    _add(database, "failed")
    assert not _ready(database)
    queued = _add(database, "queued")
    assert _ready(database)
    running = _add(database, "running")
    assert not _ready(database)  # it waits for the running one, not for a thread
    with database.session() as session:
        session.execute(update(ImportJob).where(ImportJob.id == running).values(status="completed"))
    assert _ready(database)
    with database.session() as session:
        session.execute(update(ImportJob).where(ImportJob.id == queued).values(status="cancelled"))
    assert not _ready(database)


def test_the_check_asks_at_most_once_per_interval(database: Database) -> None:
    check = ImportWaitingCheck(database, every_seconds=0.3)
    assert check() is False
    _add(database, "queued")
    assert check() is False  # the answer of a moment ago
    time.sleep(0.35)
    assert check() is True


def test_embedded_mode_never_asks(database: Database, tmp_path: Path) -> None:
    _add(database, "queued")
    settings = make_settings(tmp_path, "sqlite://")
    assert TaskContext(database=database, settings=settings).import_waiting() is False
