"""The first rows of a file as the import will see them: after mapping, `active` and custom
field values read, rows of a group filled from its first row, rejects marked with their reason.
Runs the same readers and row rules as the import, on a few rows; proposes a field for each
column nothing is mapped to.

The browser may send only the head of a big CSV file (`partial`): then the last row read may be
cut short, and it is left out, as are errors at the cut.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, BinaryIO

from product_importer.imports import fields as import_fields
from product_importer.imports import grouping
from product_importer.imports import mapping as column_mapping
from product_importer.imports.columns import Columns, FieldSpec, FileFormatError
from product_importer.imports.reading import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    MAX_ROW_CHARS,
    READ_CHARS,
    CsvSource,
)
from product_importer.imports.saved_mappings import Suggestion
from product_importer.imports.schemas import ImportPreview, PreviewRow
from product_importer.imports.sources import ReadOptions, RowSource, describe, open_source
from product_importer.imports.validation import normalise

PREVIEW_ROWS = 20
FALLBACK_ENCODING = "cp1252"
SHOWN_CHARS = 2000
# A preview reads no more text than this looking for its rows (runs of blank lines could
# otherwise keep a request reading a whole inflated .csv.gz); a row of the largest size fits.
PREVIEW_MAX_CHARS = 2 * MAX_ROW_CHARS


class _ReadEnough(Exception):
    """The preview has read PREVIEW_MAX_CHARS of text: it shows the rows found so far."""


def _stop_after(limit: int) -> Callable[[], None]:
    slices = [0]

    def on_read() -> None:
        slices[0] += 1
        if slices[0] * READ_CHARS > limit:
            raise _ReadEnough

    return on_read


def _head(
    source: RowSource, partial: bool, count: int = PREVIEW_ROWS
) -> Iterator[tuple[int, list[str]]]:
    """Up to `count` rows (one more is read when the sample is partial, to drop a cut row)."""
    rows = source.rows()
    wanted = count + 1 if partial else count
    taken: list[tuple[int, list[str]]] = []
    try:
        for item in rows:
            taken.append(item)
            if len(taken) == wanted:
                break
    except _ReadEnough:
        partial = False  # the rows read are whole; the rest of the file is not looked at
    except (csv.Error, EOFError, zlib.error, FileFormatError):
        if not partial:
            raise  # in a partial sample, the error is at the cut: the rows before it stand
    if partial and taken:
        taken.pop()  # the sample's last row may be cut short
    yield from taken[:count]


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index].strip()[:SHOWN_CHARS]


def _shown(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return value[:SHOWN_CHARS] + "…"
    return value


def _rows(
    head: list[tuple[int, list[str]]], columns: Columns, options: ReadOptions
) -> list[PreviewRow]:
    results: dict[int, PreviewRow] = {}

    def reject(line: int, reason: str, fields: list[str]) -> None:
        results[line] = PreviewRow(
            line=line,
            sku=_cell(fields, columns.sku),
            name=_cell(fields, columns.name),
            description=_cell(fields, columns.description),
            active=None,
            rejected=reason,
            fields=[f[:SHOWN_CHARS] for f in fields],
        )

    if columns.group is not None or (options.variant_names and columns.options):
        head = list(grouping.inherit(head, columns, options.variant_names))
    staged = normalise(head, columns, reject, options.decimal_separator, options.empty_cells)
    for line, _key, sku, name, description, active, values in staged:
        results[line] = PreviewRow(
            line=line,
            sku=sku,
            name=name,
            description=description[:SHOWN_CHARS],
            active=active,
            rejected=None,
            fields=[],
            field_values={k: _shown(v) for k, v in json.loads(values).items()} if values else {},
        )
    fields_by_line = dict(head)
    for line, row in results.items():
        if not row.fields:
            row.fields = [f[:SHOWN_CHARS] for f in fields_by_line.get(line, [])]
    return [results[line] for line in sorted(results)]


def preview(
    raw: BinaryIO,
    options: ReadOptions,
    suggestion_for: Callable[[Sequence[str]], Suggestion],
    partial: bool = False,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    fields: Sequence[FieldSpec] = (),
) -> ImportPreview:
    """Raises FileFormatError when the file cannot be read at all (the upload would be refused
    too); a mapping that does not fit is reported in the answer, not raised. `fields` are the
    custom fields defined."""
    encoding: str | None = None
    while True:
        source = open_source(raw, options, encoding, max_decompressed_bytes)
        if isinstance(source, CsvSource):
            source.on_read = _stop_after(PREVIEW_MAX_CHARS)
        try:
            return _preview(source, options, suggestion_for, partial, fields)
        except UnicodeError as exc:  # idna-like codecs raise UnicodeError, not a decode error
            chosen = isinstance(source, CsvSource) and source.format.chosen
            if chosen or encoding is not None or not isinstance(source, CsvSource):
                name = getattr(exc, "encoding", None) or getattr(source, "encoding", "")
                reason = getattr(exc, "reason", None) or str(exc)
                raise FileFormatError(f"The file cannot be decoded as {name}: {reason}.") from None
            encoding = FALLBACK_ENCODING  # as the import does when UTF-8 turns out wrong
        except csv.Error as exc:
            raise FileFormatError(f"Line {source.line_num}: {exc}.") from None
        finally:
            source.close()


def _preview(
    source: RowSource,
    options: ReadOptions,
    suggestion_for: Callable[[Sequence[str]], Suggestion],
    partial: bool,
    fields: Sequence[FieldSpec],
) -> ImportPreview:
    header_matches = True
    try:
        source.read_header(None, fields)
    except column_mapping.HeaderMismatch:
        header_matches = False
    info = describe(source)
    if options.mapping is not None:
        mapping, mapping_source, saved_name = dict(options.mapping), "given", None
    else:
        suggestion = suggestion_for(info.header)
        mapping, mapping_source = suggestion.mapping, suggestion.source
        saved_name = suggestion.saved_name
        if suggestion.options and not options.extra():
            # A saved mapping's reading options, unless the request chose its own.
            options = replace(options, **suggestion.options)
    columns: Columns | None = None
    mapping_error: str | None = None
    try:
        keys = [spec.key for spec in fields]
        checked = column_mapping.check_mapping(mapping, keys)
        columns = column_mapping.resolve(info.header, checked, fields, options.group_by)
    except (FileFormatError, column_mapping.MappingInvalid) as exc:
        mapping_error = str(exc)
    head = list(_head(source, partial))
    rows = _rows(head, columns, options) if columns is not None else []
    warnings = list(info.warnings)
    if isinstance(source, CsvSource) and source.encoding != source.format.encoding:
        warnings.append(f"The file is not UTF-8; it was read as {source.encoding}.")
    if columns is not None and columns.ignored:
        warnings.append("Ignored columns: " + ", ".join(columns.ignored[:50]) + ".")
    return ImportPreview(
        kind=info.kind,
        columns=[cell.strip() for cell in info.header],
        sheets=info.sheets,
        sheet=info.sheet,
        encoding=source.encoding if isinstance(source, CsvSource) else None,
        delimiter=info.delimiter,
        mapping=mapping,
        mapping_source=mapping_source,
        saved_mapping=saved_name,
        header_matches=header_matches,
        mapping_error=mapping_error,
        rows=rows,
        warnings=warnings,
        decimal_separator=options.decimal_separator,
        empty_cells=options.empty_cells,
        group_by=options.group_by,
        variant_names=options.variant_names,
        fields=import_fields.defined(fields),
        proposed_fields=import_fields.propose(
            info.header,
            import_fields.used_columns(mapping, options.group_by),
            fields,
            [row for _line, row in head],
        ),
        group_by_suggestion=import_fields.group_by_suggestion(info.header),
    )
