"""Filters and sorts on custom fields: `field.<key>[.<op>]=<value>` and `sort=[-]field.<key>`,
checked against the defined fields and turned into typed criteria (`FieldFilter`,
`FieldSort`) that `repository.conditions` and `repository.order_by` write as SQL.

Names are dynamic, so FastAPI cannot declare them: the list, the export and bulk actions by
filter all parse them here, from whatever carried them (a query string, a bulk request's
`filter`). Every mistake is a `FieldFilterInvalid` naming the parameter, answered with 422.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from product_importer.catalog import field_types
from product_importer.catalog.field_types import FieldValueError
from product_importer.catalog.models import CustomField
from product_importer.catalog.schemas import FieldFilter, FieldSort, ProductSort, SortOrder

PREFIX = "field."
MAX_FIELD_FILTERS = 20
# `field.<key>` alone is equality: text in any letter case, a list containing the element.
EQUALS = "eq"
RANGE = ("gt", "gte", "lt", "lte")
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": (EQUALS, "contains", "set"),
    "url": (EQUALS, "contains", "set"),
    "choice": (EQUALS, "contains", "set"),
    "list": (EQUALS, "set"),
    "integer": (EQUALS, *RANGE, "set"),
    "decimal": (EQUALS, *RANGE, "set"),
    "date": (EQUALS, *RANGE, "set"),
    "boolean": (EQUALS, "set"),
}
ALL_OPERATORS = ("contains", *RANGE, "set")
SORT_PATTERN = r"^-?field\.[a-z][a-z0-9_]{0,62}$"


class FieldFilterInvalid(ValueError):
    """A field filter or sort that cannot be applied; the message names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = _clip(parameter, 80)
        super().__init__(f"{self.parameter}: {message}")
        self.reason = message


def _clip(text: str, length: int = 40) -> str:
    return text if len(text) <= length else text[:length] + "…"


def is_field_parameter(name: str) -> bool:
    return name.startswith(PREFIX)


def _split(name: str) -> tuple[str, str]:
    """(key, operator) of `field.<key>[.<op>]`."""
    parts = name[len(PREFIX) :].split(".")
    if len(parts) > 2 or not parts[0]:
        raise FieldFilterInvalid(
            name, "a field filter is field.<key> or field.<key>.<operator> (see GET /api/fields)"
        )
    key = parts[0]
    if not field_types.KEY_PATTERN.match(key):
        raise FieldFilterInvalid(name, f"{_clip(key)!r} is not a field key")
    if len(parts) == 1:
        return key, EQUALS
    operator = parts[1]
    if operator not in ALL_OPERATORS:
        raise FieldFilterInvalid(
            name,
            f"unknown operator {_clip(operator)!r}; use one of {', '.join(ALL_OPERATORS)} "
            f"(or field.{key}=<value> for equality)",
        )
    return key, operator


def _value(name: str, field: CustomField, operator: str, raw: str) -> Any:
    try:
        if operator == "set":
            return field_types.from_text("boolean", raw)
        if operator == "contains":
            return field_types.check_text(raw.strip(), field_types.TEXT_MAX_LENGTH)
        value = field_types.from_text(field.type, raw, field.choices)
    except FieldValueError as exc:
        raise FieldFilterInvalid(name, f"the value {exc}") from None
    if field.type == "list" and not value:
        raise FieldFilterInvalid(name, "the value names no list element")
    return value


def _resolve(definitions: Mapping[str, CustomField], name: str) -> tuple[CustomField, str]:
    """The field and operator a parameter names, if the field takes that operator."""
    key, operator = _split(name)
    field = definitions.get(key)
    if field is None:
        raise FieldFilterInvalid(name, f"there is no field {key!r} (see GET /api/fields)")
    allowed = OPERATORS.get(field.type, (EQUALS, "set"))
    if operator not in allowed:
        shown = ", ".join(f".{op}" for op in allowed if op != EQUALS)
        raise FieldFilterInvalid(
            name,
            f"{key} is a {field.type} field: it takes field.{key}=<value> and {shown}, "
            f"not .{operator}",
        )
    return field, operator


def parse_filter(definitions: Mapping[str, CustomField], name: str, raw: str) -> FieldFilter:
    field, operator = _resolve(definitions, name)
    return FieldFilter(field.key, field.type, operator, _value(name, field, operator, raw))


def parse_filters(
    definitions: Mapping[str, CustomField], parameters: Iterable[tuple[str, str]]
) -> tuple[FieldFilter, ...]:
    """The field filters among `parameters` (name, value) pairs; other names are not ours. A
    blank value is no filter, as for the built-in filters (its name is still checked)."""
    found: list[FieldFilter] = []
    seen = 0
    for name, raw in parameters:
        if not is_field_parameter(name):
            continue
        seen += 1
        if seen > MAX_FIELD_FILTERS:
            raise FieldFilterInvalid(
                name, f"at most {MAX_FIELD_FILTERS} field filters may be combined"
            )
        if raw.strip():
            found.append(parse_filter(definitions, name, raw))
        else:
            _resolve(definitions, name)
    return tuple(found)


def parse_sort(definitions: Mapping[str, CustomField], value: str) -> SortOrder:
    """A built-in sort, or `field.<key>` / `-field.<key>` of a defined field."""
    try:
        return ProductSort(value)
    except ValueError:
        pass
    descending = value.startswith("-")
    name = value.removeprefix("-")
    builtin = ", ".join(sort.value for sort in ProductSort)
    if not is_field_parameter(name):
        raise FieldFilterInvalid("sort", f"use one of {builtin}, field.<key> or -field.<key>")
    key = name[len(PREFIX) :]
    field = definitions.get(key)
    if field is None:
        raise FieldFilterInvalid(
            "sort", f"there is no field {_clip(key)!r} to sort by (see GET /api/fields)"
        )
    return FieldSort(key, field.type, descending)
