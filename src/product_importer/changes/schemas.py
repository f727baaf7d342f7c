"""What the changes API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ChangeSetRead(BaseModel):
    id: int
    kind: str = Field(description="import, delete_all, bulk, undo or edit")
    status: str = Field(description="queued, running, completed or failed")
    actor: str = Field(description="Who asked for it: a user name or `token NAME`")
    summary: str
    percent: float
    created: int
    updated: int
    deleted: int
    restored: int
    kept: int
    error: str | None
    import_job_id: int | None
    delete_job_id: int | None
    undoes_id: int | None = Field(description="For an undo: the change it undoes")
    undone_by_id: int | None = Field(description="The completed undo of this change, if any")
    undoable: bool
    undoable_until: datetime | None = Field(description="When retention ends its undo")
    not_undoable_reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ChangePage(BaseModel):
    items: list[ChangeSetRead]
    total: int
    page: int
    page_size: int


class UndoDryRun(BaseModel):
    change_id: int
    would_delete: int = Field(description="Products the change created")
    would_restore: int = Field(description="Products it updated or deleted")
    would_keep: int = Field(description="Products changed again since, left as they are")


class FieldChange(BaseModel):
    field: str
    old: Any
    new: Any


class HistoryEntry(BaseModel):
    change_id: int
    at: datetime
    kind: str
    who: str = Field(description="User or token, and the import, bulk action or undo")
    action: str = Field(description="created, updated or deleted")
    product_id: int | None
    sku: str
    changes: list[FieldChange]


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    total: int
    page: int
    page_size: int
