"""Format detection, header rules and the row stream, on files built inline."""

from __future__ import annotations

import codecs
import gzip
import io
import tracemalloc

import pytest

from product_importer.imports.reading import (
    FIELD_SIZE_LIMIT,
    MAX_ROW_CHARS,
    READ_CHARS,
    CsvSource,
    FileFormatError,
    NotCsvError,
    check_encoding,
    check_header,
    detect_format,
)


def rows_of(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    raw = io.BytesIO(data)
    source = CsvSource(raw, detect_format(raw))
    source.read_header()
    return source.header, list(source.rows())


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters_are_detected(delimiter: str) -> None:
    data = delimiter.join(["name", "sku", "description"]) + "\n"
    data += delimiter.join(["Chair", "CH-1", "A chair, with arms"]) + "\n"
    if delimiter == ",":
        data = data.replace("A chair, with arms", '"A chair, with arms"')
    header, rows = rows_of(data.encode())
    assert header == ["name", "sku", "description"]
    assert rows == [(2, ["Chair", "CH-1", "A chair, with arms"])]


def test_quoted_fields_with_delimiters_quotes_and_newlines_keep_line_numbers() -> None:
    data = (
        b'name,sku,description\r\n"Desk, oak",D-1,"The ""best""\r\ndesk"\r\n\r\nLamp,L-1,plain\r\n'
    )
    _header, rows = rows_of(data)
    assert rows == [(2, ["Desk, oak", "D-1", 'The "best"\r\ndesk']), (5, ["Lamp", "L-1", "plain"])]


def test_utf8_with_bom() -> None:
    raw = io.BytesIO("\ufeffsku,name\nÄ-1,Äpfel\n".encode())
    file_format = detect_format(raw)
    assert file_format.encoding == "utf-8-sig"
    source = CsvSource(raw, file_format)
    columns = source.read_header()
    assert (columns.sku, columns.name) == (0, 1)
    assert list(source.rows()) == [(2, ["Ä-1", "Äpfel"])]


def test_windows_1252_is_detected_and_decoded() -> None:
    data = "name;sku;description\nCafé crème;C-1;Qualité supérieure – 5 €\n".encode("cp1252")
    raw = io.BytesIO(data)
    file_format = detect_format(raw)
    assert file_format.warnings
    source = CsvSource(raw, file_format)
    source.read_header()
    assert next(iter(source.rows()))[1] == ["Café crème", "C-1", "Qualité supérieure – 5 €"]


def test_utf16_spreadsheet_exports_are_read() -> None:
    raw = io.BytesIO("sku\tname\tdescription\nU-1\tÜber\tTab separated\n".encode("utf-16"))
    file_format = detect_format(raw)
    assert (file_format.encoding, file_format.delimiter) == ("utf-16", "\t")
    source = CsvSource(raw, file_format)
    source.read_header()
    assert list(source.rows()) == [(2, ["U-1", "Über", "Tab separated"])]


def test_gzip_files_are_read_transparently() -> None:
    raw = io.BytesIO(gzip.compress(b"sku,name\nG-1,Gzipped\n"))
    file_format = detect_format(raw)
    assert file_format.compressed
    source = CsvSource(raw, file_format)
    source.read_header()
    assert list(source.rows()) == [(2, ["G-1", "Gzipped"])]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (b"\n\n  \n", "no header row"),
        (b"name,description\nx,y\n", "no sku column"),
        (b"sku,description\nx,y\n", "no name column"),
        (b"description\nx\n", "no sku and no name column"),
        (b"sku,name,SKU\nx,y,z\n", "more than once: sku"),
        (b",,\n,,\n", "no header row"),
        (b"\x1f\x8bnot really gzip", "cannot be read"),
    ],
)
def test_bad_headers_and_files_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        check_header(io.BytesIO(data))


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "ZIP archive"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG image"),
        (b"%PDF-1.7\n", "PDF document"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Excel"),
        (b"sku,name\n" + b"\x00\x01\x02\x03" * 64, "binary data"),
    ],
)
def test_binary_files_are_not_csv(data: bytes, what: str) -> None:
    with pytest.raises(NotCsvError, match=what):
        check_header(io.BytesIO(data))


def test_header_names_are_trimmed_case_insensitive_in_any_order() -> None:
    raw = io.BytesIO(b" Description ,EXTRA, Name,SKU ,Active,notes\nd,e,n,s,yes,x\n")
    source = CsvSource(raw, detect_format(raw))
    columns = source.read_header()
    assert (columns.sku, columns.name, columns.description, columns.active) == (3, 2, 0, 4)
    assert columns.ignored == ("EXTRA", "notes")


@pytest.mark.parametrize(
    ("text", "written_as", "read_as"),
    [
        ("sku,name\nA-1,Costs €5 – “quoted”\n", "cp1252", "cp1252"),
        ("sku,name\nZ-1,Olé\n", "cp1252", "cp1252"),
        ("sku,name\nA-1,Grüße aus Köln\nB-1,Crème brûlée\n", "cp1252", "cp1252"),
        ("sku,name\nA-1,Łódź, zażółć gęślą jaźń\n", "cp1250", "cp1250"),
        ("sku,name\nA-1,Příliš žluťoučký kůň\n", "cp1250", "cp1250"),
        ("sku,name\nZ-1,Olé, crème brûlée\n", "mac_roman", "mac_roman"),
    ],
)
def test_windows_1252_wins_on_thin_evidence_others_when_they_read_better(
    text: str, written_as: str, read_as: str
) -> None:
    file_format = detect_format(io.BytesIO(text.encode(written_as)))
    assert codecs.lookup(file_format.encoding).name == codecs.lookup(read_as).name
    assert text.encode(written_as).decode(file_format.encoding) == text


def test_a_given_encoding_replaces_detection_and_unknown_ones_are_refused() -> None:
    data = "sku,name\nA-1,Łódź\n".encode("cp1250")
    assert detect_format(io.BytesIO(data), "CP1250").encoding == "cp1250"
    assert detect_format(io.BytesIO(data), "CP1250").chosen
    assert detect_format(io.BytesIO(b"\xef\xbb\xbfsku,name\n"), "utf8").encoding == "utf-8-sig"
    for bad in ("rot13", "base64", "zlib", "klingon", "", "x" * 100):
        with pytest.raises(FileFormatError, match="Unknown text encoding"):
            detect_format(io.BytesIO(data), bad)


def _all_rows(data: bytes) -> list[tuple[int, list[str]]]:
    raw = io.BytesIO(data)
    source = CsvSource(raw, detect_format(raw))
    source.read_header()
    return list(source.rows())


def test_a_field_over_our_limits_is_read_so_its_row_can_be_rejected() -> None:
    big = "x" * 2_000_000
    rows = _all_rows(f'sku,name,description\nA-1,One,"{big}"\nB-1,Two,ok\n'.encode())
    assert [(line, len(row[2])) for line, row in rows] == [(2, 2_000_000), (3, 2)]


def test_a_quote_left_open_to_the_end_fails_naming_the_line_it_opened() -> None:
    data = b'sku,name\nA-1,One\nB-1,"Two\n"\nC-1,"never closed\nD-1,Four\nE-1,Five\n'
    with pytest.raises(FileFormatError, match="Line 5: a quote opened on this line is never"):
        _all_rows(data)
    gz = gzip.compress(data)
    raw = io.BytesIO(gz)
    source = CsvSource(raw, detect_format(raw))
    source.read_header()
    with pytest.raises(FileFormatError, match="Line 5: a quote opened"):
        list(source.rows())
    # A field with line breaks that is closed is fine, also as the last row.
    assert _all_rows(b'sku,name\nA-1,"multi\nline"\n')[0] == (2, ["A-1", "multi\nline"])


def test_a_field_past_the_csv_limit_fails_naming_its_line() -> None:
    data = b'sku,name\nA-1,One\nB-1,"' + b"y" * (FIELD_SIZE_LIMIT + 10) + b'"\nC-1,Three\n'
    with pytest.raises(FileFormatError, match="Line 3 is longer than 8 MiB"):
        _all_rows(data)


def test_lines_are_cut_only_at_cr_and_lf_across_slice_boundaries() -> None:
    """Text is read in slices: a CRLF cut in two, old Mac CR ends and characters that
    str.splitlines would break at (form feed, NEL, U+2028) must not move a line number."""
    pad = "p" * (READ_CHARS - len("sku,name\r\n") - len("A-1,") - 1)
    data = f'sku,name\r\nA-1,{pad}\r\nB-1,form\x0cfeed\x85nel\u2028sep\rC-1,"two\r\nlines"\r\n'
    header, rows = rows_of(data.encode())
    assert header == ["sku", "name"]
    assert rows == [
        (2, ["A-1", pad]),
        (3, ["B-1", "form\x0cfeed\x85nel\u2028sep"]),
        (4, ["C-1", "two\r\nlines"]),
    ]


def test_one_endless_gzipped_line_is_refused_without_reading_it_whole() -> None:
    member = gzip.compress(b"a" * (1024 * 1024))
    for head, line in ((b"", 1), (b"sku,name\n", 2)):
        raw = io.BytesIO(gzip.compress(head) + member * 300)  # a 300 MB line in ~300 KB
        tracemalloc.start()
        try:
            with pytest.raises(FileFormatError, match=f"^Line {line} is longer than 8 MiB"):
                rows_of(raw.getvalue())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * MAX_ROW_CHARS  # the line as bytes and text, at most, not 300 MB


def test_a_row_of_many_short_lines_is_bounded_too() -> None:
    """csv.reader bounds one field, not a row: quoted fields with line breaks, a million of them."""
    row = b'"a\nb",' * (MAX_ROW_CHARS // 5)
    with pytest.raises(
        FileFormatError, match=r"^Line 3: the row that starts on this line is longer"
    ):
        rows_of(b"sku,name\nA-1,One\n" + row + b"\nB-1,Two\n")


def test_a_gzip_past_the_decompressed_limit_fails_as_it_is_read() -> None:
    data = gzip.compress(b"sku,name\n" + b"A-1,Chair\n" * 200_000)
    raw = io.BytesIO(data)
    source = CsvSource(raw, detect_format(raw), max_decompressed_bytes=1_000_000)
    source.read_header()
    with pytest.raises(FileFormatError, match="larger than 1,000,000 bytes once decompressed"):
        list(source.rows())
    raw = io.BytesIO(data)
    source = CsvSource(raw, detect_format(raw), max_decompressed_bytes=2_000_010)
    source.read_header()
    assert len(list(source.rows())) == 200_000


def test_blank_lines_still_hand_control_back_between_slices() -> None:
    raw = io.BytesIO(b"sku,name\n" + b"\n" * (4 * 1024 * 1024) + b"A-1,Chair\n")
    source = CsvSource(raw, detect_format(raw))
    source.read_header()
    calls: list[int] = []
    source.on_read = lambda: calls.append(source.bytes_read)
    assert list(source.rows()) == [(4 * 1024 * 1024 + 2, ["A-1", "Chair"])]
    assert len(calls) >= 16  # one per 256 Ki characters


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("idna", "cannot be used for CSV text"),
        ("punycode", "cannot be used for CSV text"),
        ("unicode_escape", "cannot be used for CSV text"),
        ("raw_unicode_escape", "cannot be used for CSV text"),
        ("utf-7", "cannot be used for CSV text"),
        ("undefined", "cannot be used for CSV text"),
        ("rot13", "Unknown text encoding"),
    ],
)
def test_codecs_that_cannot_read_csv_text_are_refused(name: str, message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        check_encoding(name)


def test_utf16_needs_a_byte_order_mark_or_an_explicit_byte_order() -> None:
    plain = "sku,name\nÄ-1,Äpfel\n".encode("utf-16-le")
    with pytest.raises(FileFormatError, match=r"does not start with a byte-order mark.*utf-16-le"):
        detect_format(io.BytesIO(plain), "utf-16")
    for data, name in ((plain, "utf-16-le"), (codecs.BOM_UTF16_LE + plain, "utf-16-le")):
        raw = io.BytesIO(data)
        source = CsvSource(raw, detect_format(raw, name))
        source.read_header()
        assert source.header == ["sku", "name"]  # the mark is not part of the first column
        assert list(source.rows()) == [(2, ["Ä-1", "Äpfel"])]
    assert check_encoding("shift_jis_2004") == "shift_jis_2004"  # reads \ as ¥, still CSV
