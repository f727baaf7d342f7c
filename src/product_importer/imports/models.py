from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from product_importer.db import Base, BigIntId, UTCDateTime, utcnow

STATUSES = ("queued", "running", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class ImportJob(Base):
    """One uploaded file and everything known about its import: the durable record of the job."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    phase: Mapped[str] = mapped_column(String(64), default="Queued")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(150), default="")
    # Where the uploaded file is kept (see imports.storage), and its size.
    storage_key: Mapped[str] = mapped_column(String(255), default="")
    total_bytes: Mapped[int] = mapped_column(BigIntId, default=0)
    bytes_read: Mapped[int] = mapped_column(BigIntId, default=0)
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    rows_processed: Mapped[int] = mapped_column(Integer, default=0)
    rows_created: Mapped[int] = mapped_column(Integer, default=0)
    rows_updated: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    # Mirror mode (options "missing"): the products the file does not list that were
    # deactivated or deleted (or would be, in a dry run or a refused import).
    rows_missing: Mapped[int] = mapped_column(Integer, default=0)
    # The mirror guard refused the import: it would have removed too much of the catalogue.
    refused: Mapped[bool] = mapped_column(Boolean, default=False)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The file's header row as read, so rejected rows can be given back under it.
    header: Mapped[list[str]] = mapped_column(JSON, default=list)
    # How to read the file, as given at upload: our field -> the file's column header, the
    # text encoding (CSV; None = detect) and the sheet (workbooks; None = the first).
    mapping: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    encoding: Mapped[str | None] = mapped_column(String(40), default=None)
    sheet: Mapped[str | None] = mapped_column(String(255), default=None)
    # How values are read and rows grouped (decimal_separator, empty_cells, group_by,
    # variant_names), only those not at their default; None = all defaults.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Refreshed by the worker while it runs; a stale heartbeat means the worker died.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The change set its merge recorded (see changes/), for history and undo.
    change_id: Mapped[int | None] = mapped_column(BigIntId, default=None)


class ImportReject(Base):
    """A rejected row: its line in the file, why, and the fields as read."""

    __tablename__ = "import_rejects"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("import_jobs.id", ondelete="CASCADE"), index=True
    )
    line: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    fields: Mapped[list[Any]] = mapped_column(JSON)


class ImportMapping(Base):
    """A column mapping saved under a name, offered first for files with the same header set."""

    __tablename__ = "import_mappings"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # sha256 of the header's names, trimmed, case-folded, sorted (see imports.mapping).
    header_key: Mapped[str] = mapped_column(String(64), index=True)
    header: Mapped[list[str]] = mapped_column(JSON)
    mapping: Mapped[dict[str, str]] = mapped_column(JSON)
    # The reading options saved with it, as on ImportJob.options.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_by: Mapped[str] = mapped_column(String(150), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UploadChunk(Base):
    """A piece of an uploaded file kept in the database (distributed mode, see imports.storage)."""

    __tablename__ = "upload_chunks"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
