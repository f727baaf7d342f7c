"""CSV export: streamed in batches from a server-side cursor, safe to open in a spreadsheet.

A cell a spreadsheet would run as a formula gets a leading apostrophe: one starting with =, +,
-, @, tab or carriage return, also after leading spaces, tabs, line breaks, no-break or other
Unicode spaces (spreadsheets skip them). The escape is reversible: a cell that already starts
with apostrophes before such a start gets one more, so `restore_cell` undoes it exactly and an
exported file imports back to the same catalogue.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from product_importer.catalog import field_types, repository
from product_importer.catalog.schemas import ProductFilters
from product_importer.db import Database

HEADER = ("name", "sku", "description", "active")
BATCH_ROWS = 5_000
# `\s` is every Unicode space (NBSP, U+2000-U+200A, U+3000, line breaks...); the zero-width
# characters are not spaces to Python but are invisible, so are skipped the same way.
_FORMULA = re.compile(r"'*(?:[\t\r]|[\s\u200b-\u200d\u2060\ufeff]*[=+\-@])")


def neutralise_cell(value: str) -> str:
    return "'" + value if _FORMULA.match(value) else value


def restore_cell(value: str) -> str:
    """The inverse of `neutralise_cell`, for readers of exported files."""
    return value[1:] if value.startswith("'") and _FORMULA.match(value, 1) else value


def stream_csv(database: Database, filters: ProductFilters) -> Iterator[bytes]:
    """UTF-8 CSV, one chunk per batch of rows, in id order; memory stays flat. The built-in
    columns come first, then one column per custom field headed by its key (so the file
    imports back into the same fields), its values as `field_types.to_text` writes them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    with database.engine.connect() as connection:
        keys = repository.field_keys(connection)
        writer.writerow((*HEADER, *keys))
        yield buffer.getvalue().encode()
        for rows in repository.export_rows(connection, filters, BATCH_ROWS):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(
                (
                    neutralise_cell(name),
                    neutralise_cell(sku),
                    neutralise_cell(description),
                    "true" if active else "false",
                    *(_field_cell(fields, key) for key in keys),
                )
                for name, sku, description, active, fields in rows
            )
            yield buffer.getvalue().encode()


def _field_cell(fields: dict[str, Any] | None, key: str) -> str:
    value = (fields or {}).get(key)
    return "" if value is None else neutralise_cell(field_types.to_text(value))
