"""What the backups API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from product_importer.backups.store import BackupRecord


class BackupRead(BaseModel):
    id: str = Field(description="Names the backup in /api/backups/{id}/download.")
    file_name: str
    status: Literal["running", "completed", "failed"]
    created_at: datetime = Field(description="When the backup started (its snapshot's time).")
    trigger: str | None = Field(description="scheduled, manual (the API or UI) or cli.")
    size: int | None = Field(description="Bytes of the backup file, once completed.")
    error: str | None = Field(description="Why it failed.")
    product_count: int | None = Field(description="Products in the backup, from its manifest.")
    database: str | None = Field(description="sqlite or postgresql.")
    schema_revision: str | None = Field(description="The schema revision it was made at.")

    @classmethod
    def of(cls, record: BackupRecord) -> BackupRead:
        manifest = record.manifest
        return cls(
            id=record.id,
            file_name=record.file_name,
            status=record.status,
            created_at=record.created_at,
            trigger=record.trigger,
            size=record.size,
            error=record.error,
            product_count=record.product_count,
            database=manifest.database if manifest else None,
            schema_revision=manifest.schema_revision if manifest else None,
        )
