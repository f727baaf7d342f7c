"""Where uploaded files are kept until their import no longer needs them.

Embedded mode keeps them in a folder under PRODUCT_IMPORTER_HOME. Keys are generated here,
never taken from user input, so a file name cannot escape the folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO


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
        self.root.mkdir(parents=True, exist_ok=True)
        return self.path(key).open("xb")

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


def storage_for(home: Path) -> UploadStorage:
    return UploadStorage(home / "uploads")
