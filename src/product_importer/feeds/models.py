"""Feeds: a source, how to read it and a schedule; and the record of every run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from product_importer.db import Base, BigIntId, UTCDateTime, utcnow

MISSING_POLICIES = ("keep", "deactivate", "delete")
# A run's outcome once it has ended; `queued`, `fetching` and `importing` while it runs.
OUTCOMES = ("imported", "unchanged", "failed", "refused")
RUNNING_STATES = ("queued", "fetching", "importing")


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # http(s):// or sftp://user@host:port/path; never a password (that is in `secrets`).
    url: Mapped[str] = mapped_column(String(2000))
    schedule: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # How to read the file, as an upload gives it: a mapping (our field -> the file's column)
    # or a saved mapping's id, the sheet, the encoding, and the reading options.
    mapping: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    mapping_id: Mapped[int | None] = mapped_column(
        ForeignKey("import_mappings.id", ondelete="SET NULL"), default=None
    )
    sheet: Mapped[str | None] = mapped_column(String(255), default=None)
    encoding: Mapped[str | None] = mapped_column(String(40), default=None)
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # What happens to products the file does not list (mirror mode), and its guard.
    missing: Mapped[str] = mapped_column(String(16), default="keep")
    max_missing_percent: Mapped[float] = mapped_column(Float, default=10.0)
    failure_alert_after: Mapped[int] = mapped_column(Integer, default=3)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Request headers, passwords and private keys: a Fernet token of a JSON object
    # (feeds.secrets); never returned by the API.
    secrets: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # The SFTP server's key fingerprint the user confirmed ("SHA256:...").
    host_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # The next due time of the schedule; the scheduler moves it forward as it claims a run.
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    # What the last imported file was, so an unchanged source is skipped.
    etag: Mapped[str | None] = mapped_column(String(500), default=None)
    last_modified: Mapped[str | None] = mapped_column(String(100), default=None)
    content_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(150), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedRun(Base):
    """One run of a feed. A scheduled run carries its due time, unique per feed, so however
    many schedulers see a feed due, one run is recorded for that time."""

    __tablename__ = "feed_runs"
    __table_args__ = (UniqueConstraint("feed_id", "due_at", name="uq_feed_runs_due"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    # `schedule`, `manual` (API or UI) or `cli`.
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    confirm_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str] = mapped_column(String(150), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    filename: Mapped[str | None] = mapped_column(String(500), default=None)
    bytes: Mapped[int | None] = mapped_column(BigIntId, default=None)
    http_status: Mapped[int | None] = mapped_column(Integer, default=None)
    host_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # What the fetched file was; the feed keeps them once its import succeeds.
    etag: Mapped[str | None] = mapped_column(String(500), default=None)
    last_modified: Mapped[str | None] = mapped_column(String(100), default=None)
    content_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    import_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("import_jobs.id", ondelete="SET NULL"), default=None
    )
