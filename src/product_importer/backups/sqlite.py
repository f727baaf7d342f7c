"""SQLite: backups through SQLite's online backup API, and restores through it the other way.

Backup: one step of the backup API copies every page under one read transaction, so the copy is
the database as one moment saw it. In WAL mode that read blocks no writer: an import keeps
merging, and the copy holds all of its transaction or none of it. The copy is switched to a
rollback journal so that it is one self-contained file, then counted in place: the manifest
describes the very pages it carries.

Restore: the payload is copied out and checked (checksum, then `PRAGMA quick_check`) into a file
of its own, migrated forward there, and only then copied over the live database with the backup
API, in one write transaction. The live file keeps its name, mode and owner, and a process that
has it open sees either the old content or the new, never half. Anything that fails before the
copy leaves the live file as it was.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from product_importer.backups import archive, inventory
from product_importer.backups.errors import BackupFailed, RestoreFailed
from product_importer.backups.snapshots import Snapshot
from product_importer.db import SQLITE_BUSY_TIMEOUT_MS, Database, create_private_file

BUSY_TIMEOUT_SECONDS = SQLITE_BUSY_TIMEOUT_MS / 1000


def database_path(database: Database) -> Path:
    name = database.engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        raise BackupFailed("Only a SQLite database in a file can be backed up or restored.")
    return Path(name)


def _remove_with_sidecars(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def snapshot(database: Database, workdir: Path) -> Iterator[Snapshot]:
    """A consistent copy of the live database in `workdir`, removed when the block ends."""
    live = database_path(database)
    copy = workdir / f".snapshot-{secrets.token_hex(4)}.sqlite"
    create_private_file(copy)
    try:
        try:
            with (
                closing(sqlite3.connect(live, timeout=BUSY_TIMEOUT_SECONDS)) as source,
                closing(sqlite3.connect(copy)) as target,
            ):
                source.backup(target)  # all pages in one step: one read transaction
                target.execute("PRAGMA journal_mode=DELETE")
                tables = {row[0] for row in target.execute(inventory.SQLITE_TABLES)}
                scalar = _scalar(target)
                revision = inventory.revision(scalar, tables)
                contents = inventory.contents(scalar, tables)
        except sqlite3.Error as exc:
            raise BackupFailed(f"SQLite could not copy {live.name}: {exc}") from None
        with copy.open("rb") as stream:
            yield Snapshot(revision=revision, contents=contents, stream=stream)
    finally:
        _remove_with_sidecars(copy)


def _scalar(connection: sqlite3.Connection) -> inventory.Scalar:
    return lambda sql: connection.execute(sql).fetchone()[0]


class SqliteRestore:
    """Stages the backup in a file of its own beside the work folder, then copies it in."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._live = database_path(database)
        self._staged: Path | None = None

    def verify(self, path: Path, manifest: archive.Manifest, workdir: Path) -> None:
        staged = workdir / "restore.sqlite"
        create_private_file(staged)
        self._staged = staged
        with staged.open("wb") as target:
            archive.extract_payload(path, manifest, target)
        try:
            with closing(sqlite3.connect(staged)) as connection:
                verdict = [row[0] for row in connection.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            raise archive.DamagedBackup(
                f"{path} is damaged: the database inside does not open ({exc})."
            ) from None
        if verdict != ["ok"]:
            raise archive.DamagedBackup(
                f"{path} is damaged: the database inside fails SQLite's check "
                f"({'; '.join(verdict[:3])})."
            )

    def stage(self, workdir: Path) -> str:
        assert self._staged is not None
        return f"sqlite:///{self._staged}"

    def swap_in(self) -> None:
        assert self._staged is not None
        self._database.dispose()
        try:
            with (
                closing(sqlite3.connect(self._staged)) as source,
                closing(sqlite3.connect(self._live, timeout=BUSY_TIMEOUT_SECONDS)) as target,
            ):
                source.backup(target)  # one write transaction on the live file
                target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise RestoreFailed(
                f"SQLite could not write the restored database into {self._live}: {exc}. "
                "The database was not changed."
            ) from None

    def discard(self) -> None:
        if self._staged is not None:
            _remove_with_sidecars(self._staged)
