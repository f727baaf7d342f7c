"""`product-importer feed list` and `feed run NAME|ID`: a feed's run, here and now."""

from __future__ import annotations

from product_importer.db import Database
from product_importer.feeds import runs, service
from product_importer.feeds.models import FeedRun
from product_importer.feeds.schemas import FeedRead, FeedRunRead
from product_importer.imports import pipeline
from product_importer.imports.storage import storage_for
from product_importer.settings import Settings


class CommandError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def listing(settings: Settings, database: Database) -> str:
    with database.session() as session:
        feeds = [service.read(session, settings, feed) for feed in service.list_all(session)]
    if not feeds:
        return "No feeds. Add one on the Feeds page or with POST /api/feeds."
    return "\n".join(_line(feed) for feed in feeds)


def _line(feed: FeedRead) -> str:
    nxt = feed.next_run_at.isoformat(timespec="minutes") if feed.next_run_at else "disabled"
    last = feed.last_run.status if feed.last_run else "never run"
    alert = f"  ALERT: {feed.consecutive_failures} failures in a row" if feed.alerting else ""
    return (
        f"{feed.id:>4}  {feed.name}  [{feed.schedule_text}]  next: {nxt}  last: {last}"
        f"  mirror: {feed.missing}{alert}"
    )


def run(
    settings: Settings, database: Database, name_or_id: str, dry_run: bool, confirm: bool
) -> FeedRunRead:
    """Fetch and import in this process (the server's scheduler is not involved)."""
    with database.session() as session:
        try:
            feed = service.find(session, name_or_id.strip())
        except service.FeedNotFound:
            names = ", ".join(f.name for f in service.list_all(session)) or "none"
            raise CommandError(
                f"no feed named or numbered {name_or_id!r} (feeds: {names})."
            ) from None
        try:
            run_id = service.request_run(
                session,
                feed,
                trigger="cli",
                requested_by="cli",
                dry_run=dry_run,
                confirm_missing=confirm,
            ).id
        except service.RunInProgress as exc:
            raise CommandError(str(exc), 1) from None
    runs.execute(database, settings, run_id)
    with database.session() as session:
        job_id = session.get(FeedRun, run_id).import_job_id  # type: ignore[union-attr]
    if job_id is not None:
        pipeline.run_import(
            database,
            storage_for(settings, database),
            job_id,
            None,
            settings.max_decompressed_bytes,
        )
        runs.settle(database)
    with database.session() as session:
        return service.run_read(session, service.get_run(session, feed.id, run_id))


def summary(run: FeedRunRead) -> str:
    lines = [f"Feed run {run.id}: {run.status}" + (" (dry run)" if run.dry_run else "")]
    if run.filename:
        lines.append(f"  file {run.filename}, {run.bytes or 0:,} bytes")
    if run.import_job_id is not None:
        lines.append(
            f"  import {run.import_job_id}: created {run.rows_created or 0:,}, updated "
            f"{run.rows_updated or 0:,}, not in the file {run.rows_missing or 0:,}"
        )
    if run.reason:
        lines.append(f"  {run.reason}")
    return "\n".join(lines)
