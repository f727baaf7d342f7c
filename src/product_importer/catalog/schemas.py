"""What the products API accepts and answers, with the rules every text field obeys."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from product_importer.catalog.models import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    SKU_MAX_LENGTH,
)

FILTER_MAX_LENGTH = 200
_DESCRIPTION_WHITESPACE = frozenset("\t\n\r")


def _check_text(value: str, allowed_controls: frozenset[str] = frozenset()) -> str:
    # Lone surrogates cannot be stored as UTF-8 and NUL cannot be stored by PostgreSQL at all;
    # other control characters are almost always pasted garbage.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in allowed_controls:
            raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    return value


def single_line(value: str) -> str:
    return _check_text(value)


def multi_line(value: str) -> str:
    return _check_text(value, _DESCRIPTION_WHITESPACE)


Sku = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=SKU_MAX_LENGTH),
    AfterValidator(single_line),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(single_line),
]
Description = Annotated[
    str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH), AfterValidator(multi_line)
]

_EXAMPLE: dict[str, Any] = {
    "sku": "CHAIR-OAK-01",
    "name": "Oak dining chair",
    "description": "Solid oak, oiled finish.",
    "active": True,
    "fields": {"price": "129.00", "stock": 4, "tags": ["dining", "oak"]},
}


class ProductCreate(BaseModel):
    """A new product. The SKU is trimmed and must be unique in any letter case."""

    model_config = ConfigDict(
        strict=True, extra="forbid", json_schema_extra={"examples": [_EXAMPLE]}
    )

    sku: Sku = Field(description=f"1 to {SKU_MAX_LENGTH} characters after trimming.")
    name: Name = Field(description=f"1 to {NAME_MAX_LENGTH} characters after trimming.")
    description: Description = Field(
        default="", description=f"Up to {DESCRIPTION_MAX_LENGTH} characters; may span lines."
    )
    active: bool = True
    fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Custom field values by key (see `GET /api/fields`); decimals as strings.",
        max_length=1000,
    )


class ProductUpdate(BaseModel):
    """Fields to change; omitted fields keep their value. `null` is not accepted."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Oak dining chair (pair)", "active": False}]},
    )

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    active: bool | None = None
    fields: dict[str, Any] | None = Field(
        default=None,
        description="Custom field values to set; `null` for a key unsets it, omitted keys are "
        "kept.",
        max_length=1000,
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [
                key for key, value in data.items() if value is None and key in cls.model_fields
            ]
            if nulls:
                raise ValueError(f"{', '.join(nulls)} cannot be null; omit a field to keep it")
        return data


class ProductRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                _EXAMPLE
                | {
                    "id": 42,
                    "created_at": "2025-01-31T09:30:00Z",
                    "updated_at": "2025-02-01T14:05:12.123456Z",
                }
            ]
        },
    )

    id: int
    sku: str
    name: str
    description: str
    active: bool
    fields: dict[str, Any] = Field(
        default_factory=dict, description="Custom field values by key; unset fields are absent."
    )
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    items: list[ProductRead]
    total: int = Field(
        description="Products matching the filters. Exact unless `total_is_estimate` is true."
    )
    total_is_estimate: bool = Field(
        description=(
            "True when counting every match would be slow (more matches than the exact-count "
            "limit, 1,000 by default): `total` is then an estimate from a sample of the "
            "catalogue, and is never below the exact-count limit."
        )
    )
    page: int
    page_size: int
    search_pending: bool = Field(
        description=(
            "True while the search index is catching up after an undo that restored more than "
            "10,000 products' text: text filters (`q`, `name`, `description`) may then miss "
            "those products (and may still match their previous text). Imports, edits and "
            "smaller undos never leave it behind. Other filters and sorting are exact."
        ),
    )


class ProductSort(StrEnum):
    """The built-in sort orders; `field.<key>` and `-field.<key>` sort by a custom field
    (`FieldSort`)."""

    SKU = "sku"
    SKU_DESC = "-sku"
    NAME = "name"
    NAME_DESC = "-name"
    UPDATED = "updated_at"
    UPDATED_DESC = "-updated_at"
    CREATED = "created_at"
    CREATED_DESC = "-created_at"


@dataclass(frozen=True)
class FieldSort:
    """Sort by a custom field's value, then id; products without a value come last."""

    key: str
    kind: str  # the field's type
    descending: bool = False


# What the product list sorts by.
SortOrder = ProductSort | FieldSort


@dataclass(frozen=True)
class FieldFilter:
    """One `field.<key>[.<op>]=<value>` criterion, its value already in the field's stored
    form (`field_types`): a list for a list field (every element must be there), a bool for
    `set`."""

    key: str
    kind: str  # the field's type
    op: str  # eq, contains, gt, gte, lt, lte or set
    value: Any


@dataclass(frozen=True)
class ProductFilters:
    """Search criteria; None means "not filtered on"."""

    sku: str | None = None
    name: str | None = None
    description: str | None = None
    active: bool | None = None
    q: str | None = None
    fields: tuple[FieldFilter, ...] = ()

    @property
    def is_empty(self) -> bool:
        return (
            not self.sku
            and not self.name
            and not self.description
            and self.active is None
            and not self.q
            and not self.fields
        )


class DeleteAllJobRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "status": "running",
                    "total": 1000000,
                    "deleted": 420000,
                    "error": None,
                    "requested_by": "alice",
                    "created_at": "2025-02-01T14:00:00Z",
                    "started_at": "2025-02-01T14:00:00.2Z",
                    "finished_at": None,
                }
            ]
        },
    )

    id: int
    status: str = Field(description="queued, running, completed or failed.")
    total: int | None = Field(description="Products when the job started; null until then.")
    deleted: int = Field(description="Products deleted so far.")
    error: str | None
    requested_by: str
    change_id: int | None = Field(
        default=None, description="The change set that recorded the deletion (for undo)."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
