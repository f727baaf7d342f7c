"""HTTP edge of imports: parse, call the service, map domain errors to status codes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse

from product_importer.db import Database
from product_importer.dependencies import AppSettings, AuditLog, DbSession, Editor, Viewer
from product_importer.imports import service
from product_importer.imports.models import TERMINAL_STATUSES, ImportJob
from product_importer.imports.reading import FileFormatError, NotCsvError, check_header
from product_importer.imports.schemas import ImportJobRead, ImportPage
from product_importer.imports.storage import UploadStorage, storage_for
from product_importer.imports.upload import UploadError, discard, receive_upload

router = APIRouter(prefix="/api/imports", tags=["imports"])

SSE_POLL_SECONDS = 0.25
SSE_MAX_SILENCE_SECONDS = 1.0


def _not_found(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


def check_stored_file(storage: UploadStorage, key: str) -> None:
    with storage.open_read(key) as raw:
        check_header(raw)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a CSV file to import",
    responses={
        413: {"description": "The file is over PRODUCT_IMPORTER_MAX_UPLOAD_BYTES"},
        415: {"description": "Not multipart, or the file is not CSV text"},
        422: {"description": "Empty file, no header, missing sku/name, duplicate columns"},
    },
)
async def upload(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    principal: Editor,
    audit: AuditLog,
    dry_run: Annotated[bool, Query(description="Validate and count without writing")] = False,
) -> ImportJobRead:
    """Multipart field `file` (`.csv` or `.csv.gz`). Returns the queued job at once; follow it
    with `GET /api/imports/{id}` or the `/events` stream. With `dry_run=true` the job reports
    what it would create, update, leave unchanged and reject, and writes nothing."""
    storage = storage_for(settings, request.app.state.database)
    try:
        stored = await receive_upload(request, storage, settings.max_upload_bytes)
    except UploadError as exc:
        raise HTTPException(exc.status_code, exc.message) from None
    try:
        await to_thread.run_sync(check_stored_file, storage, stored.key)
    except NotCsvError as exc:
        await to_thread.run_sync(discard, storage, stored)
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    except FileFormatError as exc:
        await to_thread.run_sync(discard, storage, stored)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    database: Database = request.app.state.database

    def record_job() -> ImportJobRead:  # database work, off the event loop
        job = service.start_import(
            session,
            filename=stored.filename,
            storage_key=stored.key,
            total_bytes=stored.size,
            dry_run=dry_run,
            created_by=principal.name,
        )
        audit(
            "import.start",
            f"import:{job.id} {stored.filename}",
            {"bytes": stored.size, "dry_run": dry_run},
        )
        return service.read(session, database, job.id)

    return await to_thread.run_sync(record_job)


@router.get("", summary="Import history, newest first")
def history(
    request: Request,
    session: DbSession,
    _principal: Viewer,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> ImportPage:
    return service.history(session, request.app.state.database, page, page_size)


@router.get("/{job_id}", summary="One import job")
def read(request: Request, session: DbSession, _principal: Viewer, job_id: int) -> ImportJobRead:
    try:
        return service.read(session, request.app.state.database, job_id)
    except service.ImportNotFound as exc:
        raise _not_found(exc) from None


@router.get(
    "/{job_id}/events",
    summary="Server-Sent Events stream of the job until it ends",
    response_class=EventSourceResponse,
)
async def events(
    request: Request, session: DbSession, _principal: Viewer, job_id: int
) -> EventSourceResponse:
    """Each event's `data` is the job JSON, sent on every change and at least once a second;
    the stream ends after the final state. Reconnecting (the browser does so by itself) starts
    again from the current state."""
    database: Database = request.app.state.database
    try:
        service.read(session, database, job_id)
    except service.ImportNotFound as exc:
        raise _not_found(exc) from None
    return EventSourceResponse(
        _job_events(database, job_id),
        ping=15,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _snapshot(database: Database, job_id: int) -> ImportJobRead:
    with database.session() as session:
        return service.read(session, database, job_id)


async def _job_events(database: Database, job_id: int) -> AsyncIterator[dict[str, Any]]:
    last_sent = ""
    last_time = 0.0
    while True:
        job = await to_thread.run_sync(_snapshot, database, job_id)
        body = job.model_dump_json()
        now = time.monotonic()
        if body != last_sent or now - last_time >= SSE_MAX_SILENCE_SECONDS:
            last_sent, last_time = body, now
            yield {"id": str(time.time_ns() // 1_000_000), "data": body, "retry": 2000}
        if job.status in TERMINAL_STATUSES:
            return
        await asyncio.sleep(SSE_POLL_SECONDS)


@router.get("/{job_id}/errors", summary="Rejected rows as CSV: line, reason, original fields")
def rejected_rows(request: Request, _principal: Viewer, job_id: int) -> StreamingResponse:
    try:
        rows = service.rejected_rows_csv(request.app.state.database, job_id)
        first = next(rows)
    except service.ImportNotFound as exc:
        raise _not_found(exc) from None

    def body() -> Any:
        yield first
        yield from rows

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job_id}-rejected.csv"'},
    )


@router.post("/{job_id}/cancel", summary="Cancel a queued or running import")
def cancel(
    request: Request, session: DbSession, _principal: Editor, job_id: int, audit: AuditLog
) -> ImportJobRead:
    """A running import stops at its next check (within about a second) and the catalogue is
    left exactly as it was."""
    try:
        service.cancel(session, job_id)
        audit("import.cancel", f"import:{job_id}")
        return service.read(session, request.app.state.database, job_id)
    except service.ImportNotFound as exc:
        raise _not_found(exc) from None
    except service.ImportStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Run a failed or cancelled import again from its stored file",
)
def retry(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    _principal: Editor,
    job_id: int,
    audit: AuditLog,
) -> ImportJobRead:
    storage = storage_for(settings, request.app.state.database)
    try:
        job = session.get(ImportJob, job_id)
        exists = job is not None and storage.exists(job.storage_key)
        service.retry(session, job_id, exists)
        audit("import.retry", f"import:{job_id}")
        return service.read(session, request.app.state.database, job_id)
    except service.ImportNotFound as exc:
        raise _not_found(exc) from None
    except service.ImportStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
