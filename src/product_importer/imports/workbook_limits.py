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
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import posixpath
import re
import struct
import zipfile
from array import array
from collections.abc import Iterator
from typing import BinaryIO, Literal
from xml.etree import ElementTree
from xml.sax import saxutils

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


def check_archive(raw: BinaryIO) -> None:
    """The ZIP directory's figures for every part, before calamine unpacks any of them."""
    raw.seek(0)
    if raw.read(8).startswith(OLE_MAGIC):
        _check_xls(raw)
        raw.seek(0)
        return
    raw.seek(0)
    if not zipfile.is_zipfile(raw):
        raw.seek(0)
        return
    raw.seek(0)
    try:
        with zipfile.ZipFile(raw) as archive:
            for info in archive.infolist():
                _check_declared(info)
            # calamine keeps these whole in memory: count what they really unpack to.
            for info in archive.infolist():
                if _is_shared_strings(info.filename) or info.filename in _SMALL_PARTS:
                    for _chunk in _unpack(archive, info):
                        pass
            if "content.xml" in archive.namelist():
                _scan_ods(archive)  # calamine reads every sheet of an .ods when it opens it
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise FileFormatError(f"The workbook is damaged and cannot be read ({exc}).") from None
    finally:
        raw.seek(0)


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


def check_sheet(raw: BinaryIO, sheet: str) -> None:
    """Raises WorkbookTooLarge when reading `sheet` would go past a limit."""
    raw.seek(0)
    try:
        _check_sheet(raw, sheet)
    finally:
        _return_freed_memory()


def _return_freed_memory() -> None:
    """Give the scan's freed buffers back before calamine builds its grid: glibc keeps them, and
    the grid then grew beside them (the 500,000-row bench import peaked at 409 MB against 325 MB
    without the scan)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _check_sheet(raw: BinaryIO, sheet: str) -> None:
    try:
        if not zipfile.is_zipfile(raw):
            return
        raw.seek(0)
        with zipfile.ZipFile(raw) as archive:
            names = set(archive.namelist())
            if "xl/workbook.xml" in names:
                for part in _sheet_parts(archive, sheet, "xml"):
                    extent = Extent(sheet)
                    _scan_xlsx(archive, part, extent)
                    extent.check()
            elif "xl/workbook.bin" in names:
                for part in _sheet_parts(archive, sheet, "bin"):
                    extent = Extent(sheet)
                    _scan_xlsb(archive, part, extent)
                    extent.check()
    except (
        zipfile.BadZipFile,
        ElementTree.ParseError,
        OSError,
        EOFError,
        ValueError,
        KeyError,
        struct.error,
    ) as exc:
        raise FileFormatError(f"The workbook is damaged and cannot be read ({exc}).") from None
    finally:
        raw.seek(0)


# ---------------------------------------------------------------------------------------------
# .xlsx / .xlsm / .xlsb: which part holds the sheet

_RELS_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _sheet_parts(archive: zipfile.ZipFile, sheet: str, kind: str) -> list[str]:
    """The part holding `sheet` (workbook.xml names it, its .rels says where it is); every
    worksheet part when that cannot be followed, since calamine may still find it."""
    workbook = f"xl/workbook.{kind}"
    if kind == "bin":
        rid = _xlsb_sheet_rid(_chunks(archive, workbook), sheet)
    else:
        rid = None
        for _event, element in _parse(_chunks(archive, workbook)):
            if element.tag.endswith("}sheet") and element.get("name") == sheet:
                rid = element.get(f"{{{_RELS_NS}}}id")
                break
    rels = f"xl/_rels/workbook.{kind}.rels"
    target = None
    if rid is not None and rels in archive.namelist():
        for _event, element in _parse(_chunks(archive, rels)):
            if element.tag.endswith("}Relationship") and element.get("Id") == rid:
                target = element.get("Target")
                break
    names = {name.lower(): name for name in archive.namelist()}
    if target is not None:
        part = target[1:] if target.startswith("/") else posixpath.normpath(f"xl/{target}")
        if part.lower() in names:
            return [names[part.lower()]]
    return [name for name in names.values() if name.lower().startswith("xl/worksheets/sheet")]


def _parse(
    chunks: Iterator[bytes], events: tuple[Literal["start", "end"], ...] = ("end",)
) -> Iterator[tuple[str, ElementTree.Element]]:
    """(event, element) from unpacked chunks. expat 2.4 and later refuse entity expansion
    bombs and nothing external is fetched, so the standard parser is safe here."""
    parser: ElementTree.XMLPullParser[ElementTree.Element] = ElementTree.XMLPullParser(events)
    for chunk in chunks:
        parser.feed(chunk)
        yield from parser.read_events()  # type: ignore[misc]
    parser.close()
    yield from parser.read_events()  # type: ignore[misc]


def _shared_string_sizes(archive: zipfile.ZipFile, sheet: str) -> array[int]:
    """Bytes of each shared string, markup included (an over-count that keeps the scan cheap)."""
    sizes: array[int] = array("Q")
    name = next((n for n in archive.namelist() if n.lower() == "xl/sharedstrings.xml"), None)
    if name is None:
        return sizes
    pending = 0  # bytes of the string still open at the end of the previous chunk
    started = False
    tail = b""
    for chunk in _chunks(archive, name):
        buf = tail + chunk
        cut = buf.rfind(b"<")
        if cut <= 0:
            cut = len(buf)  # one long text: nothing to carry
        buf, tail = buf[:cut], buf[cut:]
        pieces = _SI.split(buf)
        pending += len(pieces[0])
        for piece in pieces[1:]:
            if started:
                sizes.append(pending)
            started = True
            pending = len(piece)
        if pending > MAX_CELL_BYTES:
            raise _cell_too_long(sheet)
    if started:
        sizes.append(pending + len(tail))
    longest = max(sizes, default=0)
    if longest > MAX_CELL_BYTES:
        raise _cell_too_long(sheet, longest)
    return sizes


_SI = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s>]")
_REF_ROW = re.compile(rb'<c r="[A-Za-z]+([0-9]+)"')
# Any r="B7" (faster than with "<c " first): another element's would only overstate the width.
_REF_COLUMN = re.compile(rb'r="([A-Za-z]+)[0-9]')
_SHARED = re.compile(rb' t="s"[^>/]*>\s*<v>\s*([0-9]{1,12})\s*</v>')


def _scan_xlsx(archive: zipfile.ZipFile, part: str, extent: Extent) -> None:
    """Every referenced cell counts here, styled empty ones too, which keeps the scan to two
    regexes a chunk; calamine leaves empty cells out, so a sheet this puts over a limit is
    scanned again cell by cell before it is refused."""
    sizes = _shared_string_sizes(archive, extent.sheet)
    if not _scan_references(archive, part, extent, sizes) or extent.over():
        extent.rows = extent.columns = extent.text = 0
        _scan_xlsx_by_parser(archive, part, extent, sizes)


def _scan_references(
    archive: zipfile.ZipFile, part: str, extent: Extent, sizes: array[int]
) -> bool:
    """False when some cell has no reference (or not as its first attribute)."""
    tail = b""
    run = 0  # bytes since the last "<": the text being read
    for chunk in _chunks(archive, part):
        last = chunk.rfind(b"<")
        run = run + len(chunk) if last < 0 else len(chunk) - last - 1
        if run > MAX_CELL_BYTES:
            raise _cell_too_long(extent.sheet)
        buf = tail + chunk
        # Carry the last cell whole to the next chunk (its shared string index with it).
        cut = buf.rfind(b"<c ", max(0, len(buf) - CHUNK))
        if cut <= 0:
            cut = buf.rfind(b"<")
            if cut <= 0:
                cut = len(buf)
        buf, tail = buf[:cut], buf[cut:]
        if not _count_references(buf, extent, sizes):
            return False
        if extent.over():
            return True  # no need to read on
    return _count_references(tail, extent, sizes)


def _count_references(buf: bytes, extent: Extent, sizes: array[int]) -> bool:
    rows = _REF_ROW.findall(buf)
    tags = buf.count(b"<c")  # cells, and also <cols>, <col>, <cfRule>...: count exactly
    if tags != len(rows):
        cells = buf.count(b"<c ") + buf.count(b"<c>") + buf.count(b"<c/>")
        if cells != len(rows) or cells != buf.count(b'<c r="'):
            return False
    if not rows:
        return True
    extent.rows = max(extent.rows, max(map(int, set(rows))))
    columns = set(_REF_COLUMN.findall(buf))
    extent.columns = max(extent.columns, max(map(column_number, columns)))
    if sizes:
        shared = _SHARED.findall(buf)
        with contextlib.suppress(IndexError):  # calamine reports a missing string
            extent.text += sum(map(sizes.__getitem__, map(int, shared)))
    return True


def _scan_xlsx_by_parser(
    archive: zipfile.ZipFile, part: str, extent: Extent, sizes: array[int]
) -> None:
    """As calamine places cells: a reference if there is one, else next to the previous one."""
    row = column = 0
    extent.rows = extent.columns = extent.text = 0
    for event, element in _parse(_chunks(archive, part), ("start", "end")):
        tag = element.tag.rpartition("}")[2]
        if event == "start":
            if tag == "row":
                number = element.get("r")
                row = int(number) if number and number.isdigit() else row + 1
                column = 0
            continue
        if tag == "c":
            ref = element.get("r")
            match = re.fullmatch(r"([A-Za-z]+)([0-9]+)", ref or "")
            if match:
                column = column_number(match[1].encode())
                row = int(match[2])
            else:
                column += 1
            if len(element):  # a value, inline text or formula (no child: an empty cell)
                extent.rows = max(extent.rows, row)
                extent.columns = max(extent.columns, column)
                value = next((v.text or "" for v in element if v.tag.endswith("v")), "")
                if element.get("t") == "s" and value.strip().isdigit():
                    index = int(value)
                    extent.text += sizes[index] if index < len(sizes) else 0
            element.clear()
        elif tag == "row":
            element.clear()


# ---------------------------------------------------------------------------------------------
# .xlsb: records of a binary sheet

_BRT_ROW_HDR = 0x0000
_BRT_CELL_BLANK = 0x0001
_BRT_CELL_ISST = 0x0007
_BRT_CELL_LAST = 0x000B
_BRT_SST_ITEM = 0x0013
_BRT_BUNDLE_SH = 0x009C


def _records(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """(record type, its data) of an .xlsb stream, read chunk by chunk."""
    buf = b""
    pos = 0
    for chunk in chunks:
        buf = buf[pos:] + chunk
        pos = 0
        while True:
            # A header is a type of 1-2 bytes and a size of 1-4, 7 bits a byte.
            start = pos
            if start + 6 > len(buf) and not _header_fits(buf, start):
                break
            kind = buf[pos]
            pos += 1
            if kind & 0x80:
                kind = (kind & 0x7F) | ((buf[pos] & 0x7F) << 7)
                pos += 1
            size = shift = 0
            for _ in range(4):
                byte = buf[pos]
                pos += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            if pos + size > len(buf):
                if size > MAX_ROW_XML_BYTES:
                    raise WorkbookTooLarge(
                        f"A record of the sheet takes {_n(size)} bytes, over the limit of "
                        f"{_n(MAX_ROW_XML_BYTES)}; {SAVE_SMALLER}."
                    )
                pos = start
                break
            yield kind, buf[pos : pos + size]
            pos += size


def _header_fits(buf: bytes, pos: int) -> bool:
    """Whether a whole record header (and nothing cut) starts at `pos`."""
    if pos >= len(buf):
        return False
    if buf[pos] & 0x80:
        pos += 1
    pos += 1
    for _ in range(4):
        if pos >= len(buf):
            return False
        if not buf[pos] & 0x80:
            return True
        pos += 1
    return True


def _xlsb_sheet_rid(chunks: Iterator[bytes], sheet: str) -> str | None:
    for kind, data in _records(chunks):
        if kind == _BRT_BUNDLE_SH:
            # hsState, iTabID, then the relationship id and the name as wide strings
            length = int.from_bytes(data[8:12], "little")
            rid = data[12 : 12 + 2 * length].decode("utf-16-le")
            pos = 12 + 2 * length
            length = int.from_bytes(data[pos : pos + 4], "little")
            if data[pos + 4 : pos + 4 + 2 * length].decode("utf-16-le") == sheet:
                return rid
    return None


def _scan_xlsb(archive: zipfile.ZipFile, part: str, extent: Extent) -> None:
    """A Python step per record: slow for a big .xlsb (rare), but exact."""
    sizes: array[int] = array("Q")
    name = next((n for n in archive.namelist() if n.lower() == "xl/sharedstrings.bin"), None)
    if name is not None:
        for kind, data in _records(_chunks(archive, name)):
            if kind == _BRT_SST_ITEM:
                sizes.append(2 * int.from_bytes(data[1:5], "little"))
        if max(sizes, default=0) > MAX_CELL_BYTES:
            raise _cell_too_long(extent.sheet, max(sizes))
    row = 0
    for kind, data in _records(_chunks(archive, part)):
        if kind == _BRT_ROW_HDR:
            row = int.from_bytes(data[:4], "little") + 1
        elif _BRT_CELL_BLANK < kind <= _BRT_CELL_LAST:
            extent.rows = max(extent.rows, row)
            extent.columns = max(extent.columns, int.from_bytes(data[:4], "little") + 1)
            if kind == _BRT_CELL_ISST:
                index = int.from_bytes(data[8:12], "little")
                extent.text += sizes[index] if index < len(sizes) else 0
            if extent.rows > MAX_ROWS or extent.text > MAX_TEXT_BYTES:
                return


# ---------------------------------------------------------------------------------------------
# .ods: rows and cells may say they repeat

_TABLE = re.compile(rb"<table:table(\s[^>]*)?>")
_TABLE_NAME = re.compile(rb'table:name="([^"]*)"')
_ROW = re.compile(rb"<table:table-row\b([^>]*?)(/?)>")
_ROW_END = b"</table:table-row>"
_TABLE_END = b"</table:table>"
_OD_CELL = re.compile(rb"<table:(?:covered-)?table-cell\b([^>]*?)(/?)>")
_ROWS_REPEATED = re.compile(rb'table:number-rows-repeated="([0-9]{1,12})"')
_COLUMNS_REPEATED = re.compile(rb'table:number-columns-repeated="([0-9]{1,12})"')


def _scan_ods(archive: zipfile.ZipFile) -> None:
    """Every table of content.xml (calamine reads them all when it opens the file). A row or
    cell repeated N times counts N times, as calamine reads it; only rows and cells with a value
    widen the extent (empty rows repeated to the sheet's end, as LibreOffice saves them, do not)."""
    chunks = _chunks(archive, "content.xml")
    buf = b""
    extent: Extent | None = None
    row = 0
    while True:
        if extent is None:
            table = _TABLE.search(buf)
            if table is not None:
                name = _TABLE_NAME.search(table[1] or b"")
                extent = Extent(saxutils.unescape(name[1].decode(), _QUOTES) if name else "")
                row = 0
                buf = buf[table.end() :]
                continue
            match = None
        else:
            match = _ROW.search(buf)
            end = buf.find(_TABLE_END, 0, match.start() if match else len(buf))
            if end >= 0:
                extent.check()
                extent = None
                buf = buf[end + len(_TABLE_END) :]
                continue
        if match is None:
            more = next(chunks, None)
            if more is None:
                if extent is not None:
                    extent.check()
                return
            cut = buf.rfind(b"<")  # a tag cut at the end is read whole with the next chunk
            buf = (buf[cut:] if cut >= 0 else b"") + more
            continue
        assert extent is not None
        repeated = _ROWS_REPEATED.search(match[1])
        times = int(repeated[1]) if repeated else 1
        if match[2]:  # an empty row, closed at once
            row += times
            buf = buf[match.end() :]
            continue
        close = buf.find(_ROW_END, match.end())
        while close < 0:
            if len(buf) > MAX_ROW_XML_BYTES:
                raise WorkbookTooLarge(
                    f"A row of the sheet {extent.sheet!r} takes more than "
                    f"{_n(MAX_ROW_XML_BYTES)} bytes of XML, over the limit; {SAVE_SMALLER}."
                )
            more = next(chunks, None)
            if more is None:
                extent.check()
                return  # cut short: calamine will say the file is damaged
            buf += more
            close = buf.find(_ROW_END, match.end())
        _ods_row(buf[match.end() : close], row, times, extent)
        row += times
        buf = buf[close + len(_ROW_END) :]
        if extent.rows > MAX_ROWS or extent.text > MAX_TEXT_BYTES:
            extent.check()


_QUOTES = {"&quot;": '"', "&apos;": "'"}


def _ods_row(xml: bytes, row: int, times: int, extent: Extent) -> None:
    column = 0
    last = 0
    extra_text = 0
    cells = list(_OD_CELL.finditer(xml))
    for number, cell in enumerate(cells):
        repeated = _COLUMNS_REPEATED.search(cell[1]) if b"repeated" in cell[1] else None
        width = int(repeated[1]) if repeated else 1
        column += width
        if cell[2] and b"value-type" not in cell[1]:
            continue  # empty
        last = column
        size = (cells[number + 1].start() if number + 1 < len(cells) else len(xml)) - cell.start()
        if size > MAX_CELL_BYTES:
            raise _cell_too_long(extent.sheet, size)
        extra_text += size * (width - 1)
    if last:
        extent.rows = max(extent.rows, row + times)
        extent.columns = max(extent.columns, last)
        extent.text += extra_text * times + len(xml) * (times - 1)


# ---------------------------------------------------------------------------------------------
# .xls: an OLE file calamine reads whole, every sheet as it opens the file


def _check_xls(raw: BinaryIO) -> None:
    size = raw.seek(0, 2)
    if size > MAX_XLS_BYTES:
        raise WorkbookTooLarge(
            f"The .xls file is {_n(size)} bytes, over the limit of {_n(MAX_XLS_BYTES)} bytes "
            f"for that older format; save it as .xlsx or CSV and upload it again."
        )
    try:
        stream = _ole_stream(raw, ("Workbook", "Book"))
        if stream is not None:
            _scan_biff(stream)
    except (struct.error, IndexError, ValueError):
        return  # not a file we can follow: calamine says what is wrong with it


_END_OF_CHAIN = 0xFFFFFFFA  # this and above: end of chain, free, FAT or DIFAT sector


def _ole_stream(raw: BinaryIO, names: tuple[str, ...]) -> bytes | None:
    """The named stream of an OLE (compound) file, or None when it has none (an encrypted
    .xlsx): just enough of the format to follow a stream's sectors."""
    raw.seek(0)
    header = raw.read(512)
    shift = struct.unpack_from("<H", header, 30)[0]
    if shift not in (9, 12):
        return None
    sector_size = 1 << shift
    mini_size = 1 << struct.unpack_from("<H", header, 32)[0]
    fat_count, directory_start = struct.unpack_from("<II", header, 44)
    mini_cutoff, minifat_start, _minifat_count, difat_start = struct.unpack_from(
        "<IIII", header, 56
    )
    total = (raw.seek(0, 2) + sector_size - 1) // sector_size

    def sector(number: int) -> bytes:
        raw.seek((number + 1) * sector_size)
        return raw.read(sector_size)

    difat = list(struct.unpack_from("<109I", header, 76))
    following = difat_start
    for _ in range(total):
        if following >= _END_OF_CHAIN:
            break
        ids = struct.unpack(f"<{sector_size // 4}I", sector(following))
        difat.extend(ids[:-1])
        following = ids[-1]
    fat: array[int] = array("I")
    for number in [n for n in difat if n < _END_OF_CHAIN][:fat_count]:
        fat.frombytes(sector(number))

    def chain(start: int, table: array[int]) -> list[int]:
        numbers: list[int] = []
        while start < _END_OF_CHAIN and len(numbers) <= len(table):  # a loop ends here too
            numbers.append(start)
            start = table[start]
        return numbers

    directory = b"".join(sector(n) for n in chain(directory_start, fat))
    entries = [directory[at : at + 128] for at in range(0, len(directory) - 127, 128)]
    if not entries:
        return None
    for entry in entries:
        length = struct.unpack_from("<H", entry, 64)[0]
        if (
            entry[66] != 2
            or entry[: max(length - 2, 0)].decode("utf-16-le", "replace") not in names
        ):
            continue
        start = struct.unpack_from("<I", entry, 116)[0]
        size = struct.unpack_from("<Q", entry, 120)[0] & (0xFFFFFFFF if shift == 9 else -1)
        if size >= mini_cutoff:
            return b"".join(sector(n) for n in chain(start, fat))[:size]
        root_start = struct.unpack_from("<I", entries[0], 116)[0]
        mini_stream = b"".join(sector(n) for n in chain(root_start, fat))
        minifat: array[int] = array("I")
        minifat.frombytes(b"".join(sector(n) for n in chain(minifat_start, fat)))
        return b"".join(
            mini_stream[n * mini_size : (n + 1) * mini_size] for n in chain(start, minifat)
        )[:size]
    return None


_BIFF_BOF = 0x0809
_BIFF_BOUNDSHEET = 0x0085
_BIFF_SST = 0x00FC
_BIFF_CONTINUE = 0x003C
_BIFF_LABELSST = 0x00FD
_BIFF_MULRK = 0x00BD
# NUMBER, LABEL, RK, BOOLERR, FORMULA, RSTRING: a row and a column first (BLANK cells are empty)
_BIFF_CELLS = {0x0203, 0x0204, 0x027E, 0x0205, 0x0006, 0x00D6, _BIFF_LABELSST, _BIFF_MULRK}


def _scan_biff(stream: bytes) -> None:
    """Every sheet's extent (calamine reads them all when it opens the file)."""
    names: dict[int, str] = {}
    sizes: array[int] = array("Q")
    sst: list[bytes] = []
    extent: Extent | None = None
    pos, end = 0, len(stream)
    unpack = struct.unpack_from
    while pos + 4 <= end:
        kind, length = unpack("<HH", stream, pos)
        data = stream[pos + 4 : pos + 4 + length]
        if sst and kind != _BIFF_CONTINUE:  # the shared strings are complete
            sizes, sst = _sst_sizes(sst), []
        if kind in _BIFF_CELLS and extent is not None and length >= 4:
            row, column = unpack("<HH", data)
            if kind == _BIFF_MULRK and length >= 6:
                column = unpack("<H", data, length - 2)[0]
            extent.rows = max(extent.rows, row + 1)
            extent.columns = max(extent.columns, column + 1)
            if kind == _BIFF_LABELSST and length >= 10:
                index = unpack("<I", data, 6)[0]
                extent.text += sizes[index] if index < len(sizes) else 0
        elif kind == _BIFF_BOF:
            if extent is not None:
                extent.check()
            sheet_kind = unpack("<H", data, 2)[0] if length >= 4 else 0
            extent = Extent(names.get(pos, "?")) if sheet_kind == 0x0010 else None
        elif kind == _BIFF_BOUNDSHEET and length >= 8:
            chars, high = data[6], data[7] & 1
            names[unpack("<I", data)[0]] = data[8 : 8 + chars * (1 + high)].decode(
                "utf-16-le" if high else "latin-1", "replace"
            )
        if kind == _BIFF_SST:
            sst = [data]
        elif kind == _BIFF_CONTINUE and sst:
            sst.append(data)
        pos += 4 + length
    if extent is not None:
        extent.check()


def _sst_sizes(parts: list[bytes]) -> array[int]:
    """Bytes of each shared string of an .xls (UTF-16 counted), read across CONTINUE records:
    where a string's characters run into the next record, that record starts with a flags byte."""
    sizes: array[int] = array("Q")
    part, data, pos = 0, parts[0], 8
    count = struct.unpack_from("<I", parts[0], 4)[0] if len(parts[0]) >= 8 else 0

    def skip(size: int) -> None:
        nonlocal part, data, pos
        while size > 0:
            if pos >= len(data):
                part += 1
                data, pos = parts[part], 0
            step = min(size, len(data) - pos)
            pos += step
            size -= step

    try:
        for _ in range(count):
            if pos + 3 > len(data):
                part += 1
                data, pos = parts[part], 0
            chars, flags = struct.unpack_from("<HB", data, pos)
            pos += 3
            runs = extra = 0
            if flags & 0x08:
                runs = struct.unpack_from("<H", data, pos)[0]
                pos += 2
            if flags & 0x04:
                extra = struct.unpack_from("<I", data, pos)[0]
                pos += 4
            width, left = 1 + (flags & 1), chars
            while left > 0:
                if pos >= len(data):
                    part += 1
                    data = parts[part]
                    width, pos = 1 + (data[0] & 1), 1
                take = min(left, (len(data) - pos) // width) or left
                pos += take * width
                left -= take
            sizes.append(2 * chars)  # at most 65,535 characters: no cell limit to check
            skip(4 * runs + extra)
    except (IndexError, struct.error):
        pass  # cut short: calamine will say the file is damaged
    return sizes
