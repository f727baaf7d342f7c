"""One way in for every kind of file: CSV (plain or gzip) or a spreadsheet, read as rows of text.

The pipeline, the upload check and the preview call `open_source` and never ask which kind of
file they have; after this point a workbook is handled exactly as a CSV file.
"""

from __future__ import annotations

import csv
import itertools
import zlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from product_importer.catalog import field_types
from product_importer.imports import mapping as column_mapping
from product_importer.imports import workbook
from product_importer.imports.columns import Columns, FieldSpec, FileFormatError
from product_importer.imports.reading import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    MAX_ROW_CHARS,
    READ_CHARS,
    CsvSource,
    check_encoding,
    detect_format,
)

# Rows read after a header that does not fit, to propose field types from (see fields.py).
SAMPLE_ROWS = 20
# ReadOptions kept in a job's or a saved mapping's `options`.
READ_OPTION_NAMES = ("decimal_separator", "empty_cells", "group_by", "variant_names")
SAMPLE_CHARS = 200
EMPTY_CELLS = ("keep", "clear")


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file, as the person asked: all optional."""

    mapping: dict[str, str] | None = None
    encoding: str | None = None
    sheet: str | None = None
    # How custom field values are read: the decimal separator ("." or ","), and whether an
    # empty cell leaves a field as it is ("keep") or unsets it ("clear").
    decimal_separator: str = "."
    empty_cells: str = "keep"
    # The column that ties a product's rows together (Shopify's Handle), and whether option
    # values are added to a variant's name (see grouping.py).
    group_by: str | None = None
    variant_names: bool = False

    def extra(self) -> dict[str, Any]:
        """The options beyond mapping, encoding and sheet that differ from their defaults."""
        defaults = ReadOptions()
        return {
            name: getattr(self, name)
            for name in READ_OPTION_NAMES
            if getattr(self, name) != getattr(defaults, name)
        }


class RowSource(Protocol):
    header: list[str]
    warnings: tuple[str, ...]

    @property
    def bytes_read(self) -> int: ...

    @property
    def fraction_read(self) -> float | None:
        """Share of the file read when bytes do not tell (workbooks); None for CSV."""

    @property
    def line_num(self) -> int: ...

    def read_header(
        self,
        mapping: Mapping[str, str] | None = None,
        fields: Sequence[FieldSpec] = (),
        group_by: str | None = None,
    ) -> Columns: ...

    def rows(self) -> Iterator[tuple[int, list[str]]]: ...

    def close(self) -> None: ...


@dataclass
class FileInfo:
    """What the start of a file says: kind, sheets, encoding, delimiter, header."""

    kind: str  # "csv" or "workbook"
    header: list[str]
    encoding: str | None = None
    delimiter: str | None = None
    sheets: list[str] = field(default_factory=list)
    sheet: str | None = None
    warnings: list[str] = field(default_factory=list)


def parse_options(
    mapping: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    check_mapping: bool = True,
    keys: Collection[str] = (),
    *,
    decimal_separator: str | None = None,
    empty_cells: str | None = None,
    group_by: str | None = None,
    variant_names: str | bool | None = None,
) -> ReadOptions:
    """Options as sent in a request or on the command line; MappingInvalid says what is wrong.
    `keys` are the custom fields a mapping may name."""
    parsed = (
        column_mapping.parse_mapping(mapping, check_mapping, keys) if mapping is not None else None
    )
    if encoding is not None and encoding.strip():
        try:
            encoding = check_encoding(encoding)
        except FileFormatError as exc:
            raise column_mapping.MappingInvalid(str(exc)) from None
    else:
        encoding = None
    if sheet is not None:
        sheet = sheet.strip() or None
        if sheet is not None and len(sheet) > workbook.MAX_SHEET_NAME:
            raise column_mapping.MappingInvalid(
                f"The sheet name is longer than {workbook.MAX_SHEET_NAME} characters."
            )
    separator = (decimal_separator or ".").strip() or "."
    if separator not in field_types.DECIMAL_SEPARATORS:
        raise column_mapping.MappingInvalid(
            f'decimal_separator must be "." or ",", not {separator[:10]!r}.'
        )
    empty = (empty_cells or "keep").strip().lower() or "keep"
    if empty not in EMPTY_CELLS:
        raise column_mapping.MappingInvalid(
            f'empty_cells must be "keep" or "clear", not {empty[:20]!r}.'
        )
    group = group_by.strip() if group_by is not None else ""
    if len(group) > column_mapping.MAX_COLUMN_NAME:
        raise column_mapping.MappingInvalid(
            f"The group column's name is longer than {column_mapping.MAX_COLUMN_NAME} characters."
        )
    return ReadOptions(
        mapping=parsed,
        encoding=encoding,
        sheet=sheet,
        decimal_separator=separator,
        empty_cells=empty,
        group_by=group or None,
        variant_names=column_mapping.parse_flag("variant_names", variant_names),
    )


def open_source(
    raw: BinaryIO,
    options: ReadOptions,
    encoding: str | None = None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> RowSource:
    """A row source over the file; `encoding` (CSV only) replaces the detected one; a .csv.gz
    that inflates past `max_decompressed_bytes` fails as it is read."""
    if workbook.is_workbook(raw):
        return workbook.WorkbookSource(raw, options.sheet)
    file_format = detect_format(raw, options.encoding)
    return CsvSource(raw, file_format, encoding, max_decompressed_bytes)


def describe(source: RowSource) -> FileInfo:
    if isinstance(source, workbook.WorkbookSource):
        return FileInfo(
            kind="workbook", header=source.header, sheets=source.sheets, sheet=source.sheet
        )
    assert isinstance(source, CsvSource)
    return FileInfo(
        kind="csv",
        header=source.header,
        encoding=source.encoding,
        delimiter=source.format.delimiter,
        warnings=list(source.warnings),
    )


def inspect(
    raw: BinaryIO,
    options: ReadOptions,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    fields: Sequence[FieldSpec] = (),
) -> FileInfo:
    """What can be refused before an import starts: not a usable file, no usable header, a
    mapping or sheet that does not fit. Raises FileFormatError (HeaderMismatch, SheetNotFound);
    a HeaderMismatch carries the first rows, to propose fields from."""
    source = open_source(raw, options, max_decompressed_bytes=max_decompressed_bytes)
    try:
        try:
            source.read_header(options.mapping, fields, options.group_by)
        except UnicodeError as exc:
            if isinstance(source, CsvSource) and source.format.chosen:
                reason = getattr(exc, "reason", None) or str(exc)
                raise FileFormatError(
                    f"The start of the file cannot be decoded as {source.encoding}: {reason}."
                ) from None
            # The sample looked fine; the worker falls back to Windows-1252 if needed.
        except csv.Error as exc:
            raise FileFormatError(f"The header row is not valid CSV: {exc}.") from None
        except column_mapping.HeaderMismatch as exc:
            exc.sheets = getattr(source, "sheets", [])
            exc.samples = _samples(source)
            raise
        return describe(source)
    finally:
        source.close()


class _ReadEnough(Exception):
    pass


def _samples(source: RowSource) -> list[list[str]]:
    """The first rows after the header, as far as they read cleanly and within twice the
    largest row's text (for proposals only; cells cut to SAMPLE_CHARS)."""
    if isinstance(source, CsvSource):
        slices = [0]

        def on_read() -> None:
            slices[0] += 1
            if slices[0] * READ_CHARS > 2 * MAX_ROW_CHARS:
                raise _ReadEnough

        source.on_read = on_read
    taken: list[list[str]] = []
    try:
        for _line, row in itertools.islice(source.rows(), SAMPLE_ROWS):
            taken.append([cell[:SAMPLE_CHARS] for cell in row[: column_mapping.MAX_HEADER_CELLS]])
    except (_ReadEnough, csv.Error, UnicodeError, FileFormatError, EOFError, OSError, zlib.error):
        pass  # the rows read so far are enough to propose from
    return taken
