"""Reading catalogue CSV files: format detection, the header, and a streaming row iterator.

One pass over the file, never all of it in memory. Percent done is measured in bytes of the
stored file (compressed bytes for .csv.gz), so no counting pass is needed.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import re
import unicodedata
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from charset_normalizer import from_bytes

from product_importer.imports import mapping as column_mapping
from product_importer.imports.columns import Columns as Columns
from product_importer.imports.columns import FileFormatError as FileFormatError
from product_importer.imports.columns import NotCsvError as NotCsvError

GZIP_MAGIC = b"\x1f\x8b"
SAMPLE_BYTES = 256 * 1024
MAX_HEADER_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
# A field over our column limits only rejects its row; one longer than this fails the file, as
# it almost always is a quote never closed (it bounds the memory one row may take).
FIELD_SIZE_LIMIT = 16 * 1024 * 1024


# Magic numbers of files people upload by mistake, with a name for the error message.
BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) or other Office file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ", "an xz archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"SQLite format 3", "an SQLite database"),
)


CONTROL_BYTES = tuple(bytes([b]) for b in [*range(0, 9), 11, 12, *range(14, 32), 127])

csv.field_size_limit(FIELD_SIZE_LIMIT)


@dataclass(frozen=True)
class FileFormat:
    encoding: str
    delimiter: str
    compressed: bool
    warnings: tuple[str, ...] = ()
    chosen: bool = False  # the encoding was given, not detected


def open_binary(raw: BinaryIO, compressed: bool) -> BinaryIO:
    if compressed:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _read_head(raw: BinaryIO, compressed: bool) -> bytes:
    raw.seek(0)
    try:
        head = open_binary(raw, compressed).read(SAMPLE_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise FileFormatError(
            f"The file looks gzip-compressed but cannot be read: {exc}."
        ) from None
    finally:
        raw.seek(0)
    return head


def check_encoding(name: str) -> str:
    """A text encoding Python knows, by any of its names; its canonical name."""
    cleaned = name.strip()
    try:
        info = codecs.lookup(cleaned) if cleaned and len(cleaned) <= 40 else None
    except LookupError:
        info = None
    # `_is_text_encoding` is how codecs itself tells text encodings from rot13, zlib, base64...
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise FileFormatError(
            f"Unknown text encoding {cleaned[:40]!r}; use a name such as utf-8, cp1252 "
            "(Windows Western), iso-8859-1, cp1250, mac_roman or utf-16."
        )
    return info.name


def detect_format(raw: BinaryIO, encoding: str | None = None) -> FileFormat:
    """Look at the start of the file: compression, binary content, encoding, delimiter.

    A given `encoding` replaces detection (and the Windows-1252 fallback)."""
    raw.seek(0)
    magic = raw.read(4)
    raw.seek(0)
    if not magic:
        raise FileFormatError("The file is empty.")
    compressed = magic.startswith(GZIP_MAGIC)
    head = _read_head(raw, compressed)
    if not head.strip():
        raise FileFormatError("The file is empty." if not head else "The file has no header row.")
    for signature, what in BINARY_SIGNATURES:
        if head.startswith(signature):
            raise NotCsvError(
                f"This is {what}, not a CSV file or a spreadsheet (.xlsx, .xlsm, .xls, .ods)."
            )
    if encoding is not None:
        encoding = check_encoding(encoding)
        if encoding == "utf-8" and head.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
        return FileFormat(
            encoding=encoding,
            delimiter=_detect_delimiter(head, encoding),
            compressed=compressed,
            chosen=True,
        )
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export: UTF-16 with a byte-order mark, usually tab-separated.
        return FileFormat(
            encoding="utf-16",
            delimiter=_detect_delimiter(head, "utf-16"),
            compressed=compressed,
        )
    # A stray control byte is a bad row (rejected later); many of them mean this is not text.
    controls = sum(head.count(byte) for byte in CONTROL_BYTES)
    if controls > max(8, len(head) // 100):
        raise NotCsvError("The file contains binary data, not CSV text.")
    encoding, warnings = _detect_encoding(head)
    delimiter = _detect_delimiter(head, encoding)
    return FileFormat(
        encoding=encoding, delimiter=delimiter, compressed=compressed, warnings=tuple(warnings)
    )


def _detect_encoding(head: bytes) -> tuple[str, list[str]]:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", []
    # A sample cut mid-character is still UTF-8: decode incrementally and leave the tail.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8", []
    encoding = _best_single_byte(head)
    label = codecs.lookup(encoding).name
    return encoding, [f"The file is not UTF-8; it was read as {label}."]


# Single-byte code pages that spreadsheets and old systems write, most likely first: Windows-1252
# (Excel on Western Windows) wins unless another reads the sample with strictly fewer oddities.
SINGLE_BYTE_ENCODINGS = ("cp1252", "iso8859_15", "cp1250", "mac_roman")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _oddities(text: str) -> int:
    """How much of a misreading the text shows: control characters, a symbol inside a word
    (`za¿ó³æ`), a capital letter after a small one (`jaŸñ`, `OlŽ`)."""
    count = 0
    for match in _NON_ASCII.finditer(text):
        i = match.start()
        char = text[i]
        kind = unicodedata.category(char)
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if kind in ("Cc", "Co", "Cn"):
            count += 2
            continue
        symbol_in_word = not kind.startswith("L") and before.isalpha() and after.isalpha()
        if symbol_in_word or (kind == "Lu" and before.islower()):
            count += 1
    return count


def _best_single_byte(head: bytes) -> str:
    scores: list[tuple[int, int, str]] = []
    for rank, encoding in enumerate(SINGLE_BYTE_ENCODINGS):
        try:
            text = head.decode(encoding)
        except UnicodeDecodeError:
            continue
        scores.append((_oddities(text), rank, encoding))
    if not scores:
        best = from_bytes(head).best()
        return best.encoding if best is not None else "latin-1"
    return min(scores)[2]


def _first_line(head: bytes, encoding: str) -> str:
    sample = head[:MAX_HEADER_BYTES]
    if encoding.startswith("utf-16") and len(sample) % 2:
        sample = sample[:-1]
    text = sample.decode(encoding, errors="replace")
    for line in text.splitlines():
        if line.strip():
            return line
    raise FileFormatError("The file has no header row.")


def _detect_delimiter(head: bytes, encoding: str) -> str:
    header = _first_line(head, encoding)
    try:
        return csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:
        # One-column headers and the like: the most frequent candidate, else a comma.
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


class CsvSource:
    """Streams (line number, fields) from a stored file, reporting how many bytes were read."""

    def __init__(self, raw: BinaryIO, file_format: FileFormat, encoding: str | None = None) -> None:
        self._raw = raw
        self.format = file_format
        self.encoding = encoding or file_format.encoding
        raw.seek(0)
        self._binary = open_binary(raw, file_format.compressed)
        self._text = io.TextIOWrapper(
            self._binary,
            encoding=self.encoding,
            newline="",
            errors="strict",
        )
        self._reader = csv.reader(self._text, delimiter=file_format.delimiter)
        self.header: list[str] = []
        self.warnings = file_format.warnings

    @property
    def bytes_read(self) -> int:
        return self._raw.tell()

    @property
    def fraction_read(self) -> float | None:
        return None  # bytes read tell

    def read_header(self, mapping: Mapping[str, str] | None = None) -> Columns:
        for row in self._reader:
            if any(cell.strip() for cell in row):
                self.header = row
                return column_mapping.resolve(row, mapping)
        raise FileFormatError("The file has no header row.")

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Data rows with the file line each starts on; blank lines are skipped."""
        reader = self._reader
        previous_end = reader.line_num
        start = previous_end + 1
        self.row_start = start
        try:
            for row in reader:
                start = previous_end + 1
                previous_end = reader.line_num
                self.row_start = previous_end + 1
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield start, row
        except csv.Error as exc:
            if "field larger than field limit" not in str(exc):
                raise
            raise FileFormatError(
                f"Line {self.row_start}: a field that starts on this line is longer than "
                f"{FIELD_SIZE_LIMIT // (1024 * 1024)} MiB; a quote opened there is probably never "
                "closed. The file is not valid CSV; nothing was imported."
            ) from None
        if previous_end > start and self._quote_left_open(start):
            raise FileFormatError(
                f"Line {start}: a quote opened on this line is never closed (the field runs to "
                "the end of the file). The file is not valid CSV; nothing was imported."
            )

    def _quote_left_open(self, start: int) -> bool:
        """Whether the last row (from line `start` to the end) ends inside a quoted field. The
        forgiving reader takes such a field to the end of the file; a strict one says so."""
        self._raw.seek(0)
        text = io.TextIOWrapper(
            open_binary(self._raw, self.format.compressed),
            encoding=self.encoding,
            newline="",
            errors="replace",
        )
        try:
            lines = iter(text)
            next(itertools.islice(lines, start - 1, start - 1), None)  # skip to `start`
            for _ in csv.reader(lines, delimiter=self.format.delimiter, strict=True):
                pass
        except csv.Error as exc:
            return "unexpected end of data" in str(exc)
        finally:
            text.detach()
        return False

    @property
    def line_num(self) -> int:
        return self._reader.line_num

    def close(self) -> None:
        self._text.detach()


def check_header(raw: BinaryIO) -> FileFormat:
    """What can be refused before an import starts: empty, binary, no usable header."""
    file_format = detect_format(raw)
    source = CsvSource(raw, file_format)
    try:
        source.read_header()
    except UnicodeDecodeError:
        pass  # the sample looked fine; the worker falls back to Windows-1252 if needed
    except csv.Error as exc:
        raise FileFormatError(f"The header row is not valid CSV: {exc}.") from None
    finally:
        source.close()
    return file_format
