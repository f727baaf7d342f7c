"""Removing stored upload files that no import needs any more.

A completed import's file is removed when it completes. A failed or cancelled import keeps its
file so that Retry can run it again, for `upload_retention_days`; after that the file is removed
and Retry asks for a new upload. Files no import refers to (a process died between storing an
upload and recording its job) are removed once they have been seen unreferenced for a grace
period, long enough for any upload that is being recorded right now to get its job row.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from product_importer.db import Database
from product_importer.imports.models import ImportJob
from product_importer.imports.storage import UploadStorage

log = logging.getLogger(__name__)

ORPHAN_GRACE_SECONDS = 3600.0


@dataclass
class OrphanWatch:
    """When each unreferenced key was first seen by this process (monotonic seconds)."""

    first_seen: dict[str, float] = field(default_factory=dict)


@dataclass
class PruneResult:
    expired: int = 0
    orphans: int = 0


def prune_stored_uploads(
    database: Database,
    storage: UploadStorage,
    retention_days: float,
    now: datetime,
    watch: OrphanWatch,
    grace_seconds: float = ORPHAN_GRACE_SECONDS,
) -> PruneResult:
    result = PruneResult()
    cutoff = now - timedelta(days=retention_days)
    with database.session() as session:
        expired = list(
            session.execute(
                select(ImportJob.id, ImportJob.storage_key, ImportJob.status).where(
                    ImportJob.storage_key != "",
                    or_(
                        # Normally removed on completion; this catches a crash in between.
                        ImportJob.status == "completed",
                        and_(
                            ImportJob.status.in_(("failed", "cancelled")),
                            ImportJob.finished_at < cutoff,
                        ),
                    ),
                )
            )
        )
    for job_id, key, status in expired:
        # Forget the key first: a Retry racing with this sweep then says "upload it again"
        # instead of starting on a file that is about to disappear.
        with database.session() as session:
            if not _forget_key(session, job_id, key):
                continue
        storage.delete(key)
        if status != "completed":
            result.expired += 1
            log.info("import %s: removed its stored file after the retention period", job_id)

    # Keys first, then the references: an upload stored between the two reads is referenced
    # by then, or is still within its grace period.
    stored = set(storage.stored_keys())
    with database.session() as session:
        referenced = set(
            session.scalars(select(ImportJob.storage_key).where(ImportJob.storage_key != ""))
        )
    clock = time.monotonic()
    orphans = stored - referenced
    for key in list(watch.first_seen):
        if key not in orphans:
            del watch.first_seen[key]
    for key in orphans:
        first = watch.first_seen.setdefault(key, clock)
        if clock - first >= grace_seconds:
            storage.delete(key)
            del watch.first_seen[key]
            result.orphans += 1
            log.info("removed a stored upload that no import refers to (%s)", key)
    return result


def _forget_key(session: Session, job_id: int, key: str) -> bool:
    result = session.execute(
        update(ImportJob)
        .where(
            ImportJob.id == job_id,
            ImportJob.storage_key == key,
            ImportJob.status.in_(("failed", "cancelled", "completed")),
        )
        .values(storage_key="")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
