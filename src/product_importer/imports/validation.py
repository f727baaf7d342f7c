"""Row rules: what a valid product row is, and the exact reason when it is not.

This is the import's hot loop (run once per row of a 500,000-row file), so it is one plain
generator with locals bound up front, and no objects per row beyond the output tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from product_importer.catalog.export import restore_cell
from product_importer.catalog.models import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    SKU_MAX_LENGTH,
)
from product_importer.imports.reading import Columns

# (line, sku_key, sku, name, description, active, fields); active is None when the file has
# no value; fields is None when the row sets no custom field, else compact JSON of a merge
# patch: {key: stored value} and, with empty_cells=clear, {key: null} to unset.
StagedRow = tuple[int, str, str, str, str, bool | None, str | None]
RejectSink = Callable[[int, str, list[str]], None]

# What other systems write for "on sale" (Shopify status, WooCommerce, ERPs), any letter case.
ACTIVE_VALUES = {
    **dict.fromkeys(("true", "1", "yes", "y", "active", "published", "enabled", "visible"), True),
    **dict.fromkeys(
        ("false", "0", "no", "n", "draft", "archived", "unpublished", "disabled", "hidden"), False
    ),
}
ACTIVE_WORDS = (
    "true/false, yes/no, y/n, 1/0, active/draft/archived, published/unpublished, "
    "enabled/disabled or visible/hidden"
)


def normalise(
    rows: Iterable[tuple[int, list[str]]], columns: Columns, reject: RejectSink
) -> Iterator[StagedRow]:
    """Yield one staged tuple per valid row; hand each invalid row to `reject` with a reason."""
    i_sku, i_name, i_desc, i_active = columns.sku, columns.name, columns.description, columns.active
    width = columns.width
    needed = max(i for i in (i_sku, i_name, i_desc, i_active) if i is not None) + 1
    active_values = ACTIVE_VALUES
    sku_max, name_max, desc_max = SKU_MAX_LENGTH, NAME_MAX_LENGTH, DESCRIPTION_MAX_LENGTH
    restore = restore_cell

    for line, row in rows:
        count = len(row)
        if count != width:
            if count > width and any(cell.strip() for cell in row[width:]):
                reject(
                    line,
                    f"Row has {count} fields but the header has {width}; "
                    "the extra values would be lost (check quoting and delimiters).",
                    row,
                )
                continue
            if count < needed:
                row = row + [""] * (needed - count)
        sku = row[i_sku].strip()
        name = row[i_name].strip()
        # Our own export escapes formula-like cells with a leading apostrophe: undo it, so an
        # exported file imports back to the same catalogue.
        if sku[:1] == "'":
            sku = restore(sku)
        if name[:1] == "'":
            name = restore(name)
        if not sku:
            if not any(cell.strip() for cell in row):
                continue  # a row of empty cells, as spreadsheets leave at the end
            reject(line, "SKU is empty.", row)
            continue
        if not name:
            reject(line, "Name is empty.", row)
            continue
        description = row[i_desc].strip() if i_desc is not None else ""
        if description[:1] == "'":
            description = restore(description)
        if len(sku) > sku_max:
            reject(line, f"SKU is {len(sku)} characters; the limit is {sku_max}.", row)
            continue
        if len(name) > name_max:
            reject(line, f"Name is {len(name)} characters; the limit is {name_max}.", row)
            continue
        if len(description) > desc_max:
            reject(
                line,
                f"Description is {len(description)} characters; the limit is {desc_max}.",
                row,
            )
            continue
        if "\x00" in sku or "\x00" in name or "\x00" in description:
            reject(line, "Row contains a NUL character, which cannot be stored.", row)
            continue
        active: bool | None = None
        if i_active is not None:
            raw_active = row[i_active].strip()
            if raw_active:
                active = active_values.get(raw_active.lower())
                if active is None:
                    reject(
                        line,
                        f"Active must be {ACTIVE_WORDS}, not {raw_active[:40]!r}.",
                        row,
                    )
                    continue
        yield line, sku.casefold(), sku, name, description, active, None
