"""Upload storage in the database (distributed mode): streamed in and out in chunks, seekable
the way the CSV reader needs, and chosen only when a broker is configured."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from product_importer.db import Database
from product_importer.imports.models import UploadChunk
from product_importer.imports.reading import CsvSource, detect_format
from product_importer.imports.storage import (
    CHUNK_BYTES,
    DatabaseUploadStorage,
    UploadStorage,
    storage_for,
)
from tests.conftest import make_settings


def _url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def test_storage_is_local_unless_a_broker_is_configured(database: Database, tmp_path: Path) -> None:
    local = storage_for(make_settings(tmp_path, _url(database)), database)
    assert type(local) is UploadStorage
    assert local.root == tmp_path / "uploads"
    distributed = make_settings(tmp_path, _url(database), broker_url="redis://127.0.0.1:6379/0")
    assert isinstance(storage_for(distributed, database), DatabaseUploadStorage)


def test_round_trip_in_whole_chunks(database: Database) -> None:
    storage = DatabaseUploadStorage(database)
    content = os.urandom(2 * CHUNK_BYTES + 12_345)
    key = storage.new_key(".upload")
    assert not storage.exists(key)
    with storage.open_write(key) as sink:
        for start in range(0, len(content), 65_536):  # as the multipart parser writes
            sink.write(content[start : start + 65_536])
    assert storage.exists(key)
    assert storage.size(key) == len(content)
    with database.engine.connect() as connection:
        sizes = connection.execute(
            select(func.length(UploadChunk.data))
            .where(UploadChunk.key == key)
            .order_by(UploadChunk.seq)
        ).scalars()
        assert list(sizes) == [CHUNK_BYTES, CHUNK_BYTES, 12_345]

    with storage.open_read(key) as raw:
        assert raw.read(10) == content[:10]
        assert raw.tell() == 10
        raw.seek(CHUNK_BYTES - 5)
        assert raw.read(10) == content[CHUNK_BYTES - 5 : CHUNK_BYTES + 5]  # across a chunk edge
        raw.seek(0)
        assert raw.tell() == 0
        assert raw.read() == content
        assert raw.tell() == len(content)
        assert raw.read(1) == b""
    with pytest.raises(FileExistsError):
        storage.open_write(key)
    storage.delete(key)
    assert not storage.exists(key)
    with pytest.raises(FileNotFoundError):
        storage.open_read(key)


def test_an_empty_file_exists_with_size_zero(database: Database) -> None:
    storage = DatabaseUploadStorage(database)
    key = storage.new_key()
    storage.open_write(key).close()
    assert storage.exists(key)
    assert storage.size(key) == 0
    with storage.open_read(key) as raw:
        assert raw.read() == b""


def test_the_csv_reader_reads_gzip_through_it(database: Database) -> None:
    storage = DatabaseUploadStorage(database)
    rows = "".join(f"SKU-{i},Product {i},{'x' * 40}\n" for i in range(60_000))
    packed = gzip.compress(("sku,name,description\n" + rows).encode())
    key = storage.new_key(".upload")
    with storage.open_write(key) as sink:
        sink.write(packed)
    with storage.open_read(key) as raw:
        file_format = detect_format(raw)
        source = CsvSource(raw, file_format)
        source.read_header()
        count = sum(1 for _ in source.rows())
        assert source.bytes_read == len(packed)  # progress by bytes comes from tell()
    assert count == 60_000


def test_keys_cannot_be_chosen_to_escape(database: Database) -> None:
    storage = DatabaseUploadStorage(database)
    for key in ("", "../x", "a/b", ".hidden", "x" * 65):
        with pytest.raises(ValueError, match="invalid storage key"):
            storage.open_write(key)


def test_local_uploads_are_the_owners_only(tmp_path: Path) -> None:
    """A folder and files only the server's user can read, whatever the umask."""
    previous = os.umask(0o022)
    try:
        storage = UploadStorage(tmp_path / "home" / "uploads")
        key = storage.new_key(".csv")
        with storage.open_write(key) as sink:
            sink.write(b"sku,name\nA-1,One\n")
    finally:
        os.umask(previous)
    assert os.stat(storage.root).st_mode & 0o777 == 0o700
    assert os.stat(storage.path(key)).st_mode & 0o777 == 0o600
    with storage.open_read(key) as source:
        assert source.read() == b"sku,name\nA-1,One\n"
    with pytest.raises(FileExistsError):  # a key is written once
        storage.open_write(key)
