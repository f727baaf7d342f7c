"""One way in for every kind of file: CSV (plain or gzip) or a spreadsheet, read as rows of text.

The pipeline, the upload check and the preview call `open_source` and never ask which kind of
file they have; after this point a workbook is handled exactly as a CSV file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from product_importer.imports import mapping as column_mapping
from product_importer.imports import workbook
from product_importer.imports.columns import Columns, FileFormatError
from product_importer.imports.reading import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    CsvSource,
    check_encoding,
    detect_format,
)


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file, as the person asked: all optional."""

    mapping: dict[str, str] | None = None
    encoding: str | None = None
    sheet: str | None = None


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

    def read_header(self, mapping: Mapping[str, str] | None = None) -> Columns: ...

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
) -> ReadOptions:
    """Options as sent in a request or on the command line; MappingInvalid says what is wrong."""
    parsed = column_mapping.parse_mapping(mapping, check_mapping) if mapping is not None else None
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
    return ReadOptions(mapping=parsed, encoding=encoding, sheet=sheet)


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
) -> FileInfo:
    """What can be refused before an import starts: not a usable file, no usable header, a
    mapping or sheet that does not fit. Raises FileFormatError (HeaderMismatch, SheetNotFound)."""
    source = open_source(raw, options, max_decompressed_bytes=max_decompressed_bytes)
    try:
        try:
            source.read_header(options.mapping)
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
            raise
        return describe(source)
    finally:
        source.close()
