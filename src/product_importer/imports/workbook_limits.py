"""Size limits checked before calamine reads a workbook, so a small file cannot take the server.

calamine turns a sheet into a dense grid (32 bytes a cell) spanning the first to the last cell
with a value, keeps every shared string in memory and copies a shared string into each cell that
uses it. A 5 KB .xlsx with one value at XFD1048576 asks for a 512 GiB grid, and a 1 MB ZIP can
unpack to gigabytes. So, before calamine sees the file:

- the ZIP directory is checked (unpacked size and packing ratio of each part), then each part
  calamine reads is unpacked here, counting the bytes it really holds (a directory can lie);
- the chosen sheet is scanned in a stream for the real extent of its cells (the `<dimension>`
  an .xlsx declares can lie or be missing) and for how much text shared strings and repeated
  cells add once copied into every cell.

The scan is a few regexes over unpacked chunks, not an XML parser: a parser costs a Python step
per cell (seconds for a 500,000-row sheet); the regexes cost about 1.5 s of CPU there.

This module holds the limits and what a sheet adds up to; `workbook_scan` runs the checks and
`workbook_binary` walks the binary formats.
"""

from __future__ import annotations

import copy
import zipfile
from collections.abc import Iterator

from product_importer.imports.columns import FileFormatError

MIB = 1024 * 1024
# Excel's own maximum sheet; calamine stops there too.
MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
# rows x columns from A1 to the last cell with a value: 500,000 rows (header included) of 24
# columns. calamine holds 32 bytes a cell (366 MiB here), whatever the cells hold.
MAX_CELLS = 12_000_000
# One cell's text, as one CSV row (a longer one is almost surely not a product).
MAX_CELL_BYTES = 8 * MIB
# Text that shared strings and repeated cells add once copied into each cell using them.
MAX_TEXT_BYTES = 1024 * MIB
# Unpacked bytes of one part of the ZIP (a sheet, content.xml); shared strings stay in memory
# while the sheet is read, so they get less.
MAX_PART_BYTES = 2048 * MIB
MAX_SHARED_STRINGS_BYTES = 512 * MIB
# Unpacked size / packed size of a part over 1 MiB. Sheets pack 5-20 times; a ZIP bomb 1,000.
MAX_PACKING_RATIO = 100
RATIO_FROM_BYTES = MIB
# An .xls is read whole by calamine (no compression): its size bounds what it holds.
MAX_XLS_BYTES = 256 * MIB
# One .ods row's XML, held while it is scanned (16,384 full cells take about 2 MB).
MAX_ROW_XML_BYTES = 64 * MIB

CHUNK = 4 * MIB
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
SAVE_SMALLER = "save it with less in it (or export the sheet as CSV) and upload it again"


class WorkbookTooLarge(FileFormatError):
    """The workbook is over one of the limits above; the message names it and the figure."""


def _n(value: int) -> str:
    return f"{value:,}"


def column_letters(number: int) -> str:
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_number(letters: bytes) -> int:
    number = 0
    for byte in letters.upper():
        number = number * 26 + byte - 64
    return number


# ---------------------------------------------------------------------------------------------
# ZIP parts

_SMALL_PARTS = {
    "xl/workbook.xml",
    "xl/workbook.bin",
    "xl/_rels/workbook.xml.rels",
    "xl/_rels/workbook.bin.rels",
    "xl/styles.xml",
    "xl/styles.bin",
    "styles.xml",
    "META-INF/manifest.xml",
}


def _is_shared_strings(name: str) -> bool:
    return name.lower() in ("xl/sharedstrings.xml", "xl/sharedstrings.bin")


def _part_limit(name: str) -> int:
    return MAX_SHARED_STRINGS_BYTES if _is_shared_strings(name) else MAX_PART_BYTES


def _check_declared(info: zipfile.ZipInfo) -> None:
    limit = _part_limit(info.filename)
    if info.file_size > limit:
        raise WorkbookTooLarge(
            f"The workbook part {info.filename} unpacks to {_n(info.file_size)} bytes, over the "
            f"limit of {_n(limit)} bytes; {SAVE_SMALLER}."
        )
    _check_ratio(info, info.file_size)


def _check_ratio(info: zipfile.ZipInfo, size: int, more: bool = False) -> None:
    if size > RATIO_FROM_BYTES and size > MAX_PACKING_RATIO * max(info.compress_size, 1):
        ratio = size // max(info.compress_size, 1)
        raise WorkbookTooLarge(
            f"The workbook part {info.filename} unpacks to {'more than ' if more else ''}"
            f"{_n(ratio)} times its packed size, over the limit of {MAX_PACKING_RATIO} times "
            f"(a ZIP bomb?); {SAVE_SMALLER}."
        )


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The part's bytes as they really unpack: zipfile stops at the size the directory declares,
    and calamine does not, so the declared size is lifted and the bytes counted here."""
    limit = _part_limit(info.filename)
    honest = copy.copy(info)
    honest.file_size = 1 << 62  # zipfile then reads to the end of the packed data
    size = 0
    with archive.open(honest) as stream:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > info.file_size:
                if size > limit:
                    raise WorkbookTooLarge(
                        f"The workbook part {info.filename} unpacks to more than {_n(limit)} "
                        f"bytes, over the limit; {SAVE_SMALLER}."
                    )
                _check_ratio(info, size, more=True)
            yield chunk
    if size != info.file_size:
        raise FileFormatError(
            f"The workbook is damaged and cannot be read (the part {info.filename} holds "
            f"{_n(size)} bytes, its directory says {_n(info.file_size)})."
        )


def _chunks(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    return _unpack(archive, archive.getinfo(name))


# ---------------------------------------------------------------------------------------------
# What a sheet adds up to


class Extent:
    """The last row and column with a value (from 1), and the text copies add."""

    def __init__(self, sheet: str) -> None:
        self.sheet = sheet
        self.rows = 0
        self.columns = 0
        self.text = 0

    def over(self) -> bool:
        return (
            self.rows > MAX_ROWS
            or self.columns > MAX_COLUMNS
            or self.rows * self.columns > MAX_CELLS
            or self.text > MAX_TEXT_BYTES
        )

    def check(self) -> None:
        where = f"The sheet {self.sheet!r}"
        if self.rows > MAX_ROWS:
            raise WorkbookTooLarge(
                f"{where} has a value in row {_n(self.rows)}, over the limit of "
                f"{_n(MAX_ROWS)} rows; {SAVE_SMALLER}."
            )
        if self.columns > MAX_COLUMNS:
            raise WorkbookTooLarge(
                f"{where} has a value in column {_n(self.columns)}, over the limit of "
                f"{_n(MAX_COLUMNS)} columns; {SAVE_SMALLER}."
            )
        cells = self.rows * self.columns
        if cells > MAX_CELLS:
            raise WorkbookTooLarge(
                f"{where} spans {_n(self.rows)} rows by {_n(self.columns)} columns (its last "
                f"value is in row {_n(self.rows)}, column {column_letters(self.columns)}): "
                f"{_n(cells)} cells, over the limit of {_n(MAX_CELLS)} cells (rows x columns); "
                f"delete what lies beyond the data, or {SAVE_SMALLER}."
            )
        if self.text > MAX_TEXT_BYTES:
            raise WorkbookTooLarge(
                f"{where} holds at least {_n(self.text)} bytes of text once shared or repeated "
                f"cells are copied into each cell, over the limit of {_n(MAX_TEXT_BYTES)} "
                f"bytes; {SAVE_SMALLER}."
            )


def _cell_too_long(sheet: str, size: int | None = None) -> WorkbookTooLarge:
    """`size` when it is known; a text read in a stream is refused as soon as it is too long."""
    held = f"{_n(size)} bytes" if size is not None else f"more than {_n(MAX_CELL_BYTES)} bytes"
    return WorkbookTooLarge(
        f"A cell of the sheet {sheet!r} holds {held} of text, over the limit of "
        f"{_n(MAX_CELL_BYTES)} bytes for one cell; {SAVE_SMALLER}."
    )
