"""Custom fields as an import sees them: the fields defined, fields proposed for the columns
nothing is mapped to, the group column suggested for a Shopify export, and the new fields an
import request asks to create (an admin's). Nothing here commits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from product_importer.catalog import custom_fields, field_types
from product_importer.catalog.export import restore_cell
from product_importer.catalog.models import CustomField
from product_importer.imports import mapping as column_mapping
from product_importer.imports.columns import FieldSpec

MAX_NEW_FIELDS = 200
MAX_NEW_FIELDS_CHARS = 128 * 1024
# A header with these words holds codes, not numbers: leading zeros are kept (barcodes, EANs).
_CODE_WORDS = frozenset(
    {"barcode", "barcodes", "ean", "upc", "gtin", "isbn", "mpn", "sku", "code", "codes"}
    | {"zip", "postcode", "phone"}
)
# Shopify's product export: the columns it always has, and the one that ties variants.
_SHOPIFY_COLUMNS = ("handle", "variant sku", "title")
_SHOPIFY_GROUP = "handle"


class NewFieldsInvalid(ValueError):
    """`new_fields` cannot be used (shape, key, type, a taken key, an unknown column)."""


def specs(session: Session) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec.of(field) for field in custom_fields.all_fields(session))


# --- proposals -----------------------------------------------------------------------------


def infer_type(header: str, samples: Sequence[str]) -> str:
    """`field_types.infer`, except that a column of codes (Barcode, EAN, ...) stays text, so
    `0012345` keeps its zeros."""
    words = re.sub(r"[^a-z0-9]+", " ", header.lower()).split()
    if any(word in _CODE_WORDS for word in words):
        return "text"
    return field_types.infer(header, [restore_cell(sample.strip()) for sample in samples])


def _unique(key: str, taken: set[str]) -> str:
    if key not in taken:
        return key
    number = 2
    while True:
        suffix = f"_{number}"
        candidate = key[: 63 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        number += 1


def label_of(column: str) -> str:
    """A label from a header: one line, printable, within the limit."""
    printable = "".join(char if char.isprintable() else " " for char in column)
    label = " ".join(printable.split())[: field_types.LABEL_MAX_LENGTH].strip()
    return label or "Field"


def propose(
    header: Sequence[str],
    used: Sequence[str],
    fields: Sequence[FieldSpec],
    samples: Sequence[Sequence[str]],
) -> list[dict[str, str]]:
    """A field for each column that feeds nothing (not named in `used`): column, key (unique
    against the fields defined and each other), label, and a type guessed from the samples."""
    skip = {column_mapping.header_name(column) for column in used}
    taken = {spec.key for spec in fields} | set(field_types.RESERVED_KEYS)
    proposals: list[dict[str, str]] = []
    for index, cell in enumerate(header[: column_mapping.MAX_HEADER_CELLS]):
        name = column_mapping.header_name(cell)
        if not name or name in skip:
            continue
        skip.add(name)
        column = cell.strip().lstrip("\ufeff").strip()
        key = _unique(field_types.suggest_key(column), taken)
        taken.add(key)
        values = [row[index] for row in samples if index < len(row) and row[index].strip()]
        proposals.append(
            {
                "column": column,
                "key": key,
                "label": label_of(column),
                "type": infer_type(column, values),
            }
        )
        if len(proposals) >= field_types.MAX_FIELDS:
            break
    return proposals


def group_by_suggestion(header: Sequence[str]) -> str | None:
    """The group column when the header looks like Shopify's (Handle, Variant SKU, Title)."""
    names = {column_mapping.header_name(cell): cell.strip() for cell in header}
    if all(name in names for name in _SHOPIFY_COLUMNS):
        return names[_SHOPIFY_GROUP]
    return None


def defined(fields: Sequence[FieldSpec]) -> list[dict[str, Any]]:
    return [spec.shown() for spec in fields]


def used_columns(mapping: Mapping[str, str] | None, group_by: str | None) -> list[str]:
    return [*(mapping or {}).values(), *([group_by] if group_by else [])]


# --- new fields from a file ------------------------------------------------------------------


@dataclass(frozen=True)
class NewField:
    column: str
    key: str
    label: str
    type: str
    choices: tuple[str, ...] | None = None

    def spec(self) -> FieldSpec:
        return FieldSpec(key=self.key, label=self.label, type=self.type, choices=self.choices)


def _text(item: Mapping[str, Any], name: str, where: str, required: bool = True) -> str:
    value = item.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise NewFieldsInvalid(f"new_fields{where}: {name} must be a non-empty text.")
    return value.strip()


def parse_new_fields(text: str) -> list[NewField]:
    """The new fields of a request (JSON list of {column, key, label, type, choices?}), each
    checked on its own and against the others; NewFieldsInvalid says what is wrong."""
    if len(text) > MAX_NEW_FIELDS_CHARS:
        raise NewFieldsInvalid(f"new_fields is longer than {MAX_NEW_FIELDS_CHARS:,} characters.")
    try:
        value = json.loads(text) if text.strip() else []
    except (ValueError, RecursionError):
        raise NewFieldsInvalid(
            'new_fields is not valid JSON; send a list such as [{"column": "Variant Price", '
            '"key": "price", "label": "Price", "type": "decimal"}].'
        ) from None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise NewFieldsInvalid("new_fields must be a JSON list of objects.")
    if len(value) > MAX_NEW_FIELDS:
        raise NewFieldsInvalid(f"At most {MAX_NEW_FIELDS} new fields at a time.")
    parsed: list[NewField] = []
    keys: set[str] = set()
    columns: set[str] = set()
    for number, item in enumerate(value, start=1):
        where = f" (item {number})"
        unknown = sorted(set(item) - {"column", "key", "label", "type", "choices"})
        if unknown:
            raise NewFieldsInvalid(f"new_fields{where}: unknown attribute {unknown[0][:40]!r}.")
        column = _text(item, "column", where)
        key = _text(item, "key", where)
        label = _text(item, "label", where, required=False) or label_of(column)
        kind = _text(item, "type", where)
        choices = item.get("choices")
        if choices is not None and not (
            isinstance(choices, list) and all(isinstance(c, str) for c in choices)
        ):
            raise NewFieldsInvalid(f"new_fields{where}: choices must be a list of texts.")
        try:
            custom_fields.check_key(key)
            if kind not in field_types.TYPES:
                raise custom_fields.FieldRejected(
                    f"Type {kind[:20]!r} is not one of {', '.join(field_types.TYPES)}."
                )
            checked = custom_fields.check_choices(kind, choices)
        except custom_fields.FieldRejected as exc:
            raise NewFieldsInvalid(f"new_fields{where}, column {column[:60]!r}: {exc}") from None
        try:
            field_types.check_text(label, field_types.LABEL_MAX_LENGTH)
        except field_types.FieldValueError as exc:
            raise NewFieldsInvalid(f"new_fields{where}: the label {exc}.") from None
        if key in keys:
            raise NewFieldsInvalid(f"new_fields names the key '{key}' twice.")
        if column_mapping.header_name(column) in columns:
            raise NewFieldsInvalid(f"new_fields names the column {column[:60]!r} twice.")
        keys.add(key)
        columns.add(column_mapping.header_name(column))
        parsed.append(
            NewField(column, key, label, kind, tuple(checked) if checked is not None else None)
        )
    return parsed


def check_new_fields(session: Session, new: Sequence[NewField]) -> None:
    """Keys not taken yet, and room for them all."""
    keys = [field.key for field in new]
    taken = sorted(session.scalars(select(CustomField.key).where(CustomField.key.in_(keys))))
    if taken:
        raise NewFieldsInvalid(
            "A field with the key "
            + ", ".join(f"'{key}'" for key in taken)
            + " exists already: map the column to it instead, or choose another key."
        )
    room = field_types.MAX_FIELDS - len(custom_fields.all_fields(session))
    if len(new) > room:
        raise NewFieldsInvalid(
            f"A catalogue has at most {field_types.MAX_FIELDS} fields; {max(room, 0)} more "
            "can be created."
        )


def with_new_fields(mapping: Mapping[str, str], new: Sequence[NewField]) -> dict[str, str]:
    """The mapping with each new field's column; a key the mapping gives another column is
    refused."""
    result = dict(mapping)
    for field in new:
        given = result.get(field.key)
        if given is not None and column_mapping.header_name(given) != column_mapping.header_name(
            field.column
        ):
            raise NewFieldsInvalid(
                f"The mapping gives the new field '{field.key}' the column {given[:60]!r}, but "
                f"new_fields says {field.column[:60]!r}."
            )
        result[field.key] = field.column
    return result


def create_new_fields(session: Session, new: Sequence[NewField]) -> list[CustomField]:
    """Create the fields (checked already), in the caller's transaction."""
    try:
        return [
            custom_fields.create(
                session,
                field.key,
                field.label,
                field.type,
                list(field.choices) if field.choices is not None else None,
            )
            for field in new
        ]
    except (custom_fields.FieldRejected, custom_fields.FieldConflict) as exc:
        raise NewFieldsInvalid(str(exc)) from None
