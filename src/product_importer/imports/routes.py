"""HTTP edge of imports: parse, call the service, map domain errors to status codes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse

from product_importer.auth.dependencies import AppSettings, AuditLog, DbSession, Editor, Viewer
from product_importer.auth.roles import Role, at_least
from product_importer.changes import routes as changes_routes
from product_importer.changes import service as changes_service
from product_importer.changes.schemas import ChangeSetRead, UndoDryRun
from product_importer.db import Database
from product_importer.imports import fields as import_fields
from product_importer.imports import mapping as column_mapping
from product_importer.imports import mirror, preview, saved_mappings, service, workbook
from product_importer.imports.columns import FileFormatError, NotCsvError
from product_importer.imports.models import TERMINAL_STATUSES, ImportJob
from product_importer.imports.schemas import (
    ImportJobRead,
    ImportPage,
    ImportPreview,
    MappingCreate,
    MappingRead,
)
from product_importer.imports.sources import ReadOptions
from product_importer.imports.storage import storage_for
from product_importer.imports.upload import StoredUpload, UploadError, discard, receive_upload

router = APIRouter(prefix="/api/imports", tags=["imports"])
mappings_router = APIRouter(prefix="/api/import-mappings", tags=["imports"])
MAX_ID = 2**63 - 1

SSE_POLL_SECONDS = 0.25
SSE_MAX_SILENCE_SECONDS = 1.0


def _not_found(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The import's id.")]
MAPPING_HELP = (
    'Our field -> the file\'s column, as JSON: {"sku": "Variant SKU", "name": "Title", '
    '"description": "Body (HTML)", "active": "Status", "price": "Variant Price"}; a field is '
    "a built-in one or a custom field's key. sku and name are required. Also accepted as a "
    "multipart form field."
)
ENCODING_HELP = "CSV text encoding (utf-8, cp1252, ...), instead of detecting it"
SHEET_HELP = "Workbook sheet: its name or number from 1 (default: the first)"
NEW_FIELDS_HELP = (
    'Fields to create with the import (admins only), as JSON: [{"column": "Variant Price", '
    '"key": "price", "label": "Price", "type": "decimal"}] (`choices` for a choice field); '
    "each column is mapped to its new field. Also accepted as a multipart form field."
)
DecimalSeparator = Annotated[
    str | None,
    Query(
        description='Decimal separator of custom field numbers: "." (default) or ","',
        max_length=5,
    ),
]
EmptyCells = Annotated[
    str | None,
    Query(
        description="keep (default): an empty cell leaves a custom field as it is; clear: "
        "it unsets the field",
        max_length=10,
    ),
]
GroupBy = Annotated[
    str | None,
    Query(
        description="A column whose rows belong together (Shopify's Handle): a row takes the "
        "mapped cells it leaves empty from its group's first row",
        max_length=255,
    ),
]
VariantNames = Annotated[
    str | None,
    Query(
        description="true: option values (Option1 Value ...) are added to each row's name",
        max_length=10,
    ),
]
Missing = Annotated[
    str | None,
    Query(
        description="Products the file does not list: keep (default), deactivate or delete "
        "(mirror mode: the catalogue follows the file)",
        max_length=20,
    ),
]
MaxMissingPercent = Annotated[
    str | None,
    Query(
        description="With missing: refuse the import (changing nothing) if the file leaves "
        "out more than this percent of the catalogue, 0 to 100 (default 10)",
        max_length=20,
    ),
]
ConfirmMissing = Annotated[
    str | None,
    Query(
        description="true: this import goes through the guard of max_missing_percent", max_length=10
    ),
]


def _merge_option(name: str, query: str | None, form: dict[str, str]) -> str | None:
    if name in form and query is not None and form[name] != query:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{name} is given both as a query parameter and as a form field, differently; "
            "give it once.",
        )
    return form.get(name, query)


def _mismatch(exc: column_mapping.HeaderMismatch, session: Session) -> JSONResponse:
    """422 with what a client needs to retry: the columns found, a mapping to send, the fields
    defined and a new field proposed for each column the mapping leaves out."""
    defined = import_fields.specs(session)
    suggestion = saved_mappings.for_header(session, exc.columns, defined)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={
            "detail": str(exc),
            "columns": [c.strip() for c in exc.columns],
            "suggested_mapping": suggestion.mapping,
            "suggestion_source": suggestion.source,
            "sheets": exc.sheets,
            "fields": import_fields.defined(defined),
            "proposed_fields": import_fields.propose(
                exc.columns, list(suggestion.mapping.values()), defined, exc.samples
            ),
            "group_by_suggestion": import_fields.group_by_suggestion(exc.columns),
        },
    )


NEW_FIELDS_FORBIDDEN = (
    "An admin must create fields: new_fields needs the admin role (your role is {role}). Ask "
    "an admin to create them on the Fields page (or with POST /api/fields), or import without "
    "new_fields. Nothing was imported."
)


def _given_options(stored: StoredUpload, query: dict[str, str | None]) -> dict[str, str | None]:
    return {name: _merge_option(name, value, stored.fields) for name, value in query.items()}


def _sheet_missing(exc: workbook.SheetNotFound) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": str(exc), "sheets": exc.sheets},
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a CSV file or a workbook to import",
    responses={
        413: {"description": "The file is over PRODUCT_IMPORTER_MAX_UPLOAD_BYTES"},
        415: {"description": "Not multipart, or the file is neither CSV text nor a workbook"},
        422: {
            "description": "Empty file, no header, missing sku/name (the answer lists `columns` "
            "and a `suggested_mapping`), a mapping, encoding or sheet that does not fit, a "
            "damaged or password-protected workbook"
        },
    },
)
async def upload(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    principal: Editor,
    audit: AuditLog,
    dry_run: Annotated[bool, Query(description="Validate and count without writing")] = False,
    mapping: Annotated[str | None, Query(description=MAPPING_HELP, max_length=65536)] = None,
    encoding: Annotated[str | None, Query(description=ENCODING_HELP, max_length=40)] = None,
    sheet: Annotated[str | None, Query(description=SHEET_HELP, max_length=255)] = None,
    decimal_separator: DecimalSeparator = None,
    empty_cells: EmptyCells = None,
    group_by: GroupBy = None,
    variant_names: VariantNames = None,
    new_fields: Annotated[str | None, Query(description=NEW_FIELDS_HELP, max_length=16384)] = None,
    missing: Missing = None,
    max_missing_percent: MaxMissingPercent = None,
    confirm_missing: ConfirmMissing = None,
) -> Any:
    """Multipart field `file` (`.csv`, `.csv.gz`, `.xlsx`, `.xlsm`, `.xls`, `.ods`), and the
    optional fields `mapping`, `encoding`, `sheet`, `decimal_separator`, `empty_cells`,
    `group_by`, `variant_names`, `new_fields`, `missing`, `max_missing_percent`,
    `confirm_missing` (each also a query parameter). Returns the queued job at once; follow it
    with `GET /api/imports/{id}` or the `/events` stream. With `dry_run=true` the job reports
    what it would create, update, leave unchanged, reject and (with `missing`) deactivate or
    delete, and writes nothing (new fields are read as if they existed, and not created)."""
    storage = storage_for(settings, request.app.state.database)
    try:
        stored = await receive_upload(request, storage, settings.max_upload_bytes)
    except UploadError as exc:
        raise HTTPException(exc.status_code, exc.message) from None
    try:
        given = _given_options(
            stored,
            {
                "mapping": mapping,
                "encoding": encoding,
                "sheet": sheet,
                "decimal_separator": decimal_separator,
                "empty_cells": empty_cells,
                "group_by": group_by,
                "variant_names": variant_names,
                "new_fields": new_fields,
                "missing": missing,
                "max_missing_percent": max_missing_percent,
                "confirm_missing": confirm_missing,
            },
        )
        mirror_options = mirror.parse_options(
            given["missing"], given["max_missing_percent"], given["confirm_missing"]
        )
        asks_for_fields = (given["new_fields"] or "").strip() not in ("", "[]")
        if asks_for_fields and not at_least(principal.role, Role.admin):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, NEW_FIELDS_FORBIDDEN.format(role=principal.role.value)
            )
        options, new = await to_thread.run_sync(
            service.prepare_import,
            session,
            storage,
            stored.key,
            given,
            settings.max_decompressed_bytes,
        )
    except HTTPException:
        await to_thread.run_sync(discard, storage, stored)
        raise
    except import_fields.NewFieldsInvalid as exc:
        await to_thread.run_sync(discard, storage, stored)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except column_mapping.MappingInvalid as exc:
        await to_thread.run_sync(discard, storage, stored)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except NotCsvError as exc:
        await to_thread.run_sync(discard, storage, stored)
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    except column_mapping.HeaderMismatch as exc:
        await to_thread.run_sync(discard, storage, stored)
        return await to_thread.run_sync(_mismatch, exc, session)
    except workbook.SheetNotFound as exc:
        await to_thread.run_sync(discard, storage, stored)
        return _sheet_missing(exc)
    except FileFormatError as exc:
        await to_thread.run_sync(discard, storage, stored)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    database: Database = request.app.state.database

    def record_job() -> ImportJobRead:  # database work, off the event loop
        # A dry run writes nothing: it reads its new fields as if they existed.
        created = [] if dry_run else import_fields.create_new_fields(session, new)
        for field in created:
            audit(
                "field.create",
                f"field:{field.id} {field.key}",
                {"type": field.type, "import": stored.filename},
            )
        job = service.start_import(
            session,
            filename=stored.filename,
            storage_key=stored.key,
            total_bytes=stored.size,
            dry_run=dry_run,
            created_by=principal.name,
            options=options,
            pending_fields=[field.spec() for field in new] if dry_run else (),
            mirror=mirror_options,
        )
        audit(
            "import.start",
            f"import:{job.id} {stored.filename}",
            {"bytes": stored.size, "dry_run": dry_run, **mirror_options.extra()},
        )
        return service.read(session, database, job.id)

    try:
        return await to_thread.run_sync(record_job)
    except import_fields.NewFieldsInvalid as exc:  # a key taken meanwhile
        await to_thread.run_sync(discard, storage, stored)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.post(
    "/preview",
    summary="The first 20 rows of a file as they would be imported",
    responses={
        413: {"description": "The file is over PRODUCT_IMPORTER_MAX_UPLOAD_BYTES"},
        415: {"description": "Not multipart, or the file is neither CSV text nor a workbook"},
        422: {"description": "The file cannot be read, or an option is unusable"},
    },
)
async def preview_file(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    _principal: Editor,
    mapping: Annotated[str | None, Query(description=MAPPING_HELP, max_length=65536)] = None,
    encoding: Annotated[str | None, Query(description=ENCODING_HELP, max_length=40)] = None,
    sheet: Annotated[str | None, Query(description=SHEET_HELP, max_length=255)] = None,
    partial: Annotated[
        bool, Query(description="The file is only the head of a bigger CSV file")
    ] = False,
    decimal_separator: DecimalSeparator = None,
    empty_cells: EmptyCells = None,
    group_by: GroupBy = None,
    variant_names: VariantNames = None,
) -> Any:
    """Same multipart fields as `POST /api/imports` (but `new_fields`); nothing is imported or
    kept. The answer has the columns, sheets, encoding, the mapping used (given, the header
    itself, saved for this header set, or suggested), the rows, each with its custom field
    values or the reason it would be rejected, the fields defined, a new field proposed for
    each column the mapping leaves out, and the group column suggested for a Shopify export.
    For a big CSV file send its first few hundred kilobytes with `partial=true`."""
    storage = storage_for(settings, request.app.state.database)
    try:
        stored = await receive_upload(request, storage, settings.max_upload_bytes)
    except UploadError as exc:
        raise HTTPException(exc.status_code, exc.message) from None

    def run() -> ImportPreview:
        defined = import_fields.specs(session)
        options = service.read_options(given, [spec.key for spec in defined], check_mapping=False)
        with storage.open_read(stored.key) as raw:
            return preview.preview(
                raw,
                options,
                lambda header: saved_mappings.for_header(session, header, defined),
                partial=partial,
                max_decompressed_bytes=settings.max_decompressed_bytes,
                fields=defined,
            )

    try:
        given = _given_options(
            stored,
            {
                "mapping": mapping,
                "encoding": encoding,
                "sheet": sheet,
                "decimal_separator": decimal_separator,
                "empty_cells": empty_cells,
                "group_by": group_by,
                "variant_names": variant_names,
            },
        )
        return await to_thread.run_sync(run)
    except column_mapping.MappingInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except NotCsvError as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    except workbook.SheetNotFound as exc:
        return _sheet_missing(exc)
    except FileFormatError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    finally:
        await to_thread.run_sync(discard, storage, stored)


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
def read(request: Request, session: DbSession, _principal: Viewer, job_id: JobId) -> ImportJobRead:
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
    request: Request, session: DbSession, _principal: Viewer, job_id: JobId
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
def rejected_rows(request: Request, _principal: Viewer, job_id: JobId) -> StreamingResponse:
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
    request: Request, session: DbSession, _principal: Editor, job_id: JobId, audit: AuditLog
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
    job_id: JobId,
    audit: AuditLog,
    confirm_missing: Annotated[
        bool, Query(description="Go through the mirror guard this time (a refused import)")
    ] = False,
) -> ImportJobRead:
    storage = storage_for(settings, request.app.state.database)
    try:
        job = session.get(ImportJob, job_id)
        exists = job is not None and storage.exists(job.storage_key)
        service.retry(session, job_id, exists, confirm_missing)
        audit(
            "import.retry",
            f"import:{job_id}",
            {"confirm_missing": True} if confirm_missing else None,
        )
        return service.read(session, request.app.state.database, job_id)
    except service.ImportNotFound as exc:
        raise _not_found(exc) from None
    except service.ImportStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.post(
    "/{import_id}/undo",
    summary="Undo an import (its change set)",
    description="The same as `POST /api/changes/{change_id}/undo` for the import's change.",
    responses=changes_routes.UNDO_RESPONSES,
)
def undo_import(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    principal: Editor,
    audit: AuditLog,
    response: Response,
    import_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    dry_run: Annotated[bool, Query(description="Only count what the undo would do.")] = False,
) -> ChangeSetRead | UndoDryRun:
    def find() -> Any:
        try:
            return service.change_of_import(session, import_id)
        except changes_service.ChangeNotFound:
            raise changes_service.ChangeNotFound(import_id) from None

    try:
        result = changes_routes.undo_response(
            request, session, settings, principal, response, find, dry_run
        )
    except HTTPException as exc:
        if exc.status_code == status.HTTP_404_NOT_FOUND:
            exc.detail = f"No import with id {import_id}."
        raise
    if isinstance(result, ChangeSetRead):
        audit("import.undo", f"import:{import_id}", {"undo_change_id": result.id})
    return result


@mappings_router.get("", summary="Saved column mappings, by name")
def list_mappings(session: DbSession, _principal: Viewer) -> list[MappingRead]:
    return [MappingRead.from_saved(m) for m in saved_mappings.list_all(session)]


@mappings_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Save a column mapping under a name (replacing one of the same name)",
)
def create_mapping(
    session: DbSession, principal: Editor, audit: AuditLog, body: MappingCreate
) -> MappingRead:
    """With `header` (the file's columns), the mapping is offered first for files with the same
    header set, and every mapped column must be in it."""
    mapping = {field: column for field, column in body.mapping.items() if column is not None}
    options = ReadOptions(
        decimal_separator=body.decimal_separator,
        empty_cells=body.empty_cells,
        group_by=(body.group_by or "").strip() or None,
        variant_names=body.variant_names,
    )
    try:
        saved = saved_mappings.create(
            session, body.name, body.header, mapping, principal.name, options
        )
    except column_mapping.MappingInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except FileFormatError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    audit("import_mapping.save", f"mapping:{saved.id} {saved.name}", {"mapping": mapping})
    return MappingRead.from_saved(saved)


@mappings_router.delete(
    "/{mapping_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a saved mapping"
)
def delete_mapping(
    session: DbSession,
    _principal: Editor,
    audit: AuditLog,
    mapping_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> None:
    try:
        saved_mappings.delete(session, mapping_id)
    except saved_mappings.MappingNotFound as exc:
        raise _not_found(exc) from None
    audit("import_mapping.delete", f"mapping:{mapping_id}", {})
