"""Rows that belong together: a Shopify export's variants.

Shopify writes a product's own columns (Title, Body (HTML), Vendor, Tags, Status) only on the
first row of each Handle; the variant rows below it carry a Variant SKU and the variant's
columns. With a group column (`group_by`, e.g. Handle), a row with the same group value as the
row before it takes every mapped cell it leaves empty from the group's FIRST row. The SKU is not
taken: a row without one (Shopify's extra image rows) is still rejected.

This streams: Shopify writes a group's rows one after another, so only the current group's
first row is kept. A group value that comes back after another group starts a new group (its
rows are not joined to the earlier ones). A row with an empty group value stands alone.

With `variant_names`, a row's option values (Option1 Value ... Option3 Value, when the file has
them, non-empty and not Shopify's "Default Title") are added to its name, so the variants are
told apart: `Example T-Shirt / Small`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from product_importer.imports.columns import Columns

# What Shopify writes as the option of a product without variants.
DEFAULT_OPTION = "default title"
NAME_JOINER = " / "


def inherit(
    rows: Iterable[tuple[int, list[str]]], columns: Columns, variant_names: bool = False
) -> Iterator[tuple[int, list[str]]]:
    """The rows with empty mapped cells filled from their group's first row, and option
    values added to names; rows are copied only when they change."""
    i_group = columns.group
    i_name = columns.name
    shared = [i for i in (columns.name, columns.description, columns.active) if i is not None]
    shared += [fc.index for fc in columns.fields]
    reach = max(shared) + 1
    options = columns.options if variant_names else ()
    current = ""
    first: list[str] = []
    for line, row in rows:
        if i_group is not None:
            group = row[i_group].strip() if i_group < len(row) else ""
            if group and group == current:
                filled: list[str] | None = None
                for i in shared:
                    if (i < len(row) and row[i].strip()) or i >= len(first) or not first[i].strip():
                        continue
                    if filled is None:
                        filled = row + [""] * (reach - len(row)) if len(row) < reach else row[:]
                    filled[i] = first[i]
                if filled is not None:
                    row = filled
            else:
                current, first = group, row
        if options and i_name < len(row):
            name = row[i_name].strip()
            values = [
                value
                for i in options
                if i < len(row) and (value := row[i].strip()) and value.lower() != DEFAULT_OPTION
            ]
            if name and values:
                row = row[:]
                row[i_name] = NAME_JOINER.join([name, *values])
        yield line, row
