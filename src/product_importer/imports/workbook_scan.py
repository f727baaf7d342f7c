"""The checks `imports.workbook` runs before calamine reads a workbook: the ZIP directory and
the parts calamine keeps whole (`check_archive`), then the chosen sheet (`check_sheet`), by
streaming .xlsx and .ods XML; the binary formats are walked in `workbook_binary`. The limits and
the figures a sheet adds up to are in `workbook_limits`.
"""

from __future__ import annotations

import contextlib
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

from product_importer.imports import workbook_binary
from product_importer.imports import workbook_limits as limits
from product_importer.imports.columns import FileFormatError
from product_importer.imports.workbook_limits import (
    _SMALL_PARTS,
    OLE_MAGIC,
    SAVE_SMALLER,
    Extent,
    WorkbookTooLarge,
    _cell_too_long,
    _check_declared,
    _chunks,
    _is_shared_strings,
    _n,
    _unpack,
    column_number,
)


def check_archive(raw: BinaryIO) -> None:
    """The ZIP directory's figures for every part, before calamine unpacks any of them."""
    raw.seek(0)
    if raw.read(8).startswith(OLE_MAGIC):
        workbook_binary.check_xls(raw)
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
                    workbook_binary.scan_xlsb(archive, part, extent)
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
        rid = workbook_binary.xlsb_sheet_rid(_chunks(archive, workbook), sheet)
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
        if pending > limits.MAX_CELL_BYTES:
            raise _cell_too_long(sheet)
    if started:
        sizes.append(pending + len(tail))
    longest = max(sizes, default=0)
    if longest > limits.MAX_CELL_BYTES:
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
        if run > limits.MAX_CELL_BYTES:
            raise _cell_too_long(extent.sheet)
        buf = tail + chunk
        # Carry the last cell whole to the next chunk (its shared string index with it).
        cut = buf.rfind(b"<c ", max(0, len(buf) - limits.CHUNK))
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
            if len(buf) > limits.MAX_ROW_XML_BYTES:
                raise WorkbookTooLarge(
                    f"A row of the sheet {extent.sheet!r} takes more than "
                    f"{_n(limits.MAX_ROW_XML_BYTES)} bytes of XML, over the limit; {SAVE_SMALLER}."
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
        if extent.rows > limits.MAX_ROWS or extent.text > limits.MAX_TEXT_BYTES:
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
        if size > limits.MAX_CELL_BYTES:
            raise _cell_too_long(extent.sheet, size)
        extra_text += size * (width - 1)
    if last:
        extent.rows = max(extent.rows, row + times)
        extent.columns = max(extent.columns, last)
        extent.text += extra_text * times + len(xml) * (times - 1)
