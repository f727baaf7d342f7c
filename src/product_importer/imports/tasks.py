"""Import work for the dispatch seam: run a job, and recover jobs cut short by a crash."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from product_importer.catalog.locking import CatalogueLock
from product_importer.catalog.search import catchup
from product_importer.db import utcnow
from product_importer.imports import pipeline
from product_importer.imports.models import ImportJob
from product_importer.imports.reading import MAX_ROW_CHARS
from product_importer.imports.retention import OrphanWatch, prune_stored_uploads
from product_importer.imports.service import RUN_TASK, import_ready_to_start
from product_importer.imports.storage import storage_for
from product_importer.tasks.dispatch import enqueue
from product_importer.tasks.registry import TaskContext, periodic, task, waiting_check

log = logging.getLogger(__name__)

RECOVERY_INTERVAL_SECONDS = 5.0
# A worker holds the catalogue lock for as long as its job is running, so a running job with
# the lock free has lost its worker. The heartbeat (refreshed twice a second outside a SQLite
# merge) is a second check, against a lock lost with a dropped database connection.
STALE_AFTER = timedelta(seconds=3)
# Distributed mode: a job queued this long while no import runs has lost its broker message (a
# broker restarted without persistence); it is sent again, at most this often.
RESEND_QUEUED_AFTER_SECONDS = 10.0
_queues_resent: set[str] = set()
PRUNE_UPLOADS_INTERVAL_SECONDS = 600.0
_orphan_watch = OrphanWatch()
_resent_at: dict[int, float] = {}


@catchup.yields_to
def an_import_runs(session: Session) -> bool:
    """The search catch-up waits while an import runs: on two cores it would take one from the
    import, and its index writes would queue behind the merge's lock anyway."""
    return bool(session.scalar(select(exists().where(ImportJob.status == "running"))))


@task(RUN_TASK, queue="imports")
def run(context: TaskContext, job_id: int) -> None:
    pipeline.run_import(
        context.database,
        storage_for(context.settings, context.database),
        job_id,
        context.stopping,
        context.settings.max_decompressed_bytes,
    )


# A worker that takes the imports queue and others asks this before another delivery turn.
waiting_check("imports")(import_ready_to_start)


@periodic("imports.prune_uploads", every_seconds=PRUNE_UPLOADS_INTERVAL_SECONDS)
def prune_uploads(context: TaskContext) -> None:
    """Remove stored files of old failed/cancelled imports and files no import refers to."""
    prune_stored_uploads(
        context.database,
        storage_for(context.settings, context.database),
        context.settings.upload_retention_days,
        utcnow(),
        _orphan_watch,
    )


@periodic("imports.recover", every_seconds=RECOVERY_INTERVAL_SECONDS)
def recover(context: TaskContext) -> None:
    """Resume what a crash left behind. A job marked running while nobody holds the catalogue
    lock has lost its worker: finish it if its merge committed, else queue it again (up to
    MAX_ATTEMPTS). At start-up, queued jobs are sent to the workers again."""
    database = context.database
    identity = database.engine.url.render_as_string(hide_password=True)
    resend_queue = identity not in _queues_resent
    _queues_resent.add(identity)
    with database.session() as session:
        orphans = list(
            session.scalars(
                select(ImportJob.id).where(
                    ImportJob.status == "running", ImportJob.heartbeat_at < utcnow() - STALE_AFTER
                )
            )
        )
    if orphans:
        lock = CatalogueLock(database)
        if lock.try_acquire():
            try:
                for job_id in orphans:
                    _recover_orphan(context, job_id)
            finally:
                lock.release()
            resend_queue = True
    if resend_queue:
        with database.session() as session:
            queued = session.scalars(
                select(ImportJob.id).where(ImportJob.status == "queued").order_by(ImportJob.id)
            )
            resent = list(queued)
            for job_id in resent:
                enqueue(session, RUN_TASK, job_id=job_id)
        log.info("recovery: queued imports sent to the workers again: %s", resent or "none")
    elif context.settings.distributed:
        _resend_forgotten(context)


def _resend_forgotten(context: TaskContext) -> None:
    """Send again queued jobs that wait while the catalogue is free: their message is lost.
    A duplicate message does no harm (a job is claimed once)."""
    database = context.database
    cutoff = utcnow() - timedelta(seconds=RESEND_QUEUED_AFTER_SECONDS)
    with database.session() as session:
        waiting = list(
            session.scalars(
                select(ImportJob.id)
                .where(ImportJob.status == "queued", ImportJob.created_at < cutoff)
                .order_by(ImportJob.id)
            )
        )
    now = time.monotonic()
    for job_id in set(_resent_at) - set(waiting):
        del _resent_at[job_id]
    due = [
        job_id
        for job_id in waiting
        if now - _resent_at.get(job_id, -RESEND_QUEUED_AFTER_SECONDS) >= RESEND_QUEUED_AFTER_SECONDS
    ]
    if not due:
        return
    lock = CatalogueLock(database)
    if not lock.try_acquire():
        return  # an import or a delete-all is running; the waiting jobs' turn has not come
    lock.release()
    log.warning("imports %s waited with the catalogue free; sending them again", due)
    with database.session() as session:
        for job_id in due:
            _resent_at[job_id] = now
            enqueue(session, RUN_TASK, job_id=job_id)


def _recover_orphan(context: TaskContext, job_id: int) -> None:
    """A job whose worker stopped without handing it back (killed, out of memory, power lost).
    Resuming blindly could kill the next worker the same way, so: a job whose worker stopped
    while reading its file is resumed once (the file may not be the cause) and fails the second
    time; one stopped in the merge is resumed up to MAX_ATTEMPTS; a cancel asked for is done."""
    database = context.database
    with database.session() as session:
        job = session.get(ImportJob, job_id)
        if job is None or job.status != "running":
            return
        phase, attempts, cancel = job.phase, job.attempts, job.cancel_requested
        warnings, rows = list(job.warnings or []), job.rows_processed
    if phase == "Merged":
        log.info("import %s: its merge had committed; marking it completed", job_id)
        pipeline.complete_merged(database, storage_for(context.settings, context.database), job_id)
        return
    if cancel:
        log.info("import %s: its worker stopped; cancelled as asked", job_id)
        pipeline.mark_cancelled(database, job_id)
        return
    reading = phase in pipeline.READING_PHASES
    if reading and pipeline.stopped_while_reading_before(warnings):
        log.warning("import %s: its worker stopped while reading it twice; giving up", job_id)
        pipeline.fail(database, job_id, _stopped_reading_twice(context))
        return
    if not reading and attempts >= pipeline.MAX_ATTEMPTS:
        log.warning("import %s: interrupted %s times; giving up", job_id, attempts)
        pipeline.fail(
            database,
            job_id,
            f"The import was interrupted {attempts} times (the worker stopped). "
            "Nothing was imported; retry it when the server is stable.",
        )
        return
    if reading:
        warnings.append(
            f"{pipeline.STOPPED_WHILE_READING} (after {rows:,} rows); it was started again. "
            "If it stops again while reading, the import fails."
        )
    log.info("import %s: its worker stopped (%s); queued again", job_id, phase)
    with database.session() as session:
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.status == "running")
            .values(
                status="queued",
                phase="Interrupted; will resume",
                percent=0.0,
                warnings=warnings,
            )
        )


def _stopped_reading_twice(context: TaskContext) -> str:
    return (
        "The worker stopped twice while reading this file, possibly out of memory; it is not "
        "tried again. Nothing was imported. Limits while reading: rows up to "
        f"{MAX_ROW_CHARS // (1024 * 1024)} MiB each, and a .gz file up to "
        f"{context.settings.max_decompressed_bytes:,} bytes decompressed "
        "(PRODUCT_IMPORTER_MAX_DECOMPRESSED_BYTES). Split the file into smaller ones, or save "
        "a big workbook as CSV, then upload it again."
    )
