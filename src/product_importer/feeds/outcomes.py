"""How a run ends: its outcome from its import's, and the feed's failure streak with the
`feed.failed` event when the streak reaches the feed's alert threshold."""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.orm import Session

from product_importer.db import utcnow
from product_importer.feeds.models import Feed, FeedRun
from product_importer.imports.models import ImportJob
from product_importer.webhooks import events

log = logging.getLogger(__name__)

FEED_FAILED = "feed.failed"


def end(run: FeedRun, status: str, reason: str | None = None) -> None:
    run.status, run.reason, run.finished_at = status, reason, utcnow()


def settle_run(session: Session, run: FeedRun, job: ImportJob | None) -> None:
    """End a run whose import has ended (or vanished). Whoever moves the run out of
    `importing` first settles it, so the streak counts each run once."""
    feed = session.get(Feed, run.feed_id)
    if feed is None:
        return
    session.flush()
    claimed = session.execute(
        update(FeedRun)
        .where(FeedRun.id == run.id, FeedRun.status == "importing")
        .values(status="settling")
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        session.refresh(run)
        return
    if job is None:
        end(run, "failed", "The import of this run was deleted.")
    elif job.status == "completed":
        end(run, "refused" if job.refused else "imported", job.error)
        if run.dry_run:
            return
        feed.etag, feed.last_modified = run.etag, run.last_modified
        feed.content_sha256 = run.content_sha256
        count_success(feed)
        return
    elif job.refused:
        end(run, "refused", job.error)
    elif job.status == "cancelled":
        end(run, "failed", "The import was cancelled.")
    else:
        end(run, "failed", job.error or "The import failed.")
    if not run.dry_run:
        count_failure(session, feed, run)


def count_success(feed: Feed) -> None:
    feed.consecutive_failures = 0


def count_failure(session: Session, feed: Feed, run: FeedRun) -> None:
    """One more failure in a row; the run that reaches the alert threshold sends the event."""
    if run.dry_run:
        return
    feed.consecutive_failures += 1
    if feed.consecutive_failures == feed.failure_alert_after:
        log.warning(
            "feed %s (%s) failed %s times in a row: %s",
            feed.id,
            feed.name,
            feed.consecutive_failures,
            run.reason,
        )
        events.record(
            session,
            FEED_FAILED,
            {
                "feed_id": feed.id,
                "name": feed.name,
                "consecutive_failures": feed.consecutive_failures,
                "run_id": run.id,
                "outcome": run.status,
                "reason": run.reason,
                "import_job_id": run.import_job_id,
            },
        )
