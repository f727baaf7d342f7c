"""Where uploaded files are kept until their import no longer needs them.

Embedded mode keeps them in a folder under PRODUCT_IMPORTER_HOME. Distributed mode keeps them in
the database, in chunks of `CHUNK_BYTES`, so a worker on any machine can read what a web process
on another received, without a shared filesystem; files stream in and out a chunk at a time.
Keys are generated here, never taken from user input, so a file name cannot escape the folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import delete, func, insert, select

from product_importer.imports.models import UploadChunk

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from product_importer.db import Database
    from product_importer.settings import Settings

CHUNK_BYTES = 1024 * 1024


class UploadStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def new_key(self, suffix: str = "") -> str:
        return secrets.token_hex(16) + suffix

    def path(self, key: str) -> Path:
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key

    def open_write(self, key: str) -> BinaryIO:
        # Owner only: an upload is the catalogue's data, and the folder sits beside secrets.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        return os.fdopen(os.open(self.path(key), flags, 0o600), "wb")

    def open_read(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def exists(self, key: str) -> bool:
        return bool(key) and self.path(key).exists()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        if key:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path(key))

    def stored_keys(self) -> Iterator[str]:
        """Every key in storage, for retention sweeps."""
        if self.root.is_dir():
            for entry in os.scandir(self.root):
                if entry.is_file():
                    yield entry.name


class DatabaseUploadStorage(UploadStorage):
    """Uploads as rows of `upload_chunks`: every chunk but the last is exactly CHUNK_BYTES, so
    a byte offset maps to its chunk directly. A file is written in one transaction, so a
    process that dies mid-upload leaves nothing behind."""

    def __init__(self, database: Database) -> None:
        super().__init__(Path("/nonexistent"))
        self.database = database

    def path(self, key: str) -> Path:
        raise NotImplementedError("files in the database have no path")

    def open_write(self, key: str) -> BinaryIO:
        _check_key(key)
        if self.exists(key):
            raise FileExistsError(key)
        return io.BufferedWriter(_ChunkWriter(self.database, key), buffer_size=CHUNK_BYTES)

    def open_read(self, key: str) -> BinaryIO:
        _check_key(key)
        if not self.exists(key):
            raise FileNotFoundError(key)
        return io.BufferedReader(_ChunkReader(self.database, key), buffer_size=64 * 1024)

    def exists(self, key: str) -> bool:
        if not key:
            return False
        with self.database.engine.connect() as connection:
            query = select(UploadChunk.seq).where(UploadChunk.key == key).limit(1)
            return connection.scalar(query) is not None

    def size(self, key: str) -> int:
        with self.database.engine.connect() as connection:
            total = connection.scalar(
                select(func.coalesce(func.sum(func.length(UploadChunk.data)), 0)).where(
                    UploadChunk.key == key
                )
            )
        return int(total or 0)

    def delete(self, key: str) -> None:
        if key:
            with self.database.engine.begin() as connection:
                connection.execute(delete(UploadChunk).where(UploadChunk.key == key))

    def stored_keys(self) -> Iterator[str]:
        with self.database.engine.connect() as connection:
            keys = list(connection.scalars(select(UploadChunk.key).distinct()))
        yield from keys


def _check_key(key: str) -> None:
    if not key or len(key) > 64 or "/" in key or "\\" in key or key.startswith("."):
        raise ValueError(f"invalid storage key {key!r}")


class _ChunkWriter(io.RawIOBase):
    def __init__(self, database: Database, key: str) -> None:
        self._key = key
        self._seq = 0
        self._pending = bytearray()
        self._connection: Any = database.engine.connect()
        self._transaction: Any = self._connection.begin()

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data)
        self._pending += view
        while len(self._pending) >= CHUNK_BYTES:
            self._insert(bytes(self._pending[:CHUNK_BYTES]))
            del self._pending[:CHUNK_BYTES]
        return view.nbytes

    def _insert(self, chunk: bytes) -> None:
        self._connection.execute(
            insert(UploadChunk).values(key=self._key, seq=self._seq, data=chunk)
        )
        self._seq += 1

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._pending or self._seq == 0:  # an empty file still exists, as one empty chunk
                self._insert(bytes(self._pending))
                self._pending.clear()
            self._transaction.commit()
        finally:
            self._connection.close()
            super().close()


class _ChunkReader(io.RawIOBase):
    def __init__(self, database: Database, key: str) -> None:
        self._database = database
        self._key = key
        self._position = 0
        self._chunk_seq = -1
        self._chunk = b""
        self._size: int | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self._total_size()
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence {whence}")
        if offset < 0:
            raise ValueError("negative seek position")
        self._position = offset
        return offset

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        seq, start = divmod(self._position, CHUNK_BYTES)
        if seq != self._chunk_seq:
            self._chunk = self._fetch(seq)
            self._chunk_seq = seq
        piece = self._chunk[start : start + len(target)]
        target[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def _fetch(self, seq: int) -> bytes:
        with self._database.engine.connect() as connection:
            data = connection.scalar(
                select(UploadChunk.data).where(UploadChunk.key == self._key, UploadChunk.seq == seq)
            )
        return bytes(data) if data is not None else b""

    def _total_size(self) -> int:
        if self._size is None:
            self._size = DatabaseUploadStorage(self._database).size(self._key)
        return self._size


def storage_for(settings: Settings, database: Database) -> UploadStorage:
    """Local files in embedded mode; the database when workers may be on other machines."""
    if settings.distributed:
        return DatabaseUploadStorage(database)
    return UploadStorage(settings.home / "uploads")
