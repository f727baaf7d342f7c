from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from product_importer.db import utcnow
from product_importer.imports.mirror import FEED_ID, MirrorOptions
from product_importer.imports.models import ImportJob, ImportMapping
from product_importer.imports.progress import Snapshot
from product_importer.imports.sources import READ_OPTION_NAMES


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
    rows_merged: int = Field(
        default=0,
        description="Rows that repeated an earlier row's SKU (or group) and were merged into it: "
        "the last one won. With the four counts above they account for every row read.",
    )
    rows_missing: int = Field(
        default=0,
        description="Mirror mode: products the file does not list that were deactivated or "
        "deleted (a dry run or a refused import: that would have been). Not rows of the file.",
    )
    refused: bool = Field(
        default=False,
        description="The mirror guard refused the import (it would have removed more of the "
        "catalogue than max_missing_percent): nothing was changed. A dry run says it would be.",
    )
    rows_per_second: float | None
    eta_seconds: float | None
    warnings: list[str]
    error: str | None
    mapping: dict[str, str] | None = Field(
        default=None, description="Our field -> the file's column, when one was given"
    )
    encoding: str | None = Field(default=None, description="Text encoding given for a CSV file")
    sheet: str | None = Field(default=None, description="Sheet given for a workbook")
    decimal_separator: str = Field(default=".", description='Decimal separator: "." or ","')
    empty_cells: str = Field(
        default="keep", description="keep: an empty cell leaves a field as it is; clear: unsets it"
    )
    group_by: str | None = Field(
        default=None, description="The column whose rows belong together (Shopify's Handle)"
    )
    variant_names: bool = Field(default=False, description="Option values added to names")
    missing: str = Field(
        default="keep",
        description="Products the file does not list: keep (default), deactivate or delete",
    )
    max_missing_percent: float = Field(
        default=10.0, description="The mirror guard: most of the catalogue the file may leave out"
    )
    confirm_missing: bool = Field(default=False, description="This run goes through the guard")
    feed_id: int | None = Field(default=None, description="The feed that started the import")
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    change_id: int | None = Field(
        default=None, description="The change set its merge recorded: see /api/changes/{id}."
    )
    undone_by_change_id: int | None = Field(
        default=None, description="The undo that reverted this import, if any."
    )

    @classmethod
    def from_job(
        cls, job: ImportJob, live: Snapshot | None = None, undone_by: int | None = None
    ) -> ImportJobRead:
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
        counted = job.rows_created + job.rows_updated + job.rows_unchanged + rejected
        merged = max(0, rows - counted) if job.status == "completed" else 0
        mirror = MirrorOptions.stored(job.options)
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
            rows_merged=merged,
            rows_missing=job.rows_missing or 0,
            refused=bool(job.refused),
            rows_per_second=round(rate, 1) if rate else None,
            eta_seconds=eta,
            warnings=list(job.warnings or []),
            error=job.error,
            mapping=job.mapping,
            encoding=job.encoding,
            sheet=job.sheet,
            **{k: v for k, v in (job.options or {}).items() if k in READ_OPTION_NAMES},
            missing=mirror.missing,
            max_missing_percent=mirror.max_missing_percent,
            confirm_missing=mirror.confirm_missing,
            feed_id=(job.options or {}).get(FEED_ID),
            created_by=job.created_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            duration_seconds=round(elapsed, 2) if elapsed is not None and job.finished_at else None,
            change_id=job.change_id,
            undone_by_change_id=undone_by,
        )


class ImportPage(BaseModel):
    items: list[ImportJobRead]
    total: int
    page: int
    page_size: int


class MappingCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="Shown in the mapping step")
    mapping: dict[str, str | None] = Field(
        description='Our field (built-in or custom) -> the file\'s column, e.g. {"sku": '
        '"Variant SKU", "name": "Title", "price": "Variant Price"}'
    )
    decimal_separator: Annotated[str, Field(pattern=r"^[.,]$")] = "."
    empty_cells: Annotated[str, Field(pattern="^(keep|clear)$")] = "keep"
    group_by: Annotated[str, Field(max_length=255)] | None = None
    variant_names: bool = False
    header: list[Annotated[str, Field(max_length=255)]] = Field(
        default_factory=list,
        max_length=1000,
        description="The file's header; the mapping is offered first for this header set",
    )


class MappingRead(BaseModel):
    id: int
    name: str
    mapping: dict[str, str]
    header: list[str]
    decimal_separator: str = "."
    empty_cells: str = "keep"
    group_by: str | None = None
    variant_names: bool = False
    created_by: str
    created_at: datetime

    @classmethod
    def from_saved(cls, saved: ImportMapping) -> MappingRead:
        options = {k: v for k, v in (saved.options or {}).items() if k in READ_OPTION_NAMES}
        return cls(
            id=saved.id,
            name=saved.name,
            mapping=saved.mapping,
            header=saved.header,
            created_by=saved.created_by,
            created_at=saved.created_at,
            **options,
        )


class PreviewRow(BaseModel):
    line: int = Field(description="Line of a CSV file, or row number in the spreadsheet")
    sku: str
    name: str
    description: str
    active: bool | None = Field(description="None: the file leaves the flag as it is")
    rejected: str | None = Field(description="Why the import would reject this row, if it would")
    fields: list[str] = Field(
        description="The row's cells as read (a group's empty cells filled from its first row)"
    )
    field_values: dict[str, Any] = Field(
        default_factory=dict,
        description="Custom field values as they would be stored (null: unset, with "
        "empty_cells=clear); fields the row leaves as they are are absent",
    )


class ProposedField(BaseModel):
    column: str = Field(description="A column nothing is mapped to")
    key: str = Field(description="A key for a new field, unique among fields and proposals")
    label: str
    type: str = Field(description="Guessed from the header and the first rows")


class ImportPreview(BaseModel):
    kind: str = Field(description="csv or workbook")
    columns: list[str] = Field(description="The file's header as read")
    sheets: list[str]
    sheet: str | None
    encoding: str | None
    delimiter: str | None
    mapping: dict[str, str] = Field(description="The mapping the preview used")
    mapping_source: str = Field(
        description="given, header (the file names our fields), saved or suggested"
    )
    saved_mapping: str | None = Field(description="Name of the saved mapping used, if any")
    header_matches: bool = Field(description="The header names sku and name as it is")
    mapping_error: str | None = Field(description="Why the mapping does not fit, if it does not")
    rows: list[PreviewRow]
    warnings: list[str]
    decimal_separator: str = Field(default=".", description='"." or ","')
    empty_cells: str = Field(default="keep", description="keep or clear")
    group_by: str | None = Field(default=None, description="The group column used, if any")
    variant_names: bool = False
    fields: list[dict[str, Any]] = Field(
        default_factory=list, description="The custom fields defined (as GET /api/fields)"
    )
    proposed_fields: list[ProposedField] = Field(
        default_factory=list, description="A new field for each column nothing is mapped to"
    )
    group_by_suggestion: str | None = Field(
        default=None, description="The group column, when the header looks like Shopify's"
    )
