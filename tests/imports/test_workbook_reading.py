"""Reading workbooks without a database: cells as a person reads them, sheets, damage."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time

import pytest

from product_importer.imports.columns import FileFormatError
from product_importer.imports.workbook import SheetNotFound, WorkbookSource, cell_text, is_workbook
from tests.imports import workbooks

ROWS = [
    ["SKU", "Name", "Launched", "Active", "Price"],
    [12345, "Chair", date(2024, 3, 1), True, 19.9],
    ["00123", "Desk", datetime(2024, 3, 1, 14, 30), False, 0.1 + 0.2],
    [None, None, None, None, None],
    [4006381333931, "Lamp", None, None, 1e20],
    ["=A2*2", "Formula", None, None, None],
]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12345.0, "12345"),
        (12345, "12345"),
        (-3.0, "-3"),
        (19.9, "19.9"),
        (0.1 + 0.2, "0.3"),
        (4006381333931.0, "4006381333931"),
        (1e20, "1e+20"),
        (True, "true"),
        (False, "false"),
        (date(2024, 3, 1), "2024-03-01"),
        (datetime(2024, 3, 1), "2024-03-01"),
        (datetime(2024, 3, 1, 14, 30, 5), "2024-03-01 14:30:05"),
        (time(9, 5), "09:05:00"),
        ("00123", "00123"),
        ("", ""),
        (None, ""),
    ],
)
def test_cells_read_as_the_spreadsheet_shows_them(value: object, text: str) -> None:
    assert cell_text(value) == text


def _rows(
    data: bytes, sheet: str | None = None
) -> tuple[WorkbookSource, list[tuple[int, list[str]]]]:
    source = WorkbookSource(io.BytesIO(data), sheet)
    source.read_header({"sku": "SKU", "name": "Name"})
    return source, list(source.rows())


def test_xlsx_cells_rows_and_formulas() -> None:
    data = workbooks.xlsx({"Products": ROWS, "Other": [["x"]]}, cached={"A6": "24690"})
    assert is_workbook(io.BytesIO(data))
    source, rows = _rows(data)
    assert source.sheets == ["Products", "Other"] and source.sheet == "Products"
    assert source.header == ["SKU", "Name", "Launched", "Active", "Price"]
    assert rows == [
        (2, ["12345", "Chair", "2024-03-01", "true", "19.9"]),
        (3, ["00123", "Desk", "2024-03-01 14:30:00", "false", "0.3"]),
        (5, ["4006381333931", "Lamp", "", "", "1e+20"]),
        (6, ["24690", "Formula", "", "", ""]),
    ]
    assert source.fraction_read == 1.0


def test_ods_cells_rows_and_formulas() -> None:
    rows = [list(row) for row in ROWS]
    rows[5][0] = ("=[.A2]*2", 24690)
    _source, read = _rows(workbooks.ods({"Products": rows}))
    assert read[0] == (2, ["12345", "Chair", "2024-03-01", "true", "19.9"])
    assert read[1][1][:2] == ["00123", "Desk"]
    assert read[1][1][2].startswith("2024-03-01")
    assert read[-1] == (6, ["24690", "Formula", "", "", ""])


def test_xls_is_read_too() -> None:
    _source, rows = _rows(workbooks.xls([["SKU", "Name"], [12345, "Chair"], ["00123", "Desk"]]))
    assert rows == [(2, ["12345", "Chair"]), (3, ["00123", "Desk"])]


def test_a_header_lower_down_and_progress_by_rows() -> None:
    data = workbooks.xlsx(
        {"S": [[None], ["Export of 2024"], ["SKU", "Name"]] + [[f"A{i}", "n"] for i in range(8)]}
    )
    source = WorkbookSource(io.BytesIO(data))
    with pytest.raises(FileFormatError):
        source.read_header()  # "Export of 2024" is the first filled row: it is the header
    source = WorkbookSource(io.BytesIO(data))
    assert source.total_rows == 11
    assert source.fraction_read == 0.0
    rows = source.rows()
    next(rows)
    assert source.fraction_read == pytest.approx(2 / 11)


def test_sheets_by_name_or_number() -> None:
    data = workbooks.xlsx({"Notes": [["hello"]], "Products": [["SKU", "Name"], ["A-1", "One"]]})
    for wanted in ("Products", " products ", "2"):
        assert _rows(data, wanted)[1] == [(2, ["A-1", "One"])]
    for wanted, message in (("3", "no sheet number 3"), ("Prices", "no sheet named 'Prices'")):
        with pytest.raises(SheetNotFound, match=message) as caught:
            WorkbookSource(io.BytesIO(data), wanted)
        assert caught.value.sheets == ["Notes", "Products"]


def test_damaged_and_protected_workbooks_are_refused_precisely() -> None:
    good = workbooks.xlsx({"Products": ROWS})
    with pytest.raises(FileFormatError, match="damaged ZIP archive"):
        is_workbook(io.BytesIO(good[: len(good) // 2]))
    with pytest.raises(FileFormatError, match="password-protected"):
        WorkbookSource(io.BytesIO(workbooks.encrypted(good)))
    with pytest.raises(FileFormatError, match="not a spreadsheet that can be read"):
        WorkbookSource(io.BytesIO(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000)))
    with pytest.raises(FileFormatError, match="is empty"):
        WorkbookSource(io.BytesIO(workbooks.xlsx({"Empty": []}))).read_header()


def test_a_workbook_with_a_broken_sheet_inside_a_good_zip_is_refused() -> None:
    good = workbooks.xlsx({"Products": ROWS})
    source = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = content[: len(content) // 2]
            target.writestr(item, content)
    assert is_workbook(io.BytesIO(out.getvalue()))
    with pytest.raises(FileFormatError, match="damaged and cannot be read"):
        WorkbookSource(io.BytesIO(out.getvalue()))
