"""The backup file: a zip holding the database and, after it, `manifest.json` describing it.

    database.sqlite   SQLite: the database file itself, deflated
    database.pgdump   PostgreSQL: `pg_dump --format=custom` output (compressed already, stored)
    manifest.json     app version, schema revision, database kind, counts, SHA-256 of the payload

Any zip tool opens it (`unzip -p backup.zip manifest.json`). The manifest comes last so the payload
can be streamed in (pg_dump's output goes straight into the zip) and hashed on the way; a reader
finds it through the zip's directory at the end of the file without reading the payload.

Two checks guard a restore: zip's CRC-32 of each member and the manifest's SHA-256 of the payload,
both while the payload is copied out, before anything touches the database. A truncated file has
no directory at its end and is refused before that.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from product_importer import __version__

FORMAT = "product-importer-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PAYLOADS = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
CHUNK_BYTES = 1 << 20
# Level 1 deflates a SQLite file to about a third at several times the speed of level 6, which
# would gain a few percent more (docs/decisions.md, "Backups").
SQLITE_COMPRESSLEVEL = 1


class BackupFileError(Exception):
    """The file cannot be restored; the message says why, in words for the user."""


class NotABackup(BackupFileError):
    pass


class DamagedBackup(BackupFileError):
    pass


@dataclass(frozen=True)
class Contents:
    """What a database holds, as counted in the snapshot a backup is made from. Counts of
    tables an old schema does not have yet are None."""

    products: int
    change_sets: int | None = None
    users: int | None = None
    webhooks: int | None = None


@dataclass(frozen=True)
class Manifest:
    app_version: str
    schema_revision: str
    database: str
    contents: Contents
    created_at: datetime
    trigger: str
    payload: str
    payload_bytes: int
    payload_sha256: str

    @classmethod
    def draft(
        cls,
        *,
        schema_revision: str,
        database: str,
        contents: Contents,
        created_at: datetime,
        trigger: str,
    ) -> Manifest:
        """The manifest of a backup being written; `write` fills in the payload's checksum."""
        return cls(
            app_version=__version__,
            schema_revision=schema_revision,
            database=database,
            contents=contents,
            created_at=created_at,
            trigger=trigger,
            payload=PAYLOADS[database],
            payload_bytes=0,
            payload_sha256="",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "app_version": self.app_version,
            "schema_revision": self.schema_revision,
            "database": self.database,
            "product_count": self.contents.products,
            "change_set_count": self.contents.change_sets,
            "user_count": self.contents.users,
            "webhook_count": self.contents.webhooks,
            "created_at": self.created_at.isoformat(),
            "trigger": self.trigger,
            "payload": self.payload,
            "payload_bytes": self.payload_bytes,
            "payload_sha256": self.payload_sha256,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> Manifest:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NotABackup(f"{where} is a zip file but not a Product Importer backup.")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise NotABackup(
                f"{where} was written in backup format {version!r}, newer than this version of "
                f"Product Importer reads ({FORMAT_VERSION}): restore it with the version that "
                f"made it ({data.get('app_version')}) or a newer one."
            )
        try:
            database = str(data["database"])
            manifest = cls(
                app_version=str(data["app_version"]),
                schema_revision=str(data["schema_revision"]),
                database=database,
                contents=Contents(
                    products=int(data["product_count"]),
                    change_sets=_optional_int(data.get("change_set_count")),
                    users=_optional_int(data.get("user_count")),
                    webhooks=_optional_int(data.get("webhook_count")),
                ),
                created_at=datetime.fromisoformat(str(data["created_at"])),
                trigger=str(data.get("trigger", "")),
                payload=str(data["payload"]),
                payload_bytes=int(data["payload_bytes"]),
                payload_sha256=str(data["payload_sha256"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DamagedBackup(f"{where}: its manifest.json is incomplete ({exc}).") from None
        if PAYLOADS.get(database) != manifest.payload:
            raise DamagedBackup(f"{where}: its manifest.json names an unknown database kind.")
        return manifest


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def write(target: BinaryIO, source: BinaryIO, draft: Manifest) -> Manifest:
    """Write the archive to `target`: the payload read from `source` to its end, then `draft`
    as its manifest with the payload's size and SHA-256 filled in."""
    compressed = draft.database == "sqlite"
    digest = hashlib.sha256()
    size = 0
    with zipfile.ZipFile(
        target,
        "w",
        compression=zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED,
        compresslevel=SQLITE_COMPRESSLEVEL if compressed else None,
        allowZip64=True,
    ) as archive:
        with archive.open(draft.payload, "w", force_zip64=True) as member:
            while chunk := source.read(CHUNK_BYTES):
                digest.update(chunk)
                member.write(chunk)
                size += len(chunk)
        manifest = replace(draft, payload_bytes=size, payload_sha256=digest.hexdigest())
        archive.writestr(MANIFEST, json.dumps(manifest.to_json(), indent=2) + "\n")
    return manifest


def read_manifest(path: Path) -> Manifest:
    """The manifest of the backup at `path`, read without reading the payload. Raises
    NotABackup or DamagedBackup with the reason; OSError when the file cannot be read."""
    where = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if MANIFEST not in names:
                if names & set(PAYLOADS.values()):
                    raise DamagedBackup(f"{where} has lost its manifest.json: it is damaged.")
                raise NotABackup(f"{where} is a zip file but not a Product Importer backup.")
            try:
                raw = archive.read(MANIFEST)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise DamagedBackup(f"{where}: its manifest.json is damaged ({exc}).") from None
            try:
                data = json.loads(raw)
            except ValueError:
                raise DamagedBackup(f"{where}: its manifest.json is not valid JSON.") from None
            manifest = Manifest.from_json(data, where)
            try:
                stored = archive.getinfo(manifest.payload)
            except KeyError:
                raise DamagedBackup(f"{where} has no {manifest.payload}: it is damaged.") from None
            if stored.file_size != manifest.payload_bytes:
                raise DamagedBackup(
                    f"{where}: {manifest.payload} holds {stored.file_size:,} bytes where its "
                    f"manifest says {manifest.payload_bytes:,}: it is damaged."
                )
            return manifest
    except zipfile.BadZipFile:
        raise _unreadable(path) from None


def _unreadable(path: Path) -> BackupFileError:
    """Tell a backup cut short (it starts like one) from a file that never was one."""
    with path.open("rb") as handle:
        head = handle.read(64)
    size = path.stat().st_size
    if head.startswith(b"PK\x03\x04") and any(name.encode() in head for name in PAYLOADS.values()):
        return DamagedBackup(
            f"{path} is cut short or damaged: the end of a backup file, which lists what it "
            f"holds, is missing ({size:,} bytes on disk). Use another copy of the backup."
        )
    if not size:
        return NotABackup(f"{path} is empty: it is not a Product Importer backup.")
    return NotABackup(f"{path} is not a Product Importer backup (not a zip file).")


def extract_payload(path: Path, manifest: Manifest, target: BinaryIO) -> None:
    """Copy the payload into `target`, checking zip's CRC-32 and the manifest's SHA-256 and
    size on the way. Raises DamagedBackup when any of them differs."""
    digest = hashlib.sha256()
    size = 0
    try:
        with zipfile.ZipFile(path) as archive, archive.open(manifest.payload) as member:
            while chunk := member.read(CHUNK_BYTES):
                digest.update(chunk)
                target.write(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DamagedBackup(
            f"{path} is damaged: the database inside fails its check ({exc})."
        ) from None
    if size != manifest.payload_bytes or digest.hexdigest() != manifest.payload_sha256:
        raise DamagedBackup(
            f"{path} is damaged: the checksum of the database inside does not match its "
            f"manifest (SHA-256 {digest.hexdigest()[:12]}…, expected "
            f"{manifest.payload_sha256[:12]}…)."
        )
