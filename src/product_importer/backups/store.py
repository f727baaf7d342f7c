"""The backups folder (`PRODUCT_IMPORTER_HOME/backups`), where the files are the record:

    product-importer-backup-20250101-030000-123456.zip           a finished backup
    product-importer-backup-20250101-030000-123456.zip.partial   one being written
    product-importer-backup-20250101-030000-123456.failed.json   one that failed, and why
    .lock                                                        held while one is written

A backup's id is the UTC time it started, to the microsecond, so names sort by age.

One backup is written into the folder at a time, by whichever process holds an exclusive flock on
`.lock` (the server, or the CLI beside it); the OS releases it when that process dies. A partial
file while nobody holds the lock was cut off by a crash: it is listed as failed and removed by the
next backup. A finished backup appears under its final name in one rename, never half written.
Everything here is created readable by its owner only: a backup holds password hashes and
webhook secrets.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from product_importer.backups import archive
from product_importer.backups.errors import BackupBusy

PREFIX = "product-importer-backup-"
ID_PATTERN = r"^[0-9]{8}-[0-9]{6}-[0-9]{6}$"
ID_FORMAT = "%Y%m%d-%H%M%S-%f"
_NAME = re.compile(
    rf"^{PREFIX}([0-9]{{8}}-[0-9]{{6}}-[0-9]{{6}})(\.zip|\.zip\.partial|\.failed\.json)$"
)
COMPLETED, PARTIAL, FAILED = ".zip", ".zip.partial", ".failed.json"
INTERRUPTED = "Interrupted: the process writing it stopped before it finished."

Status = Literal["running", "completed", "failed"]


@dataclass(frozen=True)
class BackupRecord:
    id: str
    file_name: str
    status: Status
    created_at: datetime
    trigger: str | None = None
    size: int | None = None
    error: str | None = None
    manifest: archive.Manifest | None = None

    @property
    def product_count(self) -> int | None:
        return self.manifest.contents.products if self.manifest else None


def _created_at(backup_id: str) -> datetime:
    return datetime.strptime(backup_id, ID_FORMAT).replace(tzinfo=UTC)


def _private_file(path: Path) -> IO[bytes]:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


class Reservation:
    """The right to write one backup into the folder: holds the folder's lock until released."""

    def __init__(self, folder: Folder, lock: IO[str], created_at: datetime, trigger: str) -> None:
        self.folder = folder
        self.created_at = created_at
        self.trigger = trigger
        self.id = created_at.astimezone(UTC).strftime(ID_FORMAT)
        self.partial = folder.path / f"{PREFIX}{self.id}{PARTIAL}"
        self.final = folder.path / f"{PREFIX}{self.id}{COMPLETED}"
        self._lock: IO[str] | None = lock

    def record(self) -> BackupRecord:
        return BackupRecord(
            id=self.id,
            file_name=self.final.name,
            status="running",
            created_at=self.created_at,
            trigger=self.trigger,
        )

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


class Folder:
    def __init__(self, path: Path) -> None:
        self.path = path

    def reserve(self, trigger: str, now: datetime) -> Reservation:
        """Take the folder's lock and name a new backup; BackupBusy while another is written."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = self._open_lock(create=True)
        assert lock is not None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise BackupBusy(
                "A backup is being written right now; wait for it to finish."
            ) from None
        reservation = Reservation(self, lock, now, trigger)
        _private_file(reservation.partial).close()
        return reservation

    def complete(self, reservation: Reservation) -> BackupRecord:
        reservation.partial.replace(reservation.final)
        _sync_folder(self.path)
        return self._completed(reservation.final, reservation.id)

    def fail(self, reservation: Reservation, error: str, now: datetime) -> BackupRecord:
        reservation.partial.unlink(missing_ok=True)
        path = self.path / f"{PREFIX}{reservation.id}{FAILED}"
        details = {
            "id": reservation.id,
            "created_at": reservation.created_at.isoformat(),
            "finished_at": now.isoformat(),
            "trigger": reservation.trigger,
            "error": error,
        }
        with _private_file(path) as handle:
            handle.write(json.dumps(details, indent=2).encode() + b"\n")
        return self._failed(path, reservation.id)

    def writing(self) -> bool:
        """True while some process holds the lock (is writing a backup into the folder)."""
        lock = self._open_lock(create=False)
        if lock is None:
            return False
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
        return False

    def _open_lock(self, *, create: bool) -> IO[str] | None:
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        try:
            return os.fdopen(os.open(self.path / ".lock", flags, 0o600), "r+")
        except FileNotFoundError:
            return None

    def _names(self) -> dict[str, dict[str, Path]]:
        """{id: {suffix: path}} for every backup file in the folder."""
        found: dict[str, dict[str, Path]] = {}
        try:
            entries = list(self.path.iterdir())
        except FileNotFoundError:
            return found
        for path in entries:
            match = _NAME.match(path.name)
            if match:
                found.setdefault(match.group(1), {})[match.group(2)] = path
        return found

    def newest_attempt(self) -> datetime | None:
        """When the newest backup in the folder started, whatever became of it."""
        ids = self._names()
        return _created_at(max(ids)) if ids else None

    def records(self) -> list[BackupRecord]:
        """Every backup in the folder, newest first."""
        return list(self.iter_records())

    def iter_records(self) -> Iterator[BackupRecord]:
        """The backups newest first, each read (its manifest opened) only when reached."""
        writing: bool | None = None
        for backup_id, files in sorted(self._names().items(), reverse=True):
            if COMPLETED in files:
                yield self._completed(files[COMPLETED], backup_id)
            elif FAILED in files:
                yield self._failed(files[FAILED], backup_id)
            elif PARTIAL in files:
                if writing is None:
                    writing = self.writing()
                yield BackupRecord(
                    id=backup_id,
                    file_name=f"{PREFIX}{backup_id}{COMPLETED}",
                    status="running" if writing else "failed",
                    created_at=_created_at(backup_id),
                    error=None if writing else INTERRUPTED,
                )

    def completed_path(self, backup_id: str) -> Path | None:
        path = self.path / f"{PREFIX}{backup_id}{COMPLETED}"
        return path if re.match(ID_PATTERN, backup_id) and path.is_file() else None

    def _completed(self, path: Path, backup_id: str) -> BackupRecord:
        size = path.stat().st_size
        try:
            manifest = archive.read_manifest(path)
        except (archive.BackupFileError, OSError) as exc:
            return BackupRecord(
                id=backup_id,
                file_name=path.name,
                status="failed",
                created_at=_created_at(backup_id),
                size=size,
                error=f"Unreadable: {exc}",
            )
        return BackupRecord(
            id=backup_id,
            file_name=path.name,
            status="completed",
            created_at=manifest.created_at,
            trigger=manifest.trigger,
            size=size,
            manifest=manifest,
        )

    def _failed(self, path: Path, backup_id: str) -> BackupRecord:
        details: dict[str, Any] = {}
        try:
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                details = loaded
        except (OSError, ValueError):
            pass
        return BackupRecord(
            id=backup_id,
            file_name=f"{PREFIX}{backup_id}{COMPLETED}",
            status="failed",
            created_at=_created_at(backup_id),
            trigger=details.get("trigger"),
            error=str(details.get("error") or "The backup failed."),
        )

    def prune(self, keep: int, holding: Reservation) -> list[str]:
        """Keep the newest `keep` finished backups; drop failures older than the newest finished
        one (and all but `keep` of the rest) and partial files left by a crash. Called while
        `holding` the lock, after its backup completed: no other partial file is being
        written."""
        removed = []
        finished = 0
        failed = 0
        newest_finished: str | None = None
        for backup_id, files in sorted(self._names().items(), reverse=True):
            doomed: list[Path] = []
            if PARTIAL in files:
                doomed.append(files[PARTIAL])
            if COMPLETED in files:
                finished += 1
                newest_finished = newest_finished or backup_id
                if finished > keep:
                    doomed.append(files[COMPLETED])
            if FAILED in files:
                failed += 1
                if newest_finished is not None or failed > keep:
                    doomed.append(files[FAILED])
            for path in doomed:
                if backup_id == holding.id:
                    continue  # the one just written, which counts among those kept
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed


def _sync_folder(path: Path) -> None:
    """Make a rename in the folder survive a power cut."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
