"""Backups and restores: the flow both database kinds share (each kind's part is in `sqlite`
and `postgres`, behind `snapshots`).

A backup is written under a temporary name and renamed when complete, so no half file ever has
a backup's name. A restore checks everything it can before it changes anything: the file is a
backup, of this kind of database, of a schema this version knows; nothing serves from the
database; the checksum holds; the payload is staged as a database of its own and migrated
forward there. Only then does it take the configured database's place.

Nothing here is a request or a command: routes, the CLI and the scheduler call it, and the
messages of the errors it raises are written for the user.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import BinaryIO

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from product_importer import migrate
from product_importer.backups import archive, inventory, postgres, schedule, sqlite, store
from product_importer.backups.archive import Contents, Manifest
from product_importer.backups.errors import (
    BackupError,
    BackupFailed,
    DamagedBackup,
    RestoreCancelled,
    RestoreFailed,
    RestoreRefused,
)
from product_importer.backups.snapshots import Restore, Snapshot
from product_importer.db import Database, utcnow
from product_importer.settings import Settings

log = logging.getLogger(__name__)

KIND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
# The System page warns when the newest finished backup is older than this.
STALE_AFTER = timedelta(days=2)


def folder(settings: Settings) -> store.Folder:
    return store.Folder(settings.home / "backups")


def describe(contents: Contents) -> str:
    """'1,204 products, 3 change sets, 2 users and 1 webhook endpoint'."""
    parts = [_count(contents.products, "product")]
    for value, noun in (
        (contents.change_sets, "change set"),
        (contents.users, "user"),
        (contents.webhooks, "webhook endpoint"),
    ):
        if value is not None:
            parts.append(_count(value, noun))
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def _count(value: int, noun: str) -> str:
    return f"{value:,} {noun}{'' if value == 1 else 's'}"


def location(database: Database) -> str:
    """Where the database is, for messages (no password)."""
    if database.dialect == "sqlite":
        return str(sqlite.database_path(database))
    return database.engine.url.render_as_string(hide_password=True)


# ------------------------------------------------------------------------------------ backup


def _snapshot(database: Database, workdir: Path) -> AbstractContextManager[Snapshot]:
    if database.dialect == "postgresql":
        return postgres.snapshot(database, workdir)
    return sqlite.snapshot(database, workdir)


def write_backup(
    database: Database, target: BinaryIO, workdir: Path, trigger: str, now: datetime
) -> Manifest:
    """Write a backup of `database` to `target` (a file opened for writing), using `workdir`
    for a temporary copy where the database kind needs one."""
    with _snapshot(database, workdir) as snap:
        if snap.revision is None:
            raise BackupFailed(
                "The database has no schema yet (it was never migrated): nothing to back up."
            )
        draft = Manifest.draft(
            schema_revision=snap.revision,
            database=database.dialect,
            contents=snap.contents,
            created_at=now,
            trigger=trigger,
        )
        manifest = archive.write(target, snap.stream, draft)
    target.flush()
    os.fsync(target.fileno())
    return manifest


def reserve(settings: Settings, trigger: str) -> store.Reservation:
    """Name the next backup in the folder and take the folder's lock (BackupBusy if taken);
    `finish` writes it."""
    settings.ensure_home()
    return folder(settings).reserve(trigger, utcnow())


def finish(
    reservation: store.Reservation, settings: Settings, database: Database
) -> store.BackupRecord:
    """Write a reserved backup, then prune the folder. A failure is recorded in the folder
    (the System page shows it) and answered, never raised: this runs in the background."""
    backups = reservation.folder
    try:
        try:
            with reservation.partial.open("wb") as target:
                manifest = write_backup(
                    database, target, backups.path, reservation.trigger, reservation.created_at
                )
            record = backups.complete(reservation)
        except Exception as exc:
            if not isinstance(exc, (BackupError, OSError)):
                log.exception("backup %s failed", reservation.id)
            reason = str(exc) if isinstance(exc, BackupError) else _unexpected(exc)
            log.warning("backup %s failed: %s", reservation.id, reason)
            return backups.fail(reservation, reason, utcnow())
        removed = backups.prune(settings.backup_keep, reservation)
    finally:
        reservation.release()
    log.info(
        "backup %s written: %s, %d bytes, %d products%s",
        reservation.id,
        record.file_name,
        record.size or 0,
        manifest.contents.products,
        f"; removed {len(removed)} older file(s)" if removed else "",
    )
    return record


def _unexpected(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"Could not write the backup file: {exc.strerror or exc}."
    if isinstance(exc, SQLAlchemyError):
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"The database did not answer: {reason}"
    return f"The backup failed unexpectedly ({type(exc).__name__}); the server log has details."


def back_up(settings: Settings, database: Database, trigger: str) -> store.BackupRecord:
    """Write a backup into the folder now (BackupBusy if one is being written)."""
    return finish(reserve(settings, trigger), settings, database)


def back_up_to(database: Database, out: Path, trigger: str = "cli") -> tuple[Manifest, int]:
    """Write a backup to the file `out` (which must not exist yet): (manifest, size)."""
    if out.exists():
        raise BackupFailed(f"{out} exists already; a backup never overwrites a file.")
    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    handle = os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
    try:
        with handle:
            manifest = write_backup(database, handle, out.parent, trigger, utcnow())
        if out.exists():
            raise BackupFailed(
                f"{out} appeared while the backup was written; it is left as it was."
            )
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return manifest, out.stat().st_size


# ------------------------------------------------------------------------------------ status


@dataclass(frozen=True)
class BackupStatus:
    scheduled: bool
    at: time
    keep: int
    next_at: datetime | None
    last: store.BackupRecord | None
    last_completed: store.BackupRecord | None
    warning: str | None


def status(settings: Settings, now: datetime) -> BackupStatus:
    """What the System page says about backups."""
    scheduled = settings.backup_enabled and not settings.distributed
    # Asked by every open System page every few seconds: read no further than needed.
    records = folder(settings).iter_records()
    last = next(records, None)
    completed = last
    while completed is not None and completed.status != "completed":
        completed = next(records, None)
    warning = None
    if last is not None and last.status == "failed":
        warning = f"The last backup, started {_ago(now, last.created_at)}, failed: {last.error}"
    elif scheduled and completed is not None and now - completed.created_at > STALE_AFTER:
        warning = (
            f"The last backup was made {_ago(now, completed.created_at)}: daily backups have not "
            "run since. Is the server stopped at the backup time?"
        )
    return BackupStatus(
        scheduled=scheduled,
        at=settings.backup_time,
        keep=settings.backup_keep,
        next_at=schedule.next_slot(now.astimezone(), settings.backup_time) if scheduled else None,
        last=last,
        last_completed=completed,
        warning=warning,
    )


def _ago(now: datetime, then: datetime) -> str:
    seconds = (now - then).total_seconds()
    for unit, length in (("day", 86400), ("hour", 3600)):
        if seconds >= 2 * length:
            return f"{int(seconds // length)} {unit}s ago"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'' if minutes == 1 else 's'} ago"


# ----------------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class RestorePlan:
    """What a restore over a database that holds something will replace, for the question."""

    manifest: Manifest
    location: str
    current: Contents


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    replaced: Contents | None
    migrated_to: str
    seconds: float


Confirm = Callable[[RestorePlan], bool]
Progress = Callable[[str], None]


def known_revisions() -> list[str]:
    """Every schema revision this version knows, oldest first."""
    script = ScriptDirectory(str(migrate.MIGRATIONS_DIR))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def check_fits(manifest: Manifest, database: Database) -> None:
    """Refuse a backup of the other kind of database, or of a newer schema."""
    kind = KIND_NAMES.get(manifest.database, manifest.database)
    here = KIND_NAMES[database.dialect]
    if manifest.database != database.dialect:
        wanted = "a PostgreSQL database" if manifest.database == "postgresql" else "a SQLite file"
        raise RestoreRefused(
            f"This is a backup of a {kind} database, and the configured database is {here} "
            f"({location(database)}). A backup restores into the same kind of database: set "
            f"DATABASE_URL to {wanted} to restore it."
        )
    revisions = known_revisions()
    if manifest.schema_revision not in revisions:
        raise RestoreRefused(
            f"This backup's schema (revision {manifest.schema_revision}, made by Product "
            f"Importer {manifest.app_version}) is newer than this version knows (up to "
            f"{revisions[-1]}): restore it with Product Importer {manifest.app_version} or newer."
        )


def restore(
    settings: Settings,
    database: Database,
    path: Path,
    *,
    replace: bool,
    confirm: Confirm,
    progress: Progress = lambda _message: None,
) -> RestoreResult:
    """Restore the backup at `path` into the configured database (see the module docstring)."""
    started = utcnow()
    manifest = archive.read_manifest(path)
    check_fits(manifest, database)
    with database.engine.connect() as connection:
        target = inventory.inspect_target(connection, utcnow())
    where = location(database)
    if target.alive_workers:
        raise RestoreRefused(
            f"A server or worker is using the database at {where} right now "
            f"({', '.join(target.alive_workers[:3])}): stop it first. One that was killed "
            "counts as running until it misses three heartbeats (30 seconds by default)."
        )
    if not target.empty and not replace:
        raise RestoreRefused(
            f"The database at {where} is not empty: it holds {describe(target.contents)}. "
            "Restore with --replace to replace all of it (you are asked to confirm), or point "
            "DATABASE_URL at an empty database."
        )
    restorer: Restore = (
        postgres.PostgresRestore(database, has_tables=bool(target.tables))
        if database.dialect == "postgresql"
        else sqlite.SqliteRestore(database)
    )
    settings.ensure_home()
    with _workdir(settings) as work:
        workdir = Path(work)
        try:
            progress(f"Checking {path.name} ({manifest.payload_bytes:,} bytes)…")
            restorer.verify(path, manifest, workdir)
            plan = RestorePlan(manifest=manifest, location=where, current=target.contents)
            if not target.empty and not confirm(plan):
                raise RestoreCancelled("Nothing was restored; the database is as it was.")
            progress("Restoring…")
            staged = restorer.stage(workdir)
            progress("Migrating to this version's schema…")
            migrated_to = _prepare(staged, manifest, path)
            progress("Putting the restored database in place…")
            restorer.swap_in()
        finally:
            restorer.discard()
    return RestoreResult(
        manifest=manifest,
        replaced=None if target.empty else target.contents,
        migrated_to=migrated_to,
        seconds=(utcnow() - started).total_seconds(),
    )


def _workdir(settings: Settings) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=".restore-", dir=settings.home)


def _prepare(url: str, manifest: Manifest, path: Path) -> str:
    """Migrate the staged database forward and forget the heartbeats of the processes that
    served it when it was backed up; answers the revision it is at."""
    staged = Database(url)
    try:
        with staged.engine.connect() as connection:
            tables = inventory.table_names(connection)
            found = inventory.revision(inventory.scalar_of(connection), tables)
        if found != manifest.schema_revision:
            raise DamagedBackup(
                f"{path} is damaged: its manifest says schema revision "
                f"{manifest.schema_revision}, the database inside is at {found}."
            )
        try:
            migrate.upgrade(staged)
        except Exception as exc:
            raise RestoreFailed(
                f"The restored database could not be migrated from revision {found} to this "
                f"version's schema ({type(exc).__name__}: {exc})."
            ) from exc
        with staged.engine.begin() as connection:
            if "worker_heartbeats" in inventory.table_names(connection):
                connection.execute(text("DELETE FROM worker_heartbeats"))
            now_at = inventory.revision(
                inventory.scalar_of(connection), inventory.table_names(connection)
            )
        return now_at or found
    finally:
        staged.dispose()


def read_backup(path: Path) -> Manifest:
    """The manifest of a backup file given by a user; NotABackup for what is not a file."""
    if path.is_dir():
        raise archive.NotABackup(f"{path} is a folder; name a backup file.")
    if not path.exists():
        raise archive.NotABackup(f"{path} does not exist.")
    return archive.read_manifest(path)


def records(settings: Settings) -> list[store.BackupRecord]:
    return folder(settings).records()


def completed_path(settings: Settings, backup_id: str) -> Path | None:
    return folder(settings).completed_path(backup_id)
