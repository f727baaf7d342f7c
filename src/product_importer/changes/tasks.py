"""Background work for change sets: run an undo or a large bulk action, resume them after a
crash, and prune records past retention.

A job takes the catalogue lock (the one imports and delete-all take) before it is claimed, so
a `running` job always has a live holder of the lock and never overlaps an import. Its work is
one transaction that also marks it completed: a crash (even `kill -9`) rolls everything back,
and the recovery sweep queues it again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from product_importer.catalog.locking import CatalogueLock
from product_importer.changes import bulk
from product_importer.changes import service as changes_service
from product_importer.db import Database, utcnow
from product_importer.history import repository
from product_importer.history.models import ChangeSet
from product_importer.tasks import registry
from product_importer.tasks.registry import TaskContext

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# A queued job's task refreshes the heartbeat while it waits for the lock; a running job's
# worker holds the lock. Either way, a job older than this with the lock free was lost.
STALE_AFTER = timedelta(seconds=10)
PRUNE_BATCH = 20


def live_key(database: Database, change_id: int) -> tuple[str, int]:
    return (database.engine.url.render_as_string(hide_password=True), change_id)


@registry.task(changes_service.RUN_TASK, queue="imports")
def run(context: TaskContext, change_id: int) -> None:
    database = context.database
    lock = CatalogueLock(database)
    while not lock.try_acquire():
        with database.session() as session:
            if changes_service.status_of(session, change_id) != "queued":
                return
            changes_service.touch(session, change_id)
        if context.stopping.wait(0.25):
            return
    key = live_key(database, change_id)
    try:
        with database.session() as session:
            claimed = changes_service.claim(session, change_id)
        if not claimed:
            return
        changes_service.set_live_percent(key, 1.0)
        try:
            with database.session() as session:
                # A write first: on SQLite the transaction then holds the write lock from the
                # start instead of failing to upgrade a read later.
                changes_service.touch(session, change_id)
                change = changes_service.get(session, change_id)
                if change.kind == "undo":
                    changes_service.run_undo(
                        session, change, lambda p: changes_service.set_live_percent(key, p)
                    )
                else:
                    bulk.run_job(
                        session, change, lambda p: changes_service.set_live_percent(key, p)
                    )
        except (
            changes_service.NotUndoable,
            changes_service.RemovesEverything,
            bulk.TotalMismatch,
            bulk.InvalidRequest,
        ) as exc:
            _fail(database, change_id, str(exc))
        except SQLAlchemyError as exc:
            log.exception("change %s failed on a database error", change_id)
            _fail(
                database,
                change_id,
                f"Database error: {type(exc).__name__}. Nothing was changed.",
            )
        except Exception as exc:
            log.exception("change %s failed", change_id)
            _fail(
                database, change_id, f"Internal error ({type(exc).__name__}). Nothing was changed."
            )
    finally:
        changes_service.set_live_percent(key, None)
        lock.release()


def _fail(database: Database, change_id: int, reason: str) -> None:
    with database.session() as session:
        changes_service.fail(session, change_id, reason)


@registry.periodic("changes.recover", every_seconds=5)
def recover(context: TaskContext) -> None:
    """Queue again the jobs a crash or a lost message left behind (while nothing holds the
    catalogue lock, a running job has lost its worker); give up after MAX_ATTEMPTS."""
    database = context.database
    with database.session() as session:
        stale = [job.id for job in changes_service.stale_jobs(session, utcnow() - STALE_AFTER)]
    if not stale:
        return
    lock = CatalogueLock(database)
    if not lock.try_acquire():
        return
    try:
        with database.session() as session:
            for job_id in stale:
                job = session.get(ChangeSet, job_id)
                if job is None or job.status not in changes_service.ACTIVE:
                    continue
                if job.attempts >= MAX_ATTEMPTS:
                    changes_service.fail(
                        session,
                        job.id,
                        f"Interrupted {job.attempts} times (the worker stopped); nothing was "
                        "changed. Try again when the server is stable.",
                    )
                else:
                    log.warning("change %s: its worker stopped; queued again", job.id)
                    changes_service.requeue(session, job)
    finally:
        lock.release()


@registry.periodic("changes.prune", every_seconds=600)
def prune(context: TaskContext) -> None:
    """Remove the per-product records of change sets past retention (the change set itself
    stays, marked pruned: it shows in the list but can no longer be undone)."""
    prune_expired(context.database, context.settings.history_retention_days)


def prune_expired(database: Database, retention_days: float) -> int:
    pruned = 0
    while True:
        with database.session() as session:
            ids = changes_service.expired(session, retention_days, PRUNE_BATCH)
        for change_id in ids:
            with database.session() as session:  # one change set per transaction
                repository.prune(session, change_id)
            pruned += 1
        if len(ids) < PRUNE_BATCH:
            return pruned
