"""Reading catalogue CSV files: format detection, the header, and a streaming row iterator.

One pass over the file, never all of it in memory. Percent done is measured in bytes of the
stored file (compressed bytes for .csv.gz), so no counting pass is needed.

Nothing here trusts the file to be shaped like CSV: text is read in slices of READ_CHARS and cut
into lines here (csv.reader takes any iterator of lines), so a line or a row is measured before
it is whole and refused past MAX_ROW_CHARS, and a .csv.gz is refused once it has inflated past
its limit. Between slices a hook (`on_read`) lets the import report progress and notice a
cancel, whatever the lines hold: blank lines never reach the import's own loop.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO

from charset_normalizer import from_bytes

from product_importer.imports import mapping as column_mapping
from product_importer.imports.columns import Columns as Columns
from product_importer.imports.columns import FieldSpec
from product_importer.imports.columns import FileFormatError as FileFormatError
from product_importer.imports.columns import NotCsvError as NotCsvError

GZIP_MAGIC = b"\x1f\x8b"
SAMPLE_BYTES = 256 * 1024
MAX_HEADER_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
# A field over our column limits only rejects its row. One row (all its lines, so also any one
# line or field) longer than this fails the file: it almost always is a quote never closed, or
# not CSV at all. The limit bounds what one row costs in memory: tiny fields take ~25 bytes per
# character of the file in a Python list (8 Mi characters of `ab,` are ~210 MB), and a line is
# never read whole before it is measured, so a file of one 2 GiB line is refused, not read in.
MAX_ROW_CHARS = 8 * 1024 * 1024
FIELD_SIZE_LIMIT = MAX_ROW_CHARS
# Characters of text read at a time (and decoded at a time: TextIOWrapper's own step is 8 KiB).
# Between reads the importer reports progress and notices a cancel: 64 Ki blank lines take
# about 30 ms to skip.
READ_CHARS = 64 * 1024
# What a .csv.gz may inflate to when no limit is given (the setting max_decompressed_bytes).
DEFAULT_MAX_DECOMPRESSED_BYTES = 10 * 1024**3
# Line breaks of str.splitlines that are not line breaks in CSV (csv.reader ends lines only at
# CR and LF): a slice holding one of them is cut with _LINE instead.
_OTHER_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


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


def open_binary(
    raw: BinaryIO, compressed: bool, max_decompressed_bytes: int | None = None
) -> BinaryIO:
    """The file's bytes, inflated if compressed; past `max_decompressed_bytes` of inflated bytes
    a read raises FileFormatError."""
    if not compressed:
        return raw
    inflated = gzip.GzipFile(fileobj=raw, mode="rb")
    if max_decompressed_bytes is None:
        return inflated  # type: ignore[return-value]
    return _Capped(inflated, max_decompressed_bytes)  # type: ignore[return-value]


class _Capped(io.BufferedIOBase):
    """Counts the bytes a gzip stream inflates to and stops past the limit: a 1 MB upload can
    inflate to a terabyte. TextIOWrapper reads through read1."""

    def __init__(self, inner: gzip.GzipFile, limit: int) -> None:
        super().__init__()
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def _counted(self, data: bytes) -> bytes:
        self.count += len(data)
        if self.count > self._limit:
            raise FileFormatError(
                f"The file is larger than {self._limit:,} bytes once decompressed (the limit "
                "for .gz files, PRODUCT_IMPORTER_MAX_DECOMPRESSED_BYTES); nothing was imported."
            )
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._limit + 1 - self.count  # never inflate more than the limit at once
        return self._counted(self._inner.read(size))

    def read1(self, size: int = -1) -> bytes:
        return self._counted(self._inner.read1(size))


def _too_long_line(line: int) -> FileFormatError:
    return FileFormatError(
        f"Line {line} is longer than {MAX_ROW_CHARS // (1024 * 1024)} MiB "
        f"({MAX_ROW_CHARS:,} characters): a quote opened there is probably never closed, or "
        "this is not CSV text. Nothing was imported."
    )


def _too_long_row(line: int) -> FileFormatError:
    return FileFormatError(
        f"Line {line}: the row that starts on this line is longer than "
        f"{MAX_ROW_CHARS // (1024 * 1024)} MiB ({MAX_ROW_CHARS:,} characters); a quote opened "
        "there is probably never closed. The file is not valid CSV; nothing was imported."
    )


def bounded_lines(
    text: IO[str],
    on_read: Callable[[int], None] | None = None,
    limit: int = MAX_ROW_CHARS,
) -> Iterator[str]:
    """The text's lines, ends kept (CR, LF or CRLF, as csv.reader wants them), never building
    one longer than `limit` characters. `on_read(characters read so far)` runs before each
    slice's lines are handed on, so a caller regains control however the lines look. Python
    runs once a slice; each line is passed on by itertools in C."""
    return itertools.chain.from_iterable(_slices(text, on_read, limit))


def _slices(
    text: IO[str], on_read: Callable[[int], None] | None, limit: int
) -> Iterator[list[str]]:
    if isinstance(text, io.TextIOWrapper):
        text._CHUNK_SIZE = READ_CHARS  # type: ignore[attr-defined]
    read, readline = text.read, text.readline
    lines_before = 0  # lines handed on before this slice
    consumed = 0
    while True:
        chunk = read(READ_CHARS)
        if not chunk:
            return
        if chunk[-1] == "\r":
            chunk += readline(limit + 1)  # "\n" if the slice cut a CRLF, else the next line
        elif chunk[-1] != "\n":
            # The slice ends inside a line: finish that line, reading no more than the limit.
            cut = max(chunk.rfind("\n"), chunk.rfind("\r")) + 1
            chunk += readline(limit + 1 - (len(chunk) - cut))
        for other in _OTHER_BREAKS:
            if other in chunk:
                lines = _LINE.findall(chunk)
                break
        else:
            lines = chunk.splitlines(True)
        if len(lines[-1]) > limit:
            raise _too_long_line(lines_before + len(lines))
        if on_read is not None:
            on_read(consumed)
        consumed += len(chunk)
        lines_before += len(lines)
        yield lines


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


# Text that any encoding fit for CSV reads back as written: delimiters, quotes, both cases,
# backslash escapes (unicode_escape would turn them into other characters), `+` and `~` (utf-7
# and hz shift on them) and a run of 70 characters without a dot (idna refuses labels over 63
# and lowercases; punycode appends "-").
_PROBE = (
    'sku,name;description\t"quoted" | Name-1_A/b \\n \\u0041 +49 ~{x 0123456789 '
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ\r\n"
)


def _read_back(encoding: str, data: bytes) -> str:
    """`data` decoded as the reader does it: incrementally, in small pieces."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    text = "".join(decoder.decode(data[i : i + 7]) for i in range(0, len(data), 7))
    return text + decoder.decode(b"", final=True)


def _usable_for_csv(encoding: str) -> bool:
    try:
        if _read_back(encoding, _PROBE.encode(encoding)) != _PROBE:
            return False
        # An encoding that writes ASCII as ASCII must also read plain ASCII as written, one
        # character a byte (Japanese Shift JIS variants may read \\ and ~ as ¥ and ‾).
        if "sku,name".encode(encoding) == b"sku,name":
            text = _read_back(encoding, _PROBE.encode("ascii"))
            return len(text) == len(_PROBE) and all(
                got == want or want in "\\~" for got, want in zip(text, _PROBE, strict=True)
            )
        return True
    except Exception:  # codecs raise UnicodeError, ValueError, TypeError...
        return False


# Encodings that read every text but need a byte-order mark to know the byte order.
_NEEDS_BOM = {
    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
    "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
}
# A given fixed-order encoding of a file that starts with its own mark: read through the mark.
_WITH_BOM = {
    "utf-16-le": (codecs.BOM_UTF16_LE, "utf-16"),
    "utf-16-be": (codecs.BOM_UTF16_BE, "utf-16"),
    "utf-32-le": (codecs.BOM_UTF32_LE, "utf-32"),
    "utf-32-be": (codecs.BOM_UTF32_BE, "utf-32"),
}


def check_encoding(name: str) -> str:
    """A text encoding Python knows, by any of its names, that can read CSV text; its
    canonical name."""
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
    # Some text codecs are not for files (idna and punycode encode domain names, the escape
    # codecs rewrite backslashes, `undefined` refuses everything).
    if not _usable_for_csv(info.name):
        raise FileFormatError(
            f"The encoding {info.name!r} cannot be used for CSV text: it does not read plain text "
            "back as written. Use a name such as utf-8, cp1252 (Windows Western), iso-8859-1, "
            "cp1250, mac_roman, utf-16-le or utf-16."
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
        mark, through_mark = _WITH_BOM.get(encoding, (None, encoding))
        if mark is not None and head.startswith(mark):
            encoding = through_mark
        if encoding in _NEEDS_BOM and not head.startswith(_NEEDS_BOM[encoding]):
            # Python would guess the byte order; a wrong guess reads every character wrong.
            bits = encoding.removeprefix("utf-")
            raise FileFormatError(
                f"The file does not start with a byte-order mark, so its {encoding.upper()} byte "
                f"order is unknown: choose utf-{bits}-le (little-endian, what Windows writes) or "
                f"utf-{bits}-be."
            )
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

    def __init__(
        self,
        raw: BinaryIO,
        file_format: FileFormat,
        encoding: str | None = None,
        max_decompressed_bytes: int | None = DEFAULT_MAX_DECOMPRESSED_BYTES,
    ) -> None:
        self._raw = raw
        self.format = file_format
        self.encoding = encoding or file_format.encoding
        self._max_decompressed_bytes = max_decompressed_bytes
        # Run between slices of text (see bounded_lines): the import reports progress there.
        self.on_read: Callable[[], None] | None = None
        self.row_start = 1
        self._row_seen = (0, 0)  # (row_start, characters read) at the first slice of a row
        self._text = self._open_text("strict")
        self._reader = csv.reader(
            bounded_lines(self._text, self._slice_read), delimiter=file_format.delimiter
        )
        self.header: list[str] = []
        self.warnings = file_format.warnings

    def _open_text(self, errors: str) -> io.TextIOWrapper:
        self._raw.seek(0)
        binary = open_binary(self._raw, self.format.compressed, self._max_decompressed_bytes)
        return io.TextIOWrapper(binary, encoding=self.encoding, newline="", errors=errors)

    def _slice_read(self, consumed: int) -> None:
        """Between slices: a row still going after MAX_ROW_CHARS fails the file (csv.reader
        bounds one field, not the number of fields); then the import's hook runs."""
        if self.row_start != self._row_seen[0]:
            self._row_seen = (self.row_start, consumed)
        elif consumed - self._row_seen[1] > MAX_ROW_CHARS:
            raise _too_long_row(self.row_start)
        if self.on_read is not None:
            self.on_read()

    def _tick(self, _consumed: int) -> None:
        if self.on_read is not None:
            self.on_read()

    @property
    def bytes_read(self) -> int:
        return self._raw.tell()

    @property
    def fraction_read(self) -> float | None:
        return None  # bytes read tell

    def read_header(
        self,
        mapping: Mapping[str, str] | None = None,
        fields: Sequence[FieldSpec] = (),
        group_by: str | None = None,
    ) -> Columns:
        for row in self._reader:
            if any(cell.strip() for cell in row):
                self.header = row
                return column_mapping.resolve(row, mapping, fields, group_by)
            self.row_start = self._reader.line_num + 1
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
        forgiving reader takes such a field to the end of the file; a strict one says so. The
        lines are read again as bounded as the first time (that row was within the limit)."""
        text = self._open_text("replace")
        try:
            lines = bounded_lines(text, self._tick)
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
