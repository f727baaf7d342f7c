"""What goes wrong with a backup or a restore, each with the sentence the user reads."""

from __future__ import annotations

from product_importer.backups.archive import BackupFileError, DamagedBackup, NotABackup

__all__ = [
    "BackupBusy",
    "BackupError",
    "BackupFailed",
    "BackupFileError",
    "DamagedBackup",
    "NotABackup",
    "RestoreCancelled",
    "RestoreFailed",
    "RestoreRefused",
    "ToolMissing",
]


class BackupError(Exception):
    """A backup could not be written; the message says why."""


class BackupBusy(BackupError):
    """Another backup into the same folder is being written."""


class BackupFailed(BackupError):
    pass


class ToolMissing(BackupFailed):
    """pg_dump or pg_restore is not installed where this process runs."""


class RestoreRefused(Exception):
    """The backup does not fit this database (kind, schema, a server running, data in the
    way); nothing was changed."""


class RestoreFailed(Exception):
    """The restore started and failed; the message says what state the database is in."""


class RestoreCancelled(Exception):
    """The user did not confirm replacing the database; nothing was changed."""
