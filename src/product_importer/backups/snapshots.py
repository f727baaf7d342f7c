"""The seam between the backup flow and each database kind (`sqlite`, `postgres`).

A kind makes a `Snapshot` (its payload as a stream, and what the snapshot holds, read in the same
transaction) and restores through a `Restore`: stage the payload as a database of its own, which
the flow then migrates forward, and swap it in only once that succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from product_importer.backups.archive import Contents, Manifest


@dataclass(frozen=True)
class Snapshot:
    revision: str | None
    contents: Contents
    stream: BinaryIO


class Restore(Protocol):
    def verify(self, path: Path, manifest: Manifest, workdir: Path) -> None:
        """Copy the payload out into `workdir`, checking it (DamagedBackup if it fails)."""
        ...

    def stage(self, workdir: Path) -> str:
        """Make the checked payload a database of its own; answers its URL."""
        ...

    def swap_in(self) -> None:
        """Put the staged database in the place of the configured one."""
        ...

    def discard(self) -> None:
        """Remove what staging left that is not in place (always called)."""
        ...
