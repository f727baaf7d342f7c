"""Walking the binary workbook formats before calamine reads them: an .xlsb sheet record by
record, and an .xls (an OLE file that calamine reads whole, every sheet) stream by stream.
"""

from __future__ import annotations

import struct
import zipfile
from array import array
from collections.abc import Iterator
from typing import BinaryIO

from product_importer.imports import workbook_limits as limits
from product_importer.imports.workbook_limits import (
    SAVE_SMALLER,
    Extent,
    WorkbookTooLarge,
    _cell_too_long,
    _chunks,
    _n,
)

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
                if size > limits.MAX_ROW_XML_BYTES:
                    raise WorkbookTooLarge(
                        f"A record of the sheet takes {_n(size)} bytes, over the limit of "
                        f"{_n(limits.MAX_ROW_XML_BYTES)}; {SAVE_SMALLER}."
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


def xlsb_sheet_rid(chunks: Iterator[bytes], sheet: str) -> str | None:
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


def scan_xlsb(archive: zipfile.ZipFile, part: str, extent: Extent) -> None:
    """A Python step per record: slow for a big .xlsb (rare), but exact."""
    sizes: array[int] = array("Q")
    name = next((n for n in archive.namelist() if n.lower() == "xl/sharedstrings.bin"), None)
    if name is not None:
        for kind, data in _records(_chunks(archive, name)):
            if kind == _BRT_SST_ITEM:
                sizes.append(2 * int.from_bytes(data[1:5], "little"))
        if max(sizes, default=0) > limits.MAX_CELL_BYTES:
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
            if extent.rows > limits.MAX_ROWS or extent.text > limits.MAX_TEXT_BYTES:
                return


# ---------------------------------------------------------------------------------------------
# .xls: an OLE file calamine reads whole, every sheet as it opens the file


def check_xls(raw: BinaryIO) -> None:
    size = raw.seek(0, 2)
    if size > limits.MAX_XLS_BYTES:
        raise WorkbookTooLarge(
            f"The .xls file is {_n(size)} bytes, over the limit of "
            f"{_n(limits.MAX_XLS_BYTES)} bytes for that older format; save it as .xlsx or CSV "
            "and upload it again."
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
