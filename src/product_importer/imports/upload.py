"""Receiving an upload: the multipart body is streamed to storage, never held in memory.

Starlette's form parser would spool the whole file to a temporary file before our code runs,
so an over-size upload could only be refused after it had been received in full. Here the body
is parsed as it arrives and refused (413) as soon as it passes the limit. Parsing and writing
run on a worker thread, a batch of about a megabyte at a time: storage writes block (a file, or
an INSERT of a chunk in distributed mode), and the event loop must keep serving other requests.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import BinaryIO

from anyio import to_thread
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from product_importer.imports.storage import UploadStorage

FIELD_NAME = "file"
# Small text fields that may come with the file (the same as the query parameters).
TEXT_FIELDS = (
    "mapping",
    "encoding",
    "sheet",
    "decimal_separator",
    "empty_cells",
    "group_by",
    "variant_names",
    "new_fields",
    "missing",
    "max_missing_percent",
    "confirm_missing",
)
MAX_TEXT_FIELD_BYTES = 16 * 1024
# A mapping of many custom fields, and new fields, are longer.
TEXT_FIELD_BYTES = {"mapping": 64 * 1024, "new_fields": 128 * 1024}
MAX_FILENAME = 255
# Bytes of the request body handed to the parsing thread at a time.
BATCH_BYTES = 1024 * 1024


class UploadError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass
class StoredUpload:
    key: str
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


class _PartCollector:
    """Callbacks for python-multipart: write the `file` part to storage, skip other parts."""

    def __init__(self, storage: UploadStorage, limit: int) -> None:
        self.storage = storage
        self.limit = limit
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.sink: BinaryIO | None = None
        self.found: StoredUpload | None = None
        self.size = 0
        self.error: UploadError | None = None
        self.complete = False  # the closing boundary arrived: the body was not cut short
        self.fields: dict[str, str] = {}
        self.text_field: str | None = None
        self.text = bytearray()

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.strip().lower()] = self.header_value.strip()
        self.header_field = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("latin-1")
        if name in TEXT_FIELDS and b"filename" not in options:
            self.sink = None
            self.text_field = name
            self.text = bytearray()
            return
        if options.get(b"name") != FIELD_NAME.encode() or self.found is not None:
            self.sink = None
            return
        raw_name = options.get(b"filename", b"upload.csv").decode("utf-8", "replace")
        filename = raw_name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload.csv"
        key = self.storage.new_key(".upload")
        self.found = StoredUpload(key=key, filename=filename[:MAX_FILENAME], size=0)
        self.sink = self.storage.open_write(key)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.text_field is not None and self.error is None:
            self.text += data[start:end]
            limit = TEXT_FIELD_BYTES.get(self.text_field, MAX_TEXT_FIELD_BYTES)
            if len(self.text) > limit:
                self.error = UploadError(
                    422, f"The form field {self.text_field!r} is longer than {limit:,} bytes."
                )
            return
        if self.sink is None or self.error is not None:
            return
        self.size += end - start
        if self.size > self.limit:
            self.error = UploadError(
                413, f"The file is larger than the upload limit of {self.limit:,} bytes."
            )
            return
        self.sink.write(data[start:end])

    def on_part_end(self) -> None:
        if self.text_field is not None:
            name, self.text_field = self.text_field, None
            try:
                value = bytes(self.text).decode("utf-8")
            except UnicodeDecodeError:
                self.error = self.error or UploadError(
                    422, f"The form field {name!r} is not UTF-8 text."
                )
                return
            if name in self.fields and self.error is None:
                self.error = UploadError(422, f"The form field {name!r} is sent more than once.")
            self.fields[name] = value
            return
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    def on_end(self) -> None:
        self.complete = True


async def receive_upload(request: Request, storage: UploadStorage, limit: int) -> StoredUpload:
    """Stream the multipart field `file` into storage; raise UploadError with a 4xx otherwise."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadError(415, "Send the file as multipart/form-data in a field named 'file'.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise UploadError(413, f"The file is larger than the upload limit of {limit:,} bytes.")
    collector = _PartCollector(storage, limit)
    parser = MultipartParser(
        options[b"boundary"],
        {
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_end": collector.on_end,
        },
    )
    batch = bytearray()
    try:
        async for chunk in request.stream():
            batch += chunk
            if len(batch) >= BATCH_BYTES:
                await to_thread.run_sync(parser.write, bytes(batch))
                batch.clear()
                if collector.error is not None:
                    break
        else:
            await to_thread.run_sync(_write_last, parser, bytes(batch))
    except Exception as exc:  # python-multipart raises its own errors on malformed bodies
        collector.error = collector.error or UploadError(400, f"Malformed multipart body: {exc}")
    finally:
        if collector.sink is not None:
            await to_thread.run_sync(collector.sink.close)
    if collector.error is None and not collector.complete:
        collector.error = UploadError(
            400, "The upload was cut short (no closing multipart boundary); nothing was imported."
        )
    if collector.error is not None:
        if collector.found is not None:
            await to_thread.run_sync(storage.delete, collector.found.key)
        raise collector.error
    if collector.found is None:
        raise UploadError(422, "No file was sent: use a multipart field named 'file'.")
    collector.found.size = collector.size
    collector.found.fields = collector.fields
    return collector.found


def _write_last(parser: MultipartParser, data: bytes) -> None:
    if data:
        parser.write(data)
    parser.finalize()


def discard(storage: UploadStorage, upload: StoredUpload) -> None:
    with contextlib.suppress(OSError):
        storage.delete(upload.key)
