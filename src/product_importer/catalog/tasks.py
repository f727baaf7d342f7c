"""Background work for the catalogue: delete all products, and resume it after a crash; bring
the search index up to date.

The job runs on the "imports" queue and takes the catalogue lock imports take, so it never
interleaves with an import. The task opens and commits its own transactions.

SQLite: one transaction that erases the table and its search index wholesale (about a
second for a million rows); readers keep reading the old catalogue meanwhile (WAL), and a crash
rolls it back whole. PostgreSQL: TRUNCATE under a lock requested with a short timeout (readers
queue behind a waiting exclusive lock, so it must never wait long); if the lock cannot be had
after several tries, it deletes in batches of `products_delete_batch_rows` instead.

The search catch-up runs on the periodic schedule, in short turns of small transactions (see
catalog.search.catchup): a crash costs nothing, the next turn goes on.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import OperationalError

from product_importer.catalog import emptying, repository
from product_importer.catalog import service as catalog_service
from product_importer.catalog.locking import CatalogueLock
from product_importer.catalog.search import catchup
from product_importer.db import Database
from product_importer.tasks import registry
from product_importer.tasks.registry import TaskContext

log = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 60.0
MAX_ATTEMPTS = 5
TRUNCATE_ATTEMPTS = 10
TRUNCATE_LOCK_TIMEOUT_MS = 500
BATCH_PAUSE_SECONDS = 0.02  # lets a waiting writer in between batches
LOCK_NOT_AVAILABLE = "55P03"


class Interrupted(Exception):
    """The process is stopping; the job stays unfinished and is resumed later."""


@registry.task(catalog_service.DELETE_ALL_TASK, queue="imports")
def delete_all(context: TaskContext, job_id: int) -> None:
    database = context.database
    with database.session() as session:
        claimed = catalog_service.claim_delete_job(
            session, job_id, catalog_service.stale_cutoff(STALE_AFTER_SECONDS)
        )
    if not claimed:
        return  # finished already, or a live worker has it
    lock = CatalogueLock(database)
    try:
        while not lock.try_acquire():
            _heartbeat(database, job_id)
            if context.stopping.wait(1.0):
                return
        if database.dialect == "sqlite":
            _sqlite_delete_all(database, job_id)
        elif not _truncate(context, job_id):
            _delete_in_batches(context, job_id)
    except Interrupted:
        log.info("delete-all job %s interrupted; it resumes on the next start", job_id)
    except Exception as exc:
        log.exception("delete-all job %s failed", job_id)
        _fail(database, job_id, f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
    finally:
        lock.release()


def _heartbeat(database: Database, job_id: int) -> None:
    with database.session() as session:
        catalog_service.record_delete_progress(session, job_id, 0)


def _truncate(context: TaskContext, job_id: int) -> bool:
    for _attempt in range(TRUNCATE_ATTEMPTS):
        try:
            with context.database.session() as session:
                deleted = emptying.pg_truncate(
                    session,
                    TRUNCATE_LOCK_TIMEOUT_MS,
                    lambda: catalog_service.record_delete_all(session, job_id),
                )
                catalog_service.set_delete_total(session, job_id, deleted)
                catalog_service.record_delete_progress(session, job_id, deleted)
                catalog_service.complete_delete_job(session, job_id)
            return True
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            _heartbeat(context.database, job_id)
            if context.stopping.wait(0.5):
                raise Interrupted from None
    log.info("delete-all job %s: products stayed locked; deleting in batches", job_id)
    return False


def _sqlite_delete_all(database: Database, job_id: int) -> None:
    with database.session() as session:
        # Write first, so the transaction waits for the write lock instead of failing when
        # another writer commits between a read and the first write.
        catalog_service.record_delete_progress(session, job_id, 0)
        catalog_service.record_delete_all(session, job_id)
        deleted = emptying.sqlite_delete_all(session)
        catalog_service.set_delete_total(session, job_id, deleted)
        catalog_service.record_delete_progress(session, job_id, deleted)
        catalog_service.complete_delete_job(session, job_id)


def _delete_in_batches(context: TaskContext, job_id: int) -> None:
    database = context.database
    batch = context.settings.products_delete_batch_rows
    with database.session() as session:
        catalog_service.set_delete_total(session, job_id, repository.count_all(session))
    while True:
        with database.session() as session:
            deleted = emptying.delete_first(
                session,
                batch,
                lambda high: catalog_service.record_delete_all(session, job_id, high),
            )
            catalog_service.record_delete_progress(session, job_id, deleted)
            if deleted < batch:
                catalog_service.complete_delete_job(session, job_id)
                return
        if context.stopping.wait(BATCH_PAUSE_SECONDS):
            raise Interrupted


def _fail(database: Database, job_id: int, reason: str) -> None:
    with database.session() as session:
        catalog_service.fail_delete_job(session, job_id, reason)


@registry.periodic("catalog.recover_delete_all", every_seconds=30)
def recover_delete_all(context: TaskContext) -> None:
    """Resume delete-all jobs whose worker died (or whose queued task was lost)."""
    cutoff = catalog_service.stale_cutoff(STALE_AFTER_SECONDS)
    with context.database.session() as session:
        stale = catalog_service.stale_delete_jobs(session, cutoff)
        retry = [job for job in stale if job.attempts < MAX_ATTEMPTS]
        for job in retry:
            log.warning("resuming delete-all job %s (attempt %s)", job.id, job.attempts + 1)
            catalog_service.requeue_delete_job(session, job)
        given_up = [job.id for job in stale if job.attempts >= MAX_ATTEMPTS]
    for job_id in given_up:
        _fail(context.database, job_id, f"Gave up after {MAX_ATTEMPTS} interrupted attempts.")


# --- search catch-up -----------------------------------------------------------------------


@registry.periodic("catalog.search_catchup", every_seconds=0.5)
def search_catchup(context: TaskContext) -> None:
    """Move fresh products into the search index for a short turn (see catalog.search.catchup)."""
    if not context.settings.search_catchup:
        return
    started = time.perf_counter()
    moved = catchup.catch_up(context.database, context.stopping)
    if moved:
        log.debug(
            "search index: %s products caught up in %.2fs", moved, time.perf_counter() - started
        )
