"""Spreadsheets written by real libraries for the tests: openpyxl (.xlsx), odfpy (.ods), xlwt
(.xls). Cells are typed as a person's spreadsheet has them: numbers, text, dates, booleans."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from datetime import date, datetime
from typing import Any

import openpyxl
import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P

Cell = Any


def xlsx(sheets: dict[str, list[list[Cell]]], cached: dict[str, str] | None = None) -> bytes:
    """An .xlsx file; `cached` gives formula cells (e.g. {"A7": "24690"}) the value Excel would
    have stored with them (openpyxl writes formulas without one)."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    if cached:
        data = _with_cached_values(data, cached)
    return data


def _with_cached_values(data: bytes, cached: dict[str, str]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = content.decode()
                for ref, value in cached.items():
                    text = re.sub(
                        rf'(<c r="{ref}"[^>]*>)<f>(.*?)</f><v\s*/?>(</v>)?',
                        rf"\1<f>\2</f><v>{value}</v>",
                        text,
                    )
                content = text.encode()
            target.writestr(item, content)
    return out.getvalue()


def ods(sheets: dict[str, list[list[Cell]]]) -> bytes:
    """An .ods file; a ("=formula", cached) tuple is a formula cell with its stored value."""
    document = OpenDocumentSpreadsheet()
    for title, rows in sheets.items():
        table = Table(name=title)
        for row in rows:
            table_row = TableRow()
            for value in row:
                table_row.addElement(_ods_cell(value))
            table.addElement(table_row)
        document.spreadsheet.addElement(table)
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def _ods_cell(value: Cell) -> TableCell:
    if value is None:
        return TableCell()
    if isinstance(value, tuple):
        formula, cached = value
        cell = TableCell(valuetype="float", value=cached, formula=f"of:{formula}")
        cell.addElement(P(text=str(cached)))
        return cell
    if isinstance(value, bool):
        cell = TableCell(valuetype="boolean", booleanvalue="true" if value else "false")
    elif isinstance(value, int | float):
        cell = TableCell(valuetype="float", value=value)
    elif isinstance(value, datetime | date):
        cell = TableCell(valuetype="date", datevalue=value.isoformat())
    else:
        cell = TableCell(valuetype="string")
    cell.addElement(P(text=str(value)))
    return cell


def xls(rows: list[list[Cell]], title: str = "Sheet1") -> bytes:
    book = xlwt.Workbook()
    sheet = book.add_sheet(title)
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, date):
                sheet.write(r, c, value, date_style)
            elif value is not None:
                sheet.write(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def encrypted(data: bytes, password: str = "secret") -> bytes:  # noqa: S107
    """The .xlsx as Excel saves it with "Encrypt with Password"."""
    import msoffcrypto.format.ooxml

    out = io.BytesIO()
    msoffcrypto.format.ooxml.OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


# Hand-written parts, for workbooks no library would write: a value in a far corner, a ZIP
# bomb, a directory that lies about sizes.
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_PACKAGE_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Products" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
)


def cell(ref: str, text: str) -> str:
    """An inline-text cell of an .xlsx sheet."""
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER_ROWS = (
    '<row r="1">' + cell("A1", "sku") + cell("B1", "name") + "</row>"
    '<row r="2">' + cell("A2", "A-1") + cell("B2", "One") + "</row>"
)


def raw_xlsx(
    sheet_data: str,
    shared: list[str] | None = None,
    dimension: str | None = None,
    shared_declared_size: int | None = None,
) -> bytes:
    """An .xlsx written part by part: `sheet_data` is the XML inside <sheetData>; `shared` the
    shared strings; `shared_declared_size` makes the ZIP directory lie about their size."""
    dimension_xml = f'<dimension ref="{dimension}"/>' if dimension else ""
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"{dimension_xml}<sheetData>{sheet_data}</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _PACKAGE_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        if shared is not None:
            with archive.open("xl/sharedStrings.xml", "w") as part:
                part.write(
                    b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.'
                    b'openxmlformats.org/spreadsheetml/2006/main">'
                )
                for text in shared:
                    part.write(b"<si><t>")
                    for start in range(0, len(text), 1 << 20):  # a big string, a bit at a time
                        part.write(text[start : start + (1 << 20)].encode())
                    part.write(b"</t></si>")
                part.write(b"</sst>")
    data = out.getvalue()
    if shared_declared_size is not None:
        data = _declare_size(data, "xl/sharedStrings.xml", shared_declared_size)
    return data


def _declare_size(data: bytes, name: str, size: int) -> bytes:
    """The archive with `name`'s unpacked size changed in the central directory, and its CRC
    made that of the first `size` bytes, so Python's zipfile (which stops at the declared size)
    finds nothing wrong."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    info = archive.getinfo(name)
    with archive.open(info) as part:
        crc = zlib.crc32(part.read(size))
    encoded = name.encode()
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(encoded)] != encoded:
        central = data.index(b"PK\x01\x02", central + 4)
    patched = bytearray(data)
    struct.pack_into("<I", patched, central + 16, crc)
    struct.pack_into("<I", patched, central + 24, size)
    struct.pack_into("<I", patched, info.header_offset + 14, crc)
    return bytes(patched)


def raw_ods(rows_xml: str) -> bytes:
    """An .ods whose one table holds `rows_xml` (<table:table-row> elements)."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Products">'
        f"{rows_xml}</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def ods_cell(text: str | None, repeated: int = 1) -> str:
    """A text cell (None: an empty one), `repeated` times across."""
    times = f' table:number-columns-repeated="{repeated}"' if repeated > 1 else ""
    if text is None:
        return f"<table:table-cell{times}/>"
    return (
        f'<table:table-cell office:value-type="string"{times}>'
        f"<text:p>{text}</text:p></table:table-cell>"
    )


def ods_row(cells: str, repeated: int = 1) -> str:
    times = f' table:number-rows-repeated="{repeated}"' if repeated > 1 else ""
    return f"<table:table-row{times}>{cells}</table:table-row>"
