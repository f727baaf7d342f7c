"""Column mapping: which of the file's columns feeds each of our fields.

A mapping is `{field: column header}` for the built-in fields `sku`, `name` (required),
`description` and `active` (optional), and any custom field by its key (`"price": "Variant
Price"`). Without one, the header must name the built-ins itself (trimmed, any case), and a
column whose header is a custom field's key or label feeds that field, so our own export (one
column per field, header = key) imports back as it is. Headers are compared the same way
everywhere: trimmed, byte-order mark removed, case-folded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from product_importer.imports.columns import Columns, FieldColumn, FieldSpec, FileFormatError

FIELDS = ("sku", "name", "description", "active")
REQUIRED = ("sku", "name")
MAX_MAPPING_CHARS = 64 * 1024
MAX_COLUMN_NAME = 255
# Columns looked at for proposals and samples (Excel's own limit is 16,384).
MAX_HEADER_CELLS = 1000
# Shopify's option value columns: a variant's name can take them (`variant_names`).
OPTION_COLUMNS = ("option1 value", "option2 value", "option3 value")


class MappingInvalid(ValueError):
    """An option of the request is unusable (mapping JSON, an unknown field, an encoding...);
    the message says why."""


class HeaderMismatch(FileFormatError):
    """The file's header does not fit (no mapping and no sku/name, or a mapped column missing).

    Carries the columns found, so that the answer can offer a mapping to retry with."""

    def __init__(self, message: str, columns: Sequence[str]) -> None:
        super().__init__(message)
        self.columns = list(columns)
        self.sheets: list[str] = []  # a workbook's sheet names, to offer another one
        self.samples: list[list[str]] = []  # the first rows, to propose fields from


def parse_flag(name: str, value: str | bool | None) -> bool:
    """A yes/no option as a request or the command line gives it; MappingInvalid otherwise."""
    if value is None or isinstance(value, bool):
        return bool(value)
    word = value.strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off", ""):
        return False
    raise MappingInvalid(f"{name} must be true or false, not {value[:40]!r}.")


def header_name(cell: str) -> str:
    return cell.strip().lstrip("\ufeff").strip().casefold()


def header_key(header: Sequence[str]) -> str:
    """Identity of a header set: its names, compared as headers are, in any order."""
    names = sorted({header_name(cell) for cell in header if header_name(cell)})
    return hashlib.sha256("\x1f".join(names).encode()).hexdigest()


def parse_mapping(text: str, check: bool = True, keys: Collection[str] = ()) -> dict[str, str]:
    """The mapping as given in a request (JSON text), checked on its own: fields and columns.
    Unchecked (for a preview, which reports what is wrong), it need only be an object of text."""
    if len(text) > MAX_MAPPING_CHARS:
        raise MappingInvalid(f"The mapping is longer than {MAX_MAPPING_CHARS:,} characters.")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise MappingInvalid(
            'The mapping is not valid JSON; send an object such as {"sku": "Variant SKU", '
            '"name": "Title"}.'
        ) from None
    if not isinstance(value, dict):
        raise MappingInvalid(
            f"The mapping must be a JSON object of field to column, not {type(value).__name__}."
        )
    if not check:
        if not all(isinstance(v, str | None) for v in value.values()):
            raise MappingInvalid("The mapping's columns must be names (text).")
        return {str(k)[:70]: v for k, v in value.items() if isinstance(v, str)}
    return check_mapping(value, keys)


def check_mapping(value: Mapping[Any, Any], keys: Collection[str] = ()) -> dict[str, str]:
    """The mapping, checked: built-in fields or the custom field `keys`, one column each."""
    unknown = [str(key) for key in value if key not in FIELDS and key not in keys]
    if unknown:
        custom = ", ".join(sorted(keys)[:20]) + (", …" if len(keys) > 20 else "")
        raise MappingInvalid(
            "The mapping names unknown fields: "
            + ", ".join(repr(k[:70]) for k in unknown[:5])
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            + f". Fields: {', '.join(FIELDS)}"
            + (f"; custom fields: {custom}" if custom else " (no custom fields are defined)")
            + " (see GET /api/fields)."
        )
    mapping: dict[str, str] = {}
    for field in (*FIELDS, *(key for key in value if key not in FIELDS)):
        if field not in value or value[field] is None:
            continue
        column = value[field]
        if not isinstance(column, str):
            raise MappingInvalid(
                f"The mapping for {field} must be a column name (text), "
                f"not {type(column).__name__}."
            )
        if not header_name(column):
            continue  # "" means "not mapped", as an empty drop-down does
        if len(column) > MAX_COLUMN_NAME:
            raise MappingInvalid(
                f"The column name for {field} is longer than {MAX_COLUMN_NAME} characters."
            )
        mapping[field] = column.strip()
    missing = [field for field in REQUIRED if field not in mapping]
    if missing:
        raise MappingInvalid(
            f"The mapping must name a column for {' and '.join(missing)} "
            "(sku and name are required; description and active are optional)."
        )
    by_column: dict[str, str] = {}
    for field, column in mapping.items():
        other = by_column.setdefault(header_name(column), field)
        if other != field:
            raise MappingInvalid(
                f"The mapping gives the column {column!r} to both {other} and {field}; "
                "each column can feed one field."
            )
    return mapping


def _found(header: Sequence[str]) -> str:
    names = [repr(h.strip()[:60]) for h in header if h.strip()]
    shown = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50 else "")
    return shown or "none"


def _positions(names: Sequence[str]) -> dict[str, list[int]]:
    positions: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        if name:
            positions.setdefault(name, []).append(index)
    return positions


def _custom_by_header(
    positions: Mapping[str, list[int]], fields: Sequence[FieldSpec], used: Collection[int]
) -> dict[str, int]:
    """Custom fields whose key, else label, is a column's header (any case): {key: index}.
    A key match wins over a label match, and a column feeds one field."""
    found: dict[str, int] = {}
    taken = set(used)
    for by_label in (False, True):
        for spec in fields:
            if spec.key in found:
                continue
            where = positions.get(header_name(spec.label if by_label else spec.key))
            if where and len(where) == 1 and where[0] not in taken:
                found[spec.key] = where[0]
                taken.add(where[0])
    return found


def auto_mapping(header: Sequence[str], fields: Sequence[FieldSpec] = ()) -> dict[str, str]:
    """The mapping a header gives without one: built-ins and custom fields it names."""
    names = [header_name(cell) for cell in header]
    positions = _positions(names)
    found = {f: where[0] for f in FIELDS if len(where := positions.get(f, [])) == 1}
    found.update(_custom_by_header(positions, fields, found.values()))
    return {field: header[index].strip() for field, index in found.items()}


def resolve(
    header: Sequence[str],
    mapping: Mapping[str, str] | None = None,
    fields: Sequence[FieldSpec] = (),
    group_by: str | None = None,
) -> Columns:
    """Where each field sits in a row of this header, with or without a mapping; `fields` are
    the custom fields defined, `group_by` the column that ties rows together, if any."""
    names = [header_name(cell) for cell in header]
    if not any(names):
        raise FileFormatError("The header row is empty.")
    positions = _positions(names)
    wanted = {field: field for field in FIELDS} if mapping is None else dict(mapping)
    if mapping is None:
        duplicates = [name for name, where in positions.items() if len(where) > 1]
        if duplicates:
            raise FileFormatError(
                "The header names a column more than once: " + ", ".join(duplicates) + "."
            )
        missing = [field for field in REQUIRED if field not in positions]
        if missing:
            raise HeaderMismatch(
                f"The header has no {' and no '.join(missing)} column (found: {_found(header)}). "
                "Required columns: sku, name; optional: description, active. "
                "Send a mapping to use other column names.",
                header,
            )
    specs = {spec.key: spec for spec in fields}
    undefined = [key for key in wanted if key not in FIELDS and key not in specs]
    if undefined:
        raise FileFormatError(
            "The mapping names fields that are not defined (any more): "
            + ", ".join(repr(key[:70]) for key in undefined[:5])
            + ". Define them, or map the columns again."
        )
    found: dict[str, int] = {}
    for field, column in wanted.items():
        where = positions.get(header_name(column))
        if where is None:
            if mapping is None:
                continue
            raise HeaderMismatch(
                f"The mapping names the column {column!r} for {field}, but the file has no "
                f"such column (found: {_found(header)}).",
                header,
            )
        if len(where) > 1:
            raise FileFormatError(
                f"The header names the column {column!r} (mapped to {field}) more than once."
            )
        found[field] = where[0]
    if mapping is None:
        found.update(_custom_by_header(positions, fields, found.values()))
    group: int | None = None
    if group_by is not None:
        where = positions.get(header_name(group_by))
        if where is None:
            raise HeaderMismatch(
                f"The group column {group_by!r} is not in the file (found: {_found(header)}).",
                header,
            )
        if len(where) > 1:
            raise FileFormatError(f"The header names the group column {group_by!r} more than once.")
        group = where[0]
    options = tuple(where[0] for name in OPTION_COLUMNS if (where := positions.get(name)))
    used = {*found.values(), group}
    ignored = tuple(
        cell.strip() for index, cell in enumerate(header) if names[index] and index not in used
    )
    return Columns(
        sku=found["sku"],
        name=found["name"],
        description=found.get("description"),
        active=found.get("active"),
        width=len(header),
        ignored=ignored,
        fields=tuple(
            FieldColumn(index, header[index].strip(), specs[key])
            for key, index in found.items()
            if key not in FIELDS
        ),
        group=group,
        options=options,
    )
