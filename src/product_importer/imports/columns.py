"""What every reader shares: the file-level error and where our fields sit in a row."""

from __future__ import annotations

from dataclasses import dataclass, field


class FileFormatError(Exception):
    """The file cannot be imported at all; the message says why, for the person who sent it."""


class NotCsvError(FileFormatError):
    """The file is not text at all (an image, an archive, an unknown binary)."""


@dataclass(frozen=True)
class Columns:
    """Where each of our fields sits in a row of the file (see imports.mapping)."""

    sku: int
    name: int
    description: int | None
    active: int | None
    width: int
    ignored: tuple[str, ...] = field(default=())
