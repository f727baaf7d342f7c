"""Feeds: saving them, reading them, and asking for a run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from product_importer.db import utcnow
from product_importer.feeds import fetching, outcomes, schedule, secrets
from product_importer.feeds.models import RUNNING_STATES, Feed, FeedRun
from product_importer.feeds.schemas import FeedCreate, FeedRead, FeedRunRead, FeedUpdate
from product_importer.imports import fields as import_fields
from product_importer.imports import mapping as column_mapping
from product_importer.imports.models import TERMINAL_STATUSES, ImportJob, ImportMapping
from product_importer.imports.sources import parse_options
from product_importer.settings import Settings
from product_importer.tasks.dispatch import enqueue

RUN_TASK = "feeds.run"
READ_OPTIONS = ("decimal_separator", "empty_cells", "group_by", "variant_names")
CREDENTIALS = ("headers", "username", "password", "private_key")
# Changing these means the next file must be imported even if it is the same as the last.
_READING = ("url", "mapping", "mapping_id", "sheet", "encoding", *READ_OPTIONS)


class FeedNotFound(Exception):
    pass


class FeedNameTaken(Exception):
    pass


class FeedInvalid(Exception):
    """A value the API's schema let through but the feed cannot use; the message says why."""


class RunInProgress(Exception):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"A run of this feed is in progress (run {run_id}); wait for it to end.")
        self.run_id = run_id


def limits(settings: Settings) -> fetching.Limits:
    return fetching.Limits(
        max_bytes=settings.max_upload_bytes,
        connect_timeout=settings.feed_connect_timeout_seconds,
        read_timeout=settings.feed_read_timeout_seconds,
        allow_private=settings.feed_allow_private,
        allowed=tuple(settings.feed_allowed_hosts),
    )


def get(session: Session, feed_id: int) -> Feed:
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise FeedNotFound
    return feed


def find(session: Session, name_or_id: str) -> Feed:
    """A feed by its id or its name (case-insensitive), for the CLI."""
    if name_or_id.isdigit():
        found = session.get(Feed, int(name_or_id))
        if found is not None:
            return found
    feed = session.scalar(select(Feed).where(func.lower(Feed.name) == name_or_id.lower()))
    if feed is None:
        raise FeedNotFound
    return feed


def list_all(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.name)))


def check_source(session: Session, settings: Settings, values: dict[str, Any]) -> None:
    """What the schema cannot check alone: the source's shape and host, the mapping against
    the fields defined, a saved mapping that exists."""
    if "url" in values:
        try:
            values["url"] = fetching.check_source_url(values["url"])
            fetching.check_source_host(values["url"], limits(settings))
        except ValueError as exc:
            raise FeedInvalid(f"url: {exc}") from None
    if values.get("mapping") is not None:
        keys = [spec.key for spec in import_fields.specs(session)]
        try:
            values["mapping"] = column_mapping.check_mapping(values["mapping"], keys)
        except column_mapping.MappingInvalid as exc:
            raise FeedInvalid(f"mapping: {exc}") from None
    mapping_id = values.get("mapping_id")
    if mapping_id is not None and session.get(ImportMapping, mapping_id) is None:
        raise FeedInvalid(f"mapping_id: there is no saved mapping {mapping_id}.")
    if values.get("encoding") is not None:
        try:
            values["encoding"] = parse_options(encoding=values["encoding"]).encoding
        except column_mapping.MappingInvalid as exc:
            raise FeedInvalid(f"encoding: {exc}") from None


def _split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(columns of the feed, reading options, credentials) of a request's values."""
    credentials = {key: values.pop(key) for key in CREDENTIALS if key in values}
    options = {key: values.pop(key) for key in READ_OPTIONS if key in values}
    return values, options, credentials


def create(session: Session, settings: Settings, data: FeedCreate, actor: str) -> Feed:
    values, options, credentials = _split(data.model_dump())
    check_source(session, settings, values)
    kept_options = {key: value for key, value in options.items() if value is not None}
    now = utcnow()
    feed = Feed(
        **values,
        options=kept_options or None,
        secrets=secrets.seal(settings, credentials),
        created_by=actor[:150],
        created_at=now,
        updated_at=now,
        consecutive_failures=0,
    )
    feed.next_run_at = schedule.next_after(feed.schedule, feed.timezone, now)
    session.add(feed)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise FeedNameTaken(f"A feed named {data.name!r} exists already.") from None
    return feed


def change(
    session: Session, settings: Settings, feed_id: int, data: FeedUpdate
) -> tuple[Feed, list[str]]:
    """Change the fields given; answers the feed and the names of what changed."""
    feed = get(session, feed_id)
    values, options, credentials = _split(data.model_dump(exclude_unset=True))
    check_source(session, settings, values)
    key_confirmed = "host_key" in values  # even if it is the key saved already
    # A form sends every field; only what differs counts as changed (and, for the source and
    # how it is read, makes the next run import even an unchanged file).
    values = {key: value for key, value in values.items() if getattr(feed, key) != value}
    saved_options = feed.options or {}
    options = {key: value for key, value in options.items() if saved_options.get(key) != value}
    if credentials:
        saved = _readable_credentials(settings, feed)
        credentials = {
            k: v for k, v in credentials.items() if (saved.get(k) or None) != (v or None)
        }
    changed = sorted([*values, *options, *credentials])
    for key, value in values.items():
        setattr(feed, key, value)
    if options:
        merged = dict(feed.options or {}) | options
        feed.options = {key: value for key, value in merged.items() if value is not None} or None
    if credentials:
        kept = _readable_credentials(settings, feed) | credentials
        feed.secrets = secrets.seal(settings, kept)
    if "url" in values and not key_confirmed:
        feed.host_key = None  # another server: its key is confirmed again
    if any(key in changed for key in _READING):
        feed.etag = feed.last_modified = feed.content_sha256 = None
    if {"schedule", "timezone", "enabled"} & set(changed):
        feed.next_run_at = schedule.next_after(feed.schedule, feed.timezone, utcnow())
    feed.updated_at = utcnow()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise FeedNameTaken(f"A feed named {data.name!r} exists already.") from None
    return feed, changed


def _readable_credentials(settings: Settings, feed: Feed) -> dict[str, Any]:
    """The saved credentials, or none when the secret key changed since (the new ones given
    then replace them all)."""
    try:
        return secrets.unseal(settings, feed.secrets)
    except secrets.SecretsUnreadable:
        return {}


def delete(session: Session, feed_id: int) -> Feed:
    feed = get(session, feed_id)
    session.delete(feed)
    session.flush()
    return feed


def running_run(session: Session, feed_id: int) -> FeedRun | None:
    return session.scalar(
        select(FeedRun)
        .where(FeedRun.feed_id == feed_id, FeedRun.status.in_(RUNNING_STATES))
        .order_by(FeedRun.id)
        .limit(1)
    )


def request_run(
    session: Session,
    feed: Feed,
    *,
    trigger: str,
    requested_by: str,
    dry_run: bool = False,
    confirm_missing: bool = False,
) -> FeedRun:
    """Record a run now and send it to a worker once the session commits."""
    busy = running_run(session, feed.id)
    if busy is not None:
        raise RunInProgress(busy.id)
    run = FeedRun(
        feed_id=feed.id,
        trigger=trigger,
        dry_run=dry_run,
        confirm_missing=confirm_missing,
        requested_by=requested_by[:150],
        status="queued",
        created_at=utcnow(),
    )
    session.add(run)
    session.flush()
    enqueue(session, RUN_TASK, run_id=run.id)
    return run


def claim_due(session: Session, now: datetime) -> list[int]:
    """Record one run for each feed whose due time has come, and move its due time to the
    next one after now: a fleet that was down over several due times runs once, not once per
    missed time. The move is a compare-and-set on the due time, and a run's due time is
    unique per feed, so two schedulers that see the same feed due record one run."""
    claimed: list[int] = []
    due = session.scalars(
        select(Feed).where(Feed.enabled.is_(True), Feed.next_run_at <= now).order_by(Feed.id)
    ).all()
    for feed in due:
        was = feed.next_run_at
        following = schedule.next_after(feed.schedule, feed.timezone, now)
        moved = session.execute(
            update(Feed)
            .where(Feed.id == feed.id, Feed.next_run_at == was)
            .values(next_run_at=following)
        )
        if getattr(moved, "rowcount", 0) != 1:
            continue  # another scheduler claimed it
        run = FeedRun(
            feed_id=feed.id,
            trigger="schedule",
            due_at=was,
            requested_by="schedule",
            status="queued",
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(run)
                session.flush()
        except IntegrityError:
            continue  # that due time has its run already
        if running_run_other_than(session, feed.id, run.id) is not None:
            # The last run still goes on: this due time is skipped, and says so.
            run.status, run.finished_at = "failed", now
            run.reason = "Skipped: the previous run of this feed had not finished."
            continue
        enqueue(session, RUN_TASK, run_id=run.id)
        claimed.append(run.id)
    return claimed


def running_run_other_than(session: Session, feed_id: int, run_id: int) -> FeedRun | None:
    return session.scalar(
        select(FeedRun)
        .where(
            FeedRun.feed_id == feed_id,
            FeedRun.status.in_(RUNNING_STATES),
            FeedRun.id != run_id,
        )
        .limit(1)
    )


def runs(session: Session, feed_id: int, limit: int, before: int | None) -> list[FeedRun]:
    query = select(FeedRun).where(FeedRun.feed_id == feed_id)
    if before is not None:
        query = query.where(FeedRun.id < before)
    return list(session.scalars(query.order_by(FeedRun.id.desc()).limit(limit)))


def get_run(session: Session, feed_id: int, run_id: int) -> FeedRun:
    run = session.get(FeedRun, run_id)
    if run is None or run.feed_id != feed_id:
        raise FeedNotFound
    return run


def run_read(session: Session, run: FeedRun) -> FeedRunRead:
    """The run as the API answers it; a run whose import has just ended is settled now, so
    whoever sees the import `completed` sees the run's outcome too."""
    job = session.get(ImportJob, run.import_job_id) if run.import_job_id is not None else None
    if run.status == "importing" and (job is None or job.status in TERMINAL_STATUSES):
        outcomes.settle_run(session, run, job)
    read = FeedRunRead.model_validate(run)
    if job is not None:
        read.rows_created = job.rows_created
        read.rows_updated = job.rows_updated
        read.rows_missing = job.rows_missing
    return read


def read(session: Session, settings: Settings, feed: Feed) -> FeedRead:
    credentials = _readable_credentials(settings, feed)
    last = session.scalar(
        select(FeedRun).where(FeedRun.feed_id == feed.id).order_by(FeedRun.id.desc()).limit(1)
    )
    shown = [f"header:{name}" for name in credentials.get("headers") or {}]
    shown += [key for key in ("password", "private_key") if credentials.get(key)]
    return FeedRead(
        id=feed.id,
        name=feed.name,
        url=feed.url,
        schedule=feed.schedule,
        schedule_text=schedule.describe(feed.schedule, feed.timezone),
        timezone=feed.timezone,
        next_run_at=feed.next_run_at if feed.enabled else None,
        enabled=feed.enabled,
        mapping=feed.mapping,
        mapping_id=feed.mapping_id,
        sheet=feed.sheet,
        encoding=feed.encoding,
        options=feed.options or {},
        missing=feed.missing,
        max_missing_percent=feed.max_missing_percent,
        failure_alert_after=feed.failure_alert_after,
        consecutive_failures=feed.consecutive_failures,
        alerting=feed.consecutive_failures >= feed.failure_alert_after,
        username=credentials.get("username"),
        credentials=shown,
        host_key=feed.host_key,
        last_run=run_read(session, last) if last is not None else None,
        created_by=feed.created_by,
        created_at=feed.created_at,
        updated_at=feed.updated_at,
    )


def warnings(session: Session) -> list[str]:
    """A sentence for each feed whose runs failed `failure_alert_after` times or more in a
    row, for the System page; the next success clears it."""
    found = []
    failing = session.scalars(
        select(Feed)
        .where(Feed.consecutive_failures >= Feed.failure_alert_after)
        .order_by(Feed.name)
    )
    for feed in failing:
        last = session.scalar(
            select(FeedRun.reason)
            .where(FeedRun.feed_id == feed.id, FeedRun.status.in_(("failed", "refused")))
            .order_by(FeedRun.id.desc())
            .limit(1)
        )
        found.append(
            f"The feed {feed.name!r} has failed {feed.consecutive_failures} runs in a row"
            + (f": {last}" if last else ".")
            + " See the Feeds page."
        )
    return found
