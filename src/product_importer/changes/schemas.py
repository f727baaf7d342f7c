"""What the changes API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from product_importer.catalog.schemas import FILTER_MAX_LENGTH, single_line

MAX_BULK_IDS = 1000


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


def _filter_text(value: str | None) -> str | None:
    return None if value is None else single_line(value)


FilterText = Annotated[
    str | None, StringConstraints(max_length=FILTER_MAX_LENGTH), AfterValidator(_filter_text)
]


class BulkFilter(BaseModel):
    """The product list's filters, as `GET /api/products` takes them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sku: FilterText = None
    name: FilterText = None
    description: FilterText = None
    active: bool | None = None
    q: FilterText = None


class BulkRequest(BaseModel):
    """`ids` (at most 1,000), or `filter` with the `expected_total` the user saw."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"action": "deactivate", "ids": [12, 15, 19]},
                {"action": "delete", "filter": {"q": "oak"}, "expected_total": 1200},
            ]
        },
    )

    action: Literal["activate", "deactivate", "delete"]
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        default=None, min_length=1, max_length=MAX_BULK_IDS
    )
    filter: BulkFilter | None = None
    expected_total: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_selection(self) -> BulkRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("send either `ids` or `filter` (with `expected_total`), not both")
        if self.ids is not None and self.expected_total is not None:
            raise ValueError("`expected_total` goes with `filter`, not with `ids`")
        return self


class BulkCount(BaseModel):
    action: str
    matched: int = Field(description="Products the selection matches now (exact)")
    everything: bool = Field(
        default=False,
        description="The selection is every product: deleting it needs the admin role.",
    )
