"""Reading spreadsheets (.xlsx, .xlsm, .xlsb, .xls, .ods) through python-calamine.

calamine reads one sheet's cells into memory (compactly, in Rust) and we turn one row at a time
into the text a person sees in the spreadsheet, so the rest of the import is the CSV pipeline.
calamine holds a dense grid and has no limits of its own, so `workbook_limits` checks the file
before calamine reads any of it.
Bytes say nothing about progress here (the sheet is read before the first row), so progress is
rows done out of the sheet's height.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import BinaryIO

import python_calamine as calamine

from product_importer.imports import mapping as column_mapping
from product_importer.imports import workbook_scan
from product_importer.imports.columns import Columns, FieldSpec, FileFormatError

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
MAX_SHEET_NAME = 255
# A float with up to 15 significant digits is shown by Excel as it was typed.
FLOAT_DIGITS = 15
PROTECTED_MESSAGE = (
    "The workbook is password-protected, so it cannot be read. Open it, remove the password "
    "(in Excel: File > Info > Protect Workbook > Encrypt with Password, clear it), save, and "
    "upload it again."
)


class SheetNotFound(FileFormatError):
    def __init__(self, message: str, sheets: list[str]) -> None:
        super().__init__(message)
        self.sheets = sheets


def is_workbook(raw: BinaryIO) -> bool:
    """A spreadsheet by its content (never by its name): an OOXML/ODF ZIP or an OLE file."""
    raw.seek(0)
    magic = raw.read(8)
    raw.seek(0)
    if magic.startswith(OLE_MAGIC):
        return True  # .xls, or an encrypted .xlsx (calamine tells which)
    if not magic.startswith(ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(raw) as archive:
            names = set(archive.namelist())
            if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
                return True
            return "mimetype" in names and archive.read("mimetype").strip() == ODS_MIMETYPE
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError):
        raise FileFormatError(
            "The file is a damaged ZIP archive (a spreadsheet cut short or corrupted?); "
            "save it again and upload the new file."
        ) from None
    finally:
        raw.seek(0)


def cell_text(value: object) -> str:
    """A cell as the spreadsheet shows it: 12345 not 12345.0, ISO dates, true/false."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, f".{FLOAT_DIGITS}g")
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return "" if value is None else str(value)


def _is_encrypted_ooxml(raw: BinaryIO) -> bool:
    """Excel's "Encrypt with Password" wraps the .xlsx in an OLE file with an EncryptedPackage
    stream; the stream's name (UTF-16) is in the OLE directory, anywhere in the file."""
    raw.seek(0)
    if raw.read(8) != OLE_MAGIC:
        return False
    tail = b""
    while chunk := raw.read(1024 * 1024):
        if ENCRYPTED_PACKAGE in tail + chunk:
            return True
        tail = chunk[-len(ENCRYPTED_PACKAGE) :]
    return False


def _open(raw: BinaryIO) -> calamine.CalamineWorkbook:
    raw.seek(0)
    name = getattr(raw, "name", None)
    try:
        if isinstance(name, str) and Path(name).is_file():
            return calamine.CalamineWorkbook.from_path(name)
        return calamine.CalamineWorkbook.from_filelike(io.BytesIO(raw.read()))
    except calamine.PasswordError:
        raise FileFormatError(PROTECTED_MESSAGE) from None
    except calamine.CalamineError as exc:
        if _is_encrypted_ooxml(raw):
            raise FileFormatError(PROTECTED_MESSAGE) from None
        if "detect file format" in str(exc):
            raise FileFormatError(
                "This Office file is not a spreadsheet that can be read (or it is damaged); "
                "save it as .xlsx, .ods or CSV and try again."
            ) from None
        raise FileFormatError(f"The workbook is damaged and cannot be read ({exc}).") from None
    except (calamine.XmlError, calamine.ZipError, ValueError, OSError) as exc:
        raise FileFormatError(f"The workbook is damaged and cannot be read ({exc}).") from None


def pick_sheet(names: list[str], wanted: str | None) -> str:
    """The sheet to read: the first one, or one named or numbered (from 1) by `wanted`."""
    if not names:
        raise FileFormatError("The workbook has no sheets.")
    if wanted is None or not wanted.strip():
        return names[0]
    wanted = wanted.strip()
    listed = ", ".join(repr(n) for n in names[:50])
    if wanted.isascii() and wanted.isdigit():
        number = int(wanted[:12])
        if 1 <= number <= len(names):
            return names[number - 1]
        raise SheetNotFound(
            f"The workbook has {len(names)} sheet(s); there is no sheet number {wanted[:12]} "
            f"(sheets: {listed}).",
            names,
        )
    for name in names:
        if name == wanted:
            return name
    for name in names:
        if name.strip().casefold() == wanted.casefold():
            return name
    raise SheetNotFound(
        f"The workbook has no sheet named {wanted[:MAX_SHEET_NAME]!r} (sheets: {listed}).", names
    )


class WorkbookSource:
    """Streams (spreadsheet row number, cells as text) from one sheet of a workbook."""

    def __init__(self, raw: BinaryIO, sheet: str | None = None) -> None:
        workbook_scan.check_archive(raw)
        workbook = _open(raw)
        try:
            self.sheets = list(workbook.sheet_names)
            self.sheet = pick_sheet(self.sheets, sheet)
            # calamine builds the sheet's whole grid at once: check what it would take first.
            workbook_scan.check_sheet(raw, self.sheet)
            data = workbook.get_sheet_by_name(self.sheet)
        except calamine.PasswordError:
            raise FileFormatError(PROTECTED_MESSAGE) from None
        except (calamine.CalamineError, calamine.XmlError, calamine.ZipError, ValueError) as exc:
            raise FileFormatError(
                f"The sheet {self.sheet!r} is damaged and cannot be read ({exc})."
            ) from None
        end = data.end
        self.total_rows = (end[0] + 1) if end is not None else 0
        self._rows = iter(data.iter_rows()) if end is not None else iter(())
        self._row_number = 0
        self.header: list[str] = []
        self.warnings: tuple[str, ...] = ()
        workbook.close()

    @property
    def bytes_read(self) -> int:
        return 0

    @property
    def fraction_read(self) -> float | None:
        return self._row_number / self.total_rows if self.total_rows else 1.0

    @property
    def line_num(self) -> int:
        return self._row_number

    def _next_filled(self) -> tuple[int, list[str]] | None:
        text = cell_text
        for row in self._rows:
            self._row_number += 1
            cells = [text(value) for value in row]
            if any(cell.strip() for cell in cells):
                return self._row_number, cells
        return None

    def read_header(
        self,
        mapping: Mapping[str, str] | None = None,
        fields: Sequence[FieldSpec] = (),
        group_by: str | None = None,
    ) -> Columns:
        first = self._next_filled()
        if first is None:
            raise FileFormatError(f"The sheet {self.sheet!r} is empty.")
        self.header = first[1]
        while self.header and not self.header[-1].strip():
            self.header.pop()
        return column_mapping.resolve(self.header, mapping, fields, group_by)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Data rows with their spreadsheet row number; empty rows are skipped."""
        while (item := self._next_filled()) is not None:
            yield item

    def close(self) -> None:
        self._rows = iter(())
