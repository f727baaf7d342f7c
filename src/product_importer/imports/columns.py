"""What every reader shares: the file-level error and where our fields sit in a row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class FileFormatError(Exception):
    """The file cannot be imported at all; the message says why, for the person who sent it."""


class NotCsvError(FileFormatError):
    """The file is not text at all (an image, an archive, an unknown binary)."""


@dataclass(frozen=True)
class FieldSpec:
    """A custom field as an import reads it: plain data, usable after its session has closed."""

    key: str
    label: str
    type: str
    choices: tuple[str, ...] | None = None
    id: int | None = None  # None for a field the import is about to create

    @classmethod
    def of(cls, field: Any) -> FieldSpec:
        """From a `CustomField` row."""
        choices = tuple(field.choices) if field.choices else None
        return cls(key=field.key, label=field.label, type=field.type, choices=choices, id=field.id)

    def shown(self) -> dict[str, Any]:
        choices = list(self.choices) if self.choices is not None else None
        return {
            "id": self.id,
            "key": self.key,
            "label": self.label,
            "type": self.type,
            "choices": choices,
        }


@dataclass(frozen=True)
class FieldColumn:
    """A custom field fed by the column at `index` (header `column`)."""

    index: int
    column: str
    field: FieldSpec


@dataclass(frozen=True)
class Columns:
    """Where each of our fields sits in a row of the file (see imports.mapping)."""

    sku: int
    name: int
    description: int | None
    active: int | None
    width: int
    ignored: tuple[str, ...] = field(default=())
    fields: tuple[FieldColumn, ...] = field(default=())
    # The group column (Shopify's Handle), and the option value columns a variant's name can
    # take (Option1 Value ...), when present.
    group: int | None = None
    options: tuple[int, ...] = field(default=())
