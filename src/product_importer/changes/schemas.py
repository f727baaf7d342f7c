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
MAX_BULK_FIELDS = 500  # as many as a catalogue may define


class ChangeSetRead(BaseModel):
    id: int
    kind: str = Field(description="import, delete_all, bulk, undo, edit or fields")
    title: str = Field(
        default="", description='What it did, in words: "Import of shopify.csv: 2 created"'
    )
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
    undone_by_title: str | None = Field(default=None, description="That undo, in words")
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


# Custom field filters are named as in the list's query string: `field.<key>[.<op>]`.
FIELD_FILTER_PREFIX = "field."
MAX_FIELD_FILTERS = 20
FIELD_FILTER_NAME_MAX_LENGTH = 100
FIELD_FILTER_VALUE_MAX_LENGTH = 2000


class BulkFilter(BaseModel):
    """The product list's filters, as `GET /api/products` takes them, custom field filters
    included (`"field.price.gt": "10"`)."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,
        json_schema_extra={
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "examples": [{"sku": "CHAIR-*", "field.price.gte": "100", "field.tags": "oak"}],
        },
    )

    sku: FilterText = None
    name: FilterText = None
    description: FilterText = None
    active: bool | None = None
    q: FilterText = None

    @model_validator(mode="after")
    def _only_field_filters(self) -> BulkFilter:
        extra = self.model_extra or {}
        if len(extra) > MAX_FIELD_FILTERS:
            raise ValueError(f"at most {MAX_FIELD_FILTERS} field filters may be combined")
        for name, value in extra.items():
            shown = repr(name[:60] + ("…" if len(name) > 60 else ""))
            if not name.startswith(FIELD_FILTER_PREFIX):
                raise ValueError(
                    f"{shown} is not a filter: use sku, name, description, active, q or "
                    "field.<key>[.<operator>]"
                )
            if len(name) > FIELD_FILTER_NAME_MAX_LENGTH:
                raise ValueError(f"{shown} is not a field filter (too long)")
            if not isinstance(value, str | bool | int | float):
                raise ValueError(f"{shown} must be a string, a number or true/false")
            if isinstance(value, str) and len(value) > FIELD_FILTER_VALUE_MAX_LENGTH:
                raise ValueError(
                    f"{shown} is {len(value)} characters; the limit is "
                    f"{FIELD_FILTER_VALUE_MAX_LENGTH}"
                )
        return self

    def builtin(self) -> dict[str, Any]:
        """The built-in filters, as `ProductFilters` takes them."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def field_parameters(self) -> list[tuple[str, str]]:
        """The custom field filters as query-string pairs (`true`, `12.5`, …)."""

        def text(value: Any) -> str:
            if isinstance(value, bool):
                return "true" if value else "false"
            return value if isinstance(value, str) else repr(value)

        return [(name, text(value)) for name, value in (self.model_extra or {}).items()]


class BulkRequest(BaseModel):
    """`ids` (at most 1,000), or `filter` with the `expected_total` the user saw."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"action": "deactivate", "ids": [12, 15, 19]},
                {"action": "delete", "filter": {"q": "oak"}, "expected_total": 1200},
                {
                    "action": "set_fields",
                    "fields": {"vendor": "Acme", "stock": None},
                    "filter": {"field.vendor": "ACME Ltd"},
                    "expected_total": 310,
                },
            ]
        },
    )

    action: Literal["activate", "deactivate", "delete", "set_fields"]
    fields: dict[str, Any] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BULK_FIELDS,
        description="With `set_fields` only: custom field values to set by key (as "
        "`PATCH /api/products/{id}` takes them); `null` unsets a field, others are kept.",
    )
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
        if (self.action == "set_fields") != (self.fields is not None):
            raise ValueError("`fields` goes with the action `set_fields`, and it needs them")
        return self


class BulkCount(BaseModel):
    action: str
    matched: int = Field(description="Products the selection matches now (exact)")
    everything: bool = Field(
        default=False,
        description="The selection is every product: deleting it needs the admin role.",
    )
