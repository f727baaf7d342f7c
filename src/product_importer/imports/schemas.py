from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from product_importer.db import utcnow
from product_importer.imports.models import ImportJob
from product_importer.imports.progress import Snapshot


class ImportJobRead(BaseModel):
    id: int
    filename: str
    status: str = Field(description="queued, running, completed, failed or cancelled")
    phase: str = Field(description="What the job is doing, in words")
    percent: float = Field(description="0-100 by bytes read; never goes back; 100 only when done")
    dry_run: bool
    rows_processed: int
    rows_created: int
    rows_updated: int
    rows_unchanged: int
    rows_rejected: int
    rows_per_second: float | None
    eta_seconds: float | None
    warnings: list[str]
    error: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    change_id: int | None = Field(
        default=None, description="The change set its merge recorded: see /api/changes/{id}."
    )

    @classmethod
    def from_job(cls, job: ImportJob, live: Snapshot | None = None) -> ImportJobRead:
        phase, percent, rows = job.phase, job.percent, job.rows_processed
        rejected = job.rows_rejected
        if live is not None and job.status == "running":
            phase, percent, rows = live.phase, max(percent, live.percent), live.rows_processed
            rejected = live.rows_rejected
        if job.status == "completed":
            percent = 100.0
        elapsed = None
        if job.started_at is not None:
            elapsed = ((job.finished_at or utcnow()) - job.started_at).total_seconds()
        rate = rows / elapsed if elapsed and elapsed > 0 and rows else None
        eta = None
        if job.status == "running" and elapsed and percent > 0:
            eta = round(elapsed * (100.0 - percent) / percent, 1)
        return cls(
            id=job.id,
            filename=job.filename,
            status=job.status,
            phase=phase,
            percent=round(percent, 1),
            dry_run=job.dry_run,
            rows_processed=rows,
            rows_created=job.rows_created,
            rows_updated=job.rows_updated,
            rows_unchanged=job.rows_unchanged,
            rows_rejected=rejected,
            rows_per_second=round(rate, 1) if rate else None,
            eta_seconds=eta,
            warnings=list(job.warnings or []),
            error=job.error,
            created_by=job.created_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            duration_seconds=round(elapsed, 2) if elapsed is not None and job.finished_at else None,
            change_id=job.change_id,
        )


class ImportPage(BaseModel):
    items: list[ImportJobRead]
    total: int
    page: int
    page_size: int
