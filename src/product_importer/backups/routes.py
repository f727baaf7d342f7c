"""The backups API, for admins: start one, list them, download one. Starting and downloading
are audited: a backup holds every password hash and webhook secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, status
from fastapi.responses import FileResponse

from product_importer.auth.dependencies import (
    Admin,
    AppSettings,
    AuditLog,
    get_database,
)
from product_importer.backups import service, store
from product_importer.backups.errors import BackupBusy
from product_importer.backups.schemas import BackupRead
from product_importer.db import Database

router = APIRouter(prefix="/api/backups", tags=["backups"])

BackupId = Annotated[
    str, Path(pattern=store.ID_PATTERN, max_length=22, description="The backup's id.")
]
AppDatabase = Annotated[Database, Depends(get_database)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such finished backup."}}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a backup",
    responses={409: {"description": "A backup is being written already."}},
)
def start_backup(
    settings: AppSettings,
    database: AppDatabase,
    _principal: Admin,
    audit: AuditLog,
    background: BackgroundTasks,
) -> BackupRead:
    """Writes a backup into `PRODUCT_IMPORTER_HOME/backups` in the background (the server keeps
    serving); follow it in `GET /api/backups`. Older backups beyond
    `PRODUCT_IMPORTER_BACKUP_KEEP` are removed once it completes."""
    try:
        reservation = service.reserve(settings, "manual")
    except BackupBusy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    audit("backup.create", f"backup:{reservation.id}")
    background.add_task(service.finish, reservation, settings, database)
    return BackupRead.of(reservation.record())


@router.get("", summary="List backups, newest first")
def list_backups(settings: AppSettings, _principal: Admin) -> list[BackupRead]:
    return [BackupRead.of(record) for record in service.records(settings)]


@router.get(
    "/{backup_id}/download",
    summary="Download a backup file",
    response_class=FileResponse,
    responses={**NOT_FOUND, 200: {"content": {"application/zip": {}}}},
)
def download_backup(
    backup_id: BackupId, settings: AppSettings, _principal: Admin, audit: AuditLog
) -> FileResponse:
    path = service.completed_path(settings, backup_id)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Backup not found (or not finished).")
    audit("backup.download", f"backup:{backup_id}")
    # Like every answer that carries secrets: no cache on the way keeps a copy.
    return FileResponse(
        path,
        media_type="application/zip",
        filename=path.name,
        headers={"Cache-Control": "no-store"},
    )
