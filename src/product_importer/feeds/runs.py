"""A feed's run: fetch the file, skip it when unchanged, else import it as an upload is
imported; and once the import has ended, the run's outcome and the feed's failure streak."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from product_importer.db import Database, utcnow
from product_importer.feeds import fetching, outcomes, secrets
from product_importer.feeds.models import Feed, FeedRun
from product_importer.feeds.service import RUN_TASK, limits
from product_importer.imports import service as import_service
from product_importer.imports.mirror import MirrorOptions
from product_importer.imports.models import TERMINAL_STATUSES, ImportJob, ImportMapping
from product_importer.imports.sources import ReadOptions
from product_importer.imports.storage import storage_for
from product_importer.settings import Settings
from product_importer.tasks.dispatch import enqueue

# A run that has fetched for this long has lost its worker (the read timeout bounds every
# wait, so a live download never stalls this long without the run hearing of it).
FETCH_GIVEN_UP_AFTER = timedelta(hours=6)
# A queued run whose task message was lost (no dispatcher, a broker restarted) is sent again.
RESEND_QUEUED_AFTER = timedelta(seconds=30)
_resent_at: dict[int, datetime] = {}


def source_of(settings: Settings, feed: Feed) -> fetching.Source:
    credentials = secrets.unseal(settings, feed.secrets)
    return fetching.Source(
        url=feed.url,
        headers=dict(credentials.get("headers") or {}),
        username=credentials.get("username"),
        password=credentials.get("password"),
        private_key=credentials.get("private_key"),
        host_key=feed.host_key,
    )


def read_options(session: Session, feed: Feed) -> ReadOptions:
    """How the feed's file is read: its saved mapping (with that mapping's reading options)
    or its own mapping, then its own reading options over those."""
    mapping = feed.mapping
    options: dict[str, Any] = {}
    if feed.mapping_id is not None:
        saved = session.get(ImportMapping, feed.mapping_id)
        if saved is not None:
            mapping = dict(saved.mapping)
            options.update(saved.options or {})
    options.update(feed.options or {})
    return ReadOptions(mapping=mapping, encoding=feed.encoding, sheet=feed.sheet, **options)


def _claim(database: Database, run_id: int) -> bool:
    """queued -> fetching, once: a task delivered twice runs once."""
    with database.session() as session:
        moved = session.execute(
            update(FeedRun)
            .where(FeedRun.id == run_id, FeedRun.status == "queued")
            .values(status="fetching", started_at=utcnow())
        )
        return getattr(moved, "rowcount", 0) == 1


def execute(
    database: Database, settings: Settings, run_id: int, stopping: threading.Event | None = None
) -> None:
    """Fetch the run's file and hand it to the import (which runs as any import does)."""
    if not _claim(database, run_id):
        return
    storage = storage_for(settings, database)
    with database.session() as session:
        run = session.get(FeedRun, run_id)
        feed = session.get(Feed, run.feed_id) if run else None
        if run is None or feed is None:
            return
        try:
            source = source_of(settings, feed)
        except secrets.SecretsUnreadable as exc:
            outcomes.end(run, "failed", str(exc))
            outcomes.count_failure(session, feed, run)
            return
        known = (
            fetching.Known()
            if run.dry_run
            else fetching.Known(feed.etag, feed.last_modified, feed.content_sha256)
        )
        feed_id, feed_name = feed.id, feed.name
    key = storage.new_key(".feed")
    try:
        with storage.open_write(key) as sink:
            fetched = fetching.fetch(source, known, limits(settings), sink)
    except fetching.FetchFailed as exc:
        storage.delete(key)
        with database.session() as session:
            run = session.get(FeedRun, run_id)
            feed = session.get(Feed, feed_id)
            if run is not None and feed is not None:
                run.http_status, run.host_key = exc.http_status, exc.host_key
                outcomes.end(run, "failed", str(exc))
                outcomes.count_failure(session, feed, run)
        return
    except BaseException:
        storage.delete(key)
        with database.session() as session:
            run = session.get(FeedRun, run_id)
            if run is not None:
                outcomes.end(run, "failed", "The run stopped on an internal error.")
        raise
    with database.session() as session:
        run = session.get(FeedRun, run_id)
        feed = session.get(Feed, feed_id)
        if run is None or feed is None:
            storage.delete(key)
            return
        run.filename = fetched.filename[:500]
        run.bytes, run.http_status = fetched.size, fetched.http_status
        run.host_key = fetched.host_key
        run.etag, run.last_modified = fetched.etag, fetched.last_modified
        run.content_sha256 = fetched.sha256
        if fetched.unchanged:
            storage.delete(key)
            outcomes.end(run, "unchanged", _unchanged_reason(fetched))
            outcomes.count_success(feed)
            return
        job = import_service.start_import(
            session,
            filename=_import_name(fetched.filename, feed_name),
            storage_key=key,
            total_bytes=fetched.size,
            dry_run=run.dry_run,
            created_by=f"feed: {feed_name}"[:150],
            options=read_options(session, feed),
            mirror=MirrorOptions(
                missing=feed.missing,
                max_missing_percent=feed.max_missing_percent,
                confirm_missing=run.confirm_missing,
            ),
            feed_id=feed.id,
        )
        run.import_job_id = job.id
        run.status = "importing"


def _unchanged_reason(fetched: fetching.Fetched) -> str:
    if fetched.http_status == 304:
        return "The server says the file has not changed since the last import (HTTP 304)."
    return "The file is the same as the one last imported (same SHA-256); nothing to import."


def _import_name(filename: str, feed_name: str) -> str:
    name = PurePosixPath(filename).name or "feed"
    return f"{name} (feed {feed_name})"[:255]


def settle(database: Database) -> None:
    """End the runs whose import has ended; send again queued runs whose message was lost;
    give up on runs whose worker died mid-fetch."""
    now = utcnow()
    with database.session() as session:
        importing = session.scalars(
            select(FeedRun).where(FeedRun.status == "importing").order_by(FeedRun.id)
        ).all()
        for run in importing:
            job = session.get(ImportJob, run.import_job_id) if run.import_job_id else None
            if job is not None and job.status not in TERMINAL_STATUSES:
                continue
            outcomes.settle_run(session, run, job)
        stale = session.scalars(
            select(FeedRun).where(
                FeedRun.status == "fetching", FeedRun.started_at < now - FETCH_GIVEN_UP_AFTER
            )
        ).all()
        for run in stale:
            outcomes.end(run, "failed", "The run was interrupted: its worker stopped.")
        lost = session.scalars(
            select(FeedRun.id).where(
                FeedRun.status == "queued", FeedRun.created_at < now - RESEND_QUEUED_AFTER
            )
        ).all()
        for run_id in lost:
            # Once per RESEND_QUEUED_AFTER: a run waiting for a busy thread is not sent again
            # at every turn (a second message would find it claimed and do nothing, but pile up).
            if now - _resent_at.get(run_id, now - RESEND_QUEUED_AFTER) >= RESEND_QUEUED_AFTER:
                _resent_at[run_id] = now
                enqueue(session, RUN_TASK, run_id=run_id)
