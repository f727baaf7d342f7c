"""`product-importer backup` and `restore`: what they check, ask and print. The commands in
`product_importer.cli` open the database and turn a CommandError into its message and exit code
(2: the arguments or the backup do not fit; 1: the work failed or was cancelled)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click
import typer

from product_importer.backups import service
from product_importer.backups.archive import Manifest
from product_importer.backups.errors import (
    BackupError,
    BackupFileError,
    RestoreCancelled,
    RestoreFailed,
    RestoreRefused,
)
from product_importer.db import Database
from product_importer.settings import Settings


class CommandError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def back_up(settings: Settings, database: Database, out: Path | None) -> str:
    started = time.monotonic()
    if out is None:
        try:
            record = service.back_up(settings, database, "cli")
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        if record.manifest is None:
            raise CommandError(f"The backup failed: {record.error}")
        manifest, size = record.manifest, record.size or 0
        where = service.folder(settings).path / record.file_name
    else:
        _check_out(out)
        try:
            manifest, size = service.back_up_to(database, out)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
        where = out
    return (
        f"Backup written to {where}: {service.describe(manifest.contents)}, schema "
        f"{manifest.schema_revision}, {size / 1_000_000:.1f} MB, in "
        f"{time.monotonic() - started:.1f} s."
    )


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; name a file.", 2)
    if out.exists():
        raise CommandError(f"--out {out} exists already; a backup never overwrites a file.", 2)
    if not out.parent.is_dir():
        raise CommandError(f"--out {out}: the folder {out.parent} does not exist.", 2)


def check_file(file: Path) -> None:
    """Refuse what is not a backup before the database is even opened."""
    try:
        service.read_backup(file)
    except BackupFileError as exc:
        raise CommandError(str(exc), 2) from None
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror or exc}", 2) from None


def restore(
    settings: Settings,
    database: Database,
    file: Path,
    *,
    replace: bool,
    yes: bool,
    ask: Callable[[str], bool] | None = None,
) -> str:
    def confirm(plan: service.RestorePlan) -> bool:
        if yes:
            return True
        typer.echo(
            f"The database at {plan.location} holds {service.describe(plan.current)}.\n"
            f"Restoring replaces ALL of it with the backup of {_when(plan.manifest)} "
            f"({service.describe(plan.manifest.contents)}); what is there now is lost.",
            err=True,
        )
        return (ask or _ask)("Replace the database with the backup?")

    try:
        result = service.restore(
            settings,
            database,
            file,
            replace=replace,
            confirm=confirm,
            progress=lambda message: typer.echo(message, err=True),
        )
    except BackupFileError as exc:
        raise CommandError(f"{exc} The database was not changed.", 2) from None
    except RestoreRefused as exc:
        raise CommandError(f"{exc} The database was not changed.", 2) from None
    except (RestoreCancelled, RestoreFailed, BackupError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror or exc}", 2) from None
    manifest = result.manifest
    migrated = (
        f", migrated from schema {manifest.schema_revision} to {result.migrated_to}"
        if result.migrated_to != manifest.schema_revision
        else ""
    )
    return (
        f"Restored the backup of {_when(manifest)}: {service.describe(manifest.contents)}"
        f"{migrated}, in {result.seconds:.1f} s."
    )


def _ask(question: str) -> bool:
    try:
        return typer.confirm(question, default=False, err=True)
    except click.Abort:  # no answer (end of input, Ctrl-C)
        return False


def _when(manifest: Manifest) -> str:
    return manifest.created_at.astimezone().strftime("%Y-%m-%d %H:%M %Z")
