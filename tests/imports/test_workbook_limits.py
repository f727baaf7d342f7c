"""Workbooks that would take the server's memory are refused before calamine reads them.

Each hostile file is built here and is small on disk; what it would unpack to is not. Peak
memory is measured in a separate process (VmHWM from /proc), since calamine's allocations are
outside Python's view.
"""

from __future__ import annotations

import io
import random
import string
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import xlwt

from product_importer.imports import workbook_limits as limits
from product_importer.imports import workbook_scan
from product_importer.imports.columns import FileFormatError
from product_importer.imports.workbook import WorkbookSource
from tests.imports import workbooks
from tests.imports.workbooks import HEADER_ROWS, cell, ods_cell, ods_row, raw_ods, raw_xlsx

MEMORY_BOUND_MB = 500
# Opens the file as an import does and prints the refusal (or "read"), then the peak RSS in MB.
PEAK = """
import sys
from product_importer.imports.columns import FileFormatError
from product_importer.imports.workbook import WorkbookSource
try:
    with open(sys.argv[1], "rb") as raw:
        WorkbookSource(raw)
    print("read")
except FileFormatError as exc:
    print(exc)
with open("/proc/self/status") as status:
    print(next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmHWM:")))
"""


def refusal(data: bytes) -> str:
    with pytest.raises(limits.WorkbookTooLarge) as refused:
        WorkbookSource(io.BytesIO(data))
    return str(refused.value)


def read_in_a_process(tmp_path: Path, data: bytes, name: str = "book.xlsx") -> tuple[str, int]:
    """(the refusal or "read", peak RSS in MB) of opening the file in a fresh process."""
    file = tmp_path / name
    file.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", PEAK, str(file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr  # calamine aborting would show here
    message, peak = result.stdout.strip().rsplit("\n", 1)
    return message, int(peak)


def letters(size: int) -> str:
    """Text that does not pack well (a ZIP bomb check would catch a run of one letter)."""
    rng = random.Random(size)
    return "".join(rng.choices(string.ascii_letters, k=size))


CORNER = raw_xlsx(HEADER_ROWS + '<row r="1048576">' + cell("XFD1048576", "x") + "</row>")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "XFD1048576",
            "spans 1,048,576 rows by 16,384 columns (its last value is in row 1,048,576, "
            "column XFD): 17,179,869,184 cells, over the limit of 12,000,000 cells",
        ),
        (
            "BZ1048576",
            "spans 1,048,576 rows by 78 columns (its last value is in row 1,048,576, column BZ):"
            " 81,788,928 cells, over the limit of 12,000,000 cells",
        ),
    ],
)
def test_one_value_in_a_far_corner_is_refused_before_calamine_builds_the_grid(
    tmp_path: Path, ref: str, message: str
) -> None:
    data = raw_xlsx(HEADER_ROWS + '<row r="1048576">' + cell(ref, "x") + "</row>")
    assert len(data) < 5000
    assert message in refusal(data)
    refused, peak = read_in_a_process(tmp_path, data)
    assert message in refused
    assert peak < MEMORY_BOUND_MB


def test_the_declared_dimension_is_not_trusted() -> None:
    lying = raw_xlsx(HEADER_ROWS + cell("BZ1048576", "x"), dimension="A1:B2")
    assert "81,788,928 cells" in refusal(lying)
    # A dimension that overstates is harmless too: calamine ignores it.
    overstated = raw_xlsx(HEADER_ROWS, dimension="A1:XFD1048576")
    assert WorkbookSource(io.BytesIO(overstated)).total_rows == 2


def test_cells_without_references_are_placed_by_counting_as_calamine_does() -> None:
    far = '<row r="1048576">' + '<c t="inlineStr"><is><t>a</t></is></c>' * 20 + "</row>"
    assert "spans 1,048,576 rows by 20 columns" in refusal(raw_xlsx(HEADER_ROWS + far))
    near = "<row>" + '<c t="inlineStr"><is><t>a</t></is></c>' * 3 + "</row>"
    source = WorkbookSource(io.BytesIO(raw_xlsx(HEADER_ROWS + near)))
    assert source.total_rows == 3


def test_an_empty_styled_cell_far_away_does_not_count() -> None:
    styled = raw_xlsx(HEADER_ROWS + '<row r="1048576"><c r="XFD1048576" s="1"/></row>')
    source = WorkbookSource(io.BytesIO(styled))
    assert source.total_rows == 2
    source.read_header()
    assert list(source.rows()) == [(2, ["A-1", "One"])]


def test_a_shared_string_bomb_is_refused_by_its_packing_ratio(tmp_path: Path) -> None:
    """200 MB of one letter packs to about 200 KB: refused at the default limits."""
    data = raw_xlsx(
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>',
        shared=["sku", "x" * (200 * limits.MIB)],
    )
    assert len(data) < 300_000
    message = "The workbook part xl/sharedStrings.xml unpacks to 1,0"
    assert message in refusal(data)
    assert "times its packed size, over the limit of 100 times" in refusal(data)
    refused, peak = read_in_a_process(tmp_path, data)
    assert message in refused
    assert peak < MEMORY_BOUND_MB


def test_a_zip_directory_that_understates_a_part_is_caught_while_unpacking(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = raw_xlsx(HEADER_ROWS, shared=["sku", "x" * (200 * limits.MIB)], shared_declared_size=900)
    assert "unpacks to more than 1" in refusal(data)
    refused, peak = read_in_a_process(tmp_path, data)
    assert "times its packed size, over the limit of 100 times" in refused
    assert peak < MEMORY_BOUND_MB
    monkeypatch.setattr(limits, "MAX_PACKING_RATIO", 100_000)
    monkeypatch.setattr(limits, "MAX_SHARED_STRINGS_BYTES", 8 * limits.MIB)
    assert (
        "The workbook part xl/sharedStrings.xml unpacks to more than 8,388,608 bytes, over the "
        "limit" in refusal(data)
    )


def test_shared_strings_over_their_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_SHARED_STRINGS_BYTES", limits.MIB)
    data = raw_xlsx(HEADER_ROWS, shared=[letters(2 * limits.MIB)])
    assert "The workbook part xl/sharedStrings.xml unpacks to 2,097," in refusal(data)
    assert "bytes, over the limit of 1,048,576 bytes" in refusal(data)


def test_a_shared_string_counts_once_for_each_cell_that_uses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """calamine copies a shared string into every cell using it: a 1 MB string in 1,000 cells
    is 1 GB. The default limit is 1 GiB; a lower one keeps the test small."""
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", 2 * limits.MIB)
    rows = "".join(f'<row r="{n}"><c r="A{n}" t="s"><v>0</v></c></row>' for n in range(3, 33))
    data = raw_xlsx(HEADER_ROWS + rows, shared=[letters(100_000)])
    message = refusal(data)
    assert "The sheet 'Products' holds at least 3,000,540 bytes" in message
    assert (
        "bytes of text once shared or repeated cells are copied into each cell, over the "
        "limit of 2,097,152 bytes" in message
    )
    fewer = "".join(f'<row r="{n}"><c r="A{n}" t="s"><v>0</v></c></row>' for n in range(3, 13))
    assert WorkbookSource(io.BytesIO(raw_xlsx(HEADER_ROWS + fewer, shared=[letters(100_000)])))


def test_one_cell_over_the_cell_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_CELL_BYTES", 64 * 1024)
    message = (
        "A cell of the sheet 'Products' holds more than 65,536 bytes of text, over the limit of "
        "65,536 bytes for one cell"
    )
    shared = raw_xlsx(HEADER_ROWS, shared=["sku", letters(100_000)])
    assert message in refusal(shared)
    inline = raw_xlsx(HEADER_ROWS + '<row r="3">' + cell("A3", letters(100_000)) + "</row>")
    assert WorkbookSource(io.BytesIO(inline))  # text within one chunk: the limit is larger
    monkeypatch.setattr(limits, "CHUNK", 16 * 1024)  # text longer than a chunk
    assert message in refusal(inline)
    assert message in refusal(shared)


def test_ods_rows_and_cells_count_as_often_as_they_repeat(tmp_path: Path) -> None:
    header = ods_row(ods_cell("sku") + ods_cell("name")) + ods_row(ods_cell("A-1") + ods_cell("x"))
    # LibreOffice saves empty rows and columns repeated to the sheet's end: harmless.
    saved = raw_ods(
        ods_row(ods_cell("sku") + ods_cell("name") + ods_cell(None, 16382))
        + ods_row(ods_cell("A-1") + ods_cell("x") + ods_cell(None, 16382))
        + ods_row(ods_cell(None, 16384), 1048574)
    )
    assert WorkbookSource(io.BytesIO(saved)).total_rows == 2
    wide = raw_ods(header + ods_row(ods_cell(None, 16000) + ods_cell("q"), 1000))
    assert "spans 1,002 rows by 16,001 columns" in refusal(wide)
    refused, peak = read_in_a_process(tmp_path, wide, "wide.ods")
    assert "16,033,002 cells, over the limit of 12,000,000 cells" in refused
    assert peak < MEMORY_BOUND_MB
    repeated = raw_ods(header + ods_row(ods_cell("q", 5000), 5000))
    assert "spans 5,002 rows by 5,000 columns" in refusal(repeated)
    text = raw_ods(header + ods_row(ods_cell("q" * 100_000, 2000), 6))
    assert "bytes of text once shared or repeated cells are copied" in refusal(text)


def test_every_ods_sheet_is_checked_since_calamine_reads_them_all() -> None:
    book = workbooks.ods({"Products": [["sku", "name"], ["A-1", "One"]], "Notes": [["x"]]})
    assert WorkbookSource(io.BytesIO(book)).total_rows == 2
    far = raw_ods(
        ods_row(ods_cell("sku") + ods_cell("name"))
        + '</table:table><table:table table:name="Big &amp; far">'
        + ods_row(ods_cell(None, 16000) + ods_cell("q"), 1000)
    )
    assert "The sheet 'Big & far' spans 1,000 rows by 16,001 columns" in refusal(far)


def test_an_xls_over_its_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    book = workbooks.xls([["sku", "name"], ["A-1", "One"]])
    assert WorkbookSource(io.BytesIO(book)).total_rows == 2
    monkeypatch.setattr(limits, "MAX_XLS_BYTES", 1000)
    assert f"The .xls file is {len(book):,} bytes, over the limit of 1,000 bytes" in refusal(book)


def test_an_xls_is_walked_record_by_record_before_calamine_opens_it(tmp_path: Path) -> None:
    """A 6 KB .xls with a value at IV65536 took calamine to 1 GB; one long shared string in
    20,000 cells would be 1.3 GB of copies. Both are refused at the default limits."""
    book = xlwt.Workbook()
    sheet = book.add_sheet("Products")
    sheet.write(0, 0, "sku")
    sheet.write(0, 1, "name")
    sheet.write(65535, 255, "x")
    corner = io.BytesIO()
    book.save(corner)
    message = "The sheet 'Products' spans 65,536 rows by 256 columns"
    assert message in refusal(corner.getvalue())
    refused, peak = read_in_a_process(tmp_path, corner.getvalue(), "corner.xls")
    assert "16,777,216 cells, over the limit of 12,000,000 cells" in refused
    assert peak < MEMORY_BOUND_MB
    book = xlwt.Workbook()
    sheet = book.add_sheet("Products")
    sheet.write(0, 0, "sku")
    long = letters(32_767)
    for row in range(1, 20_001):
        sheet.write(row, 0, long)
    copies = io.BytesIO()
    book.save(copies)
    assert "The sheet 'Products' holds at least 1,310,680,006 bytes of text once shared" in refusal(
        copies.getvalue()
    )


def _record(kind: int, payload: bytes) -> bytes:
    """An .xlsb record: type and size as 7-bit varints, then the payload."""
    head = bytes([kind]) if kind < 0x80 else bytes([(kind & 0x7F) | 0x80, kind >> 7])
    size, encoded = len(payload), b""
    while True:
        encoded += bytes([(size & 0x7F) | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            break
    return head + encoded + payload


def _wide(text: str) -> bytes:
    return struct.pack("<I", len(text)) + text.encode("utf-16-le")


def _xlsb(cells: list[tuple[int, int, int]], shared: list[str]) -> bytes:
    """The parts of an .xlsb the limits read: (row, column, shared string) cells."""
    bundle = _record(0x9C, struct.pack("<II", 0, 1) + _wide("rId1") + _wide("Products"))
    sheet = b""
    for row, column, index in cells:
        sheet += _record(0x00, struct.pack("<I", row) + bytes(8))
        sheet += _record(0x07, struct.pack("<III", column, 0, index))
    strings = b"".join(_record(0x13, b"\x00" + _wide(text)) for text in shared)
    rels = (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
        'package/2006/relationships"><Relationship Id="rId1" Type="worksheet" '
        'Target="worksheets/sheet1.bin"/></Relationships>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.bin", bundle)
        archive.writestr("xl/_rels/workbook.bin.rels", rels)
        archive.writestr("xl/worksheets/sheet1.bin", sheet)
        archive.writestr("xl/sharedStrings.bin", strings)
    return out.getvalue()


def test_an_xlsb_sheet_is_walked_record_by_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def check(data: bytes) -> None:
        workbook_scan.check_archive(io.BytesIO(data))
        workbook_scan.check_sheet(io.BytesIO(data), "Products")

    check(_xlsb([(0, 0, 0), (0, 1, 1), (1, 0, 0)], ["sku", "name"]))
    with pytest.raises(limits.WorkbookTooLarge, match="spans 1,048,576 rows by 16,384 columns"):
        check(_xlsb([(0, 0, 0), (1_048_575, 16_383, 1)], ["sku", "name"]))
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", limits.MIB)
    many = [(row, 0, 1) for row in range(30)]
    with pytest.raises(limits.WorkbookTooLarge, match="holds at least 1,080,000 bytes of text"):
        check(_xlsb(many, ["sku", letters(20_000)]))


def test_a_realistic_big_workbook_fits_the_limits() -> None:
    """500,000 rows of 20 columns, each cell with some text, must import."""
    extent = limits.Extent("Products")
    extent.rows, extent.columns, extent.text = 500_001, 20, 0
    extent.check()
    assert limits.MAX_CELLS >= 500_001 * 20
    rows = [["sku", "name", *(f"field {n}" for n in range(18))]]
    rows += [
        [f"SKU-{i}", f"Product {i}", *(f"value {i} {n}" for n in range(18))] for i in range(2000)
    ]
    source = WorkbookSource(io.BytesIO(workbooks.xlsx({"Products": rows})))
    source.read_header()
    assert sum(1 for _ in source.rows()) == 2000


def test_a_damaged_part_is_still_reported_as_damage() -> None:
    data = raw_xlsx(HEADER_ROWS, shared=["sku"], shared_declared_size=5)
    with pytest.raises(FileFormatError, match="damaged"):
        WorkbookSource(io.BytesIO(data))


def _with_part(data: bytes, name: str, content: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, content if item.filename == name else source.read(item))
    return out.getvalue()


@pytest.mark.parametrize(
    "target", ["/xl/worksheets/sheet1.xml", "worksheets/../worksheets/sheet1.xml", "nowhere.xml"]
)
def test_the_sheet_part_is_found_however_the_relationship_names_it(target: str) -> None:
    """An absolute or roundabout target is followed; one that cannot be followed makes every
    worksheet part checked, since calamine may still find the sheet."""
    data = raw_xlsx(HEADER_ROWS + '<row r="1048576">' + cell("XFD1048576", "x") + "</row>")
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
        'schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        f'Target="{target}"/></Relationships>'
    )
    moved = _with_part(data, "xl/_rels/workbook.xml.rels", rels)
    with pytest.raises(FileFormatError):  # over the limit, or a sheet calamine cannot find
        WorkbookSource(io.BytesIO(moved))
    with pytest.raises(limits.WorkbookTooLarge, match="17,179,869,184 cells"):
        workbook_scan.check_sheet(io.BytesIO(moved), "Products")
