"""Import jobs: creating them from stored uploads, reading, cancelling, retrying, recovering."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import replace

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from product_importer.catalog.export import neutralise_cell
from product_importer.changes import service as changes_service
from product_importer.db import Database
from product_importer.history.models import ChangeSet
from product_importer.imports import fields as import_fields
from product_importer.imports import mapping as column_mapping
from product_importer.imports import sources
from product_importer.imports.columns import FieldSpec
from product_importer.imports.mirror import FEED_ID, MirrorOptions
from product_importer.imports.models import TERMINAL_STATUSES, ImportJob, ImportReject
from product_importer.imports.progress import BOARD, board_key
from product_importer.imports.schemas import ImportJobRead, ImportPage
from product_importer.imports.sources import READ_OPTION_NAMES, ReadOptions
from product_importer.imports.storage import UploadStorage
from product_importer.tasks.dispatch import enqueue

RUN_TASK = "imports.run"
# In a dry run's options: the new fields it reads as if they existed (none are created).
PENDING_FIELDS = "pending_fields"


class ImportNotFound(Exception):
    pass


class ImportStateError(Exception):
    """The job is in a state that does not allow the action; the message says which."""


def start_import(
    session: Session,
    *,
    filename: str,
    storage_key: str,
    total_bytes: int,
    dry_run: bool,
    created_by: str,
    options: ReadOptions | None = None,
    pending_fields: Sequence[FieldSpec] = (),
    mirror: MirrorOptions | None = None,
    feed_id: int | None = None,
) -> ImportJob:
    """Queue an import. `pending_fields` are new fields a dry run reads as if they existed
    (a real import creates them first, in the same transaction). `mirror` says what becomes of
    the products the file does not list (see imports/mirror.py); `feed_id`, the feed that
    started it, is given back in its webhook events."""
    options = options or ReadOptions()
    extra = options.extra()
    if mirror is not None:
        extra.update(mirror.extra())
    if feed_id is not None:
        extra[FEED_ID] = feed_id
    if pending_fields:
        extra[PENDING_FIELDS] = [spec.shown() for spec in pending_fields]
    job = ImportJob(
        filename=filename[:255],
        storage_key=storage_key,
        total_bytes=total_bytes,
        dry_run=dry_run,
        created_by=created_by,
        status="queued",
        phase="Queued",
        warnings=[],
        header=[],
        mapping=options.mapping,
        encoding=options.encoding,
        sheet=options.sheet,
        options=extra or None,
    )
    session.add(job)
    session.flush()
    enqueue(session, RUN_TASK, job_id=job.id)
    return job


def read_options(
    given: dict[str, str | None], keys: list[str], check_mapping: bool = True
) -> ReadOptions:
    """Reading options as a request gives them (query parameters or form fields)."""
    return sources.parse_options(
        given["mapping"],
        given["encoding"],
        given["sheet"],
        check_mapping,
        keys,
        decimal_separator=given["decimal_separator"],
        empty_cells=given["empty_cells"],
        group_by=given["group_by"],
        variant_names=given["variant_names"],
    )


def prepare_import(
    session: Session,
    storage: UploadStorage,
    key: str,
    given: dict[str, str | None],
    max_decompressed_bytes: int,
) -> tuple[ReadOptions, list[import_fields.NewField]]:
    """The options checked against the file (and the new fields, against the fields defined
    and the file's columns), before anything is written."""
    defined = import_fields.specs(session)
    new = import_fields.parse_new_fields(given["new_fields"] or "")
    if new:
        import_fields.check_new_fields(session, new)
    keys = [spec.key for spec in defined] + [field.key for field in new]
    options = read_options(given, keys)
    if new:
        mapping = options.mapping
        if mapping is None:  # the header names our fields: the new ones join what it maps
            with storage.open_read(key) as raw:
                header = sources.inspect(raw, options, max_decompressed_bytes, defined).header
            mapping = column_mapping.auto_mapping(header, defined)
        mapping = import_fields.with_new_fields(mapping, new)
        options = replace(options, mapping=column_mapping.check_mapping(mapping, keys))
    with storage.open_read(key) as raw:
        sources.inspect(raw, options, max_decompressed_bytes, [*defined, *(f.spec() for f in new)])
    return options, new


def options_of(job: ImportJob) -> ReadOptions:
    extra = {k: v for k, v in (job.options or {}).items() if k in READ_OPTION_NAMES}
    return ReadOptions(mapping=job.mapping, encoding=job.encoding, sheet=job.sheet, **extra)


def pending_fields_of(job: ImportJob) -> tuple[FieldSpec, ...]:
    """The new fields a dry run was asked to read as if they existed."""
    return tuple(
        FieldSpec(
            key=item["key"],
            label=item["label"],
            type=item["type"],
            choices=tuple(item["choices"]) if item.get("choices") else None,
        )
        for item in (job.options or {}).get(PENDING_FIELDS, [])
    )


def _get(session: Session, job_id: int) -> ImportJob:
    job = session.get(ImportJob, job_id)
    if job is None:
        raise ImportNotFound(f"No import with id {job_id}.")
    return job


def _undone_by(session: Session, jobs: list[ImportJob]) -> dict[int, int]:
    """The undo of each job's change set, by change set id, for those that were undone."""
    ids = [job.change_id for job in jobs if job.change_id is not None]
    if not ids:
        return {}
    rows = session.execute(
        select(ChangeSet.id, ChangeSet.undone_by_id).where(
            ChangeSet.id.in_(ids), ChangeSet.undone_by_id.is_not(None)
        )
    )
    return {change_id: undo_id for change_id, undo_id in rows if undo_id is not None}


def read(session: Session, database: Database, job_id: int) -> ImportJobRead:
    job = _get(session, job_id)
    undone = _undone_by(session, [job]).get(job.change_id or 0)
    return ImportJobRead.from_job(job, BOARD.get(board_key(database, job_id)), undone)


def history(session: Session, database: Database, page: int, page_size: int) -> ImportPage:
    total = session.scalar(select(func.count()).select_from(ImportJob)) or 0
    jobs = session.scalars(
        select(ImportJob)
        .order_by(ImportJob.created_at.desc(), ImportJob.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    listed = list(jobs)
    undone = _undone_by(session, listed)
    items = [
        ImportJobRead.from_job(
            j, BOARD.get(board_key(database, j.id)), undone.get(j.change_id or 0)
        )
        for j in listed
    ]
    return ImportPage(items=items, total=total, page=page, page_size=page_size)


def cancel(session: Session, job_id: int) -> ImportJob:
    job = _get(session, job_id)
    if job.status in TERMINAL_STATUSES:
        raise ImportStateError(f"Import {job_id} has already ended ({job.status}).")
    if job.status == "queued":
        # Nobody has it yet; the atomic claim in the worker will now find nothing to run.
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.status == "queued")
            .values(status="cancelled", phase="Cancelled", cancel_requested=True)
        )
    else:
        job.cancel_requested = True
        job.phase = "Cancelling"
    session.flush()
    session.refresh(job)
    return job


def retry(
    session: Session, job_id: int, storage_exists: bool, confirm_missing: bool = False
) -> ImportJob:
    """Queue a failed or cancelled import again; `confirm_missing` pushes a job the mirror
    guard refused through it this time."""
    job = _get(session, job_id)
    if job.status not in ("failed", "cancelled"):
        raise ImportStateError(
            f"Only failed or cancelled imports can be retried; import {job_id} is {job.status}."
        )
    if not storage_exists:
        raise ImportStateError(f"The file of import {job_id} is no longer stored; upload it again.")
    job.status, job.phase, job.percent, job.error = "queued", "Queued", 0.0, None
    job.cancel_requested = False
    job.attempts = 0
    job.rows_processed = job.rows_created = job.rows_updated = 0
    job.rows_unchanged = job.rows_rejected = job.bytes_read = job.rows_missing = 0
    job.refused = False
    if confirm_missing:
        job.options = {**(job.options or {}), "confirm_missing": True}
    job.warnings = []
    job.started_at = job.finished_at = None
    session.flush()
    enqueue(session, RUN_TASK, job_id=job.id)
    return job


def import_ready_to_start(session: Session) -> bool:
    """An import waits in the queue while none runs: only a free worker thread stands in its way."""
    statuses = set(
        session.scalars(
            select(ImportJob.status).where(ImportJob.status.in_(("queued", "running"))).distinct()
        )
    )
    return statuses == {"queued"}


def rejected_rows_csv(database: Database, job_id: int) -> Iterator[str]:
    """The rejected rows as CSV text: line, reason, then the fields as read.

    A streamed response outlives the request's session, so each batch has its own."""
    with database.session() as session:
        header = _get(session, job_id).header
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "reason", *[neutralise_cell(h) for h in header]])
    last_id = 0
    while True:
        with database.session() as session:
            batch = session.execute(
                select(ImportReject.id, ImportReject.line, ImportReject.reason, ImportReject.fields)
                .where(ImportReject.job_id == job_id, ImportReject.id > last_id)
                .order_by(ImportReject.id)
                .limit(2000)
            ).all()
        if not batch:
            break
        for reject_id, line, reason, fields in batch:
            writer.writerow([line, reason, *[neutralise_cell(str(f)) for f in fields]])
            last_id = reject_id
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def change_of_import(session: Session, import_id: int) -> ChangeSet:
    """The change set an import recorded; NotUndoable says why there is none."""
    job = session.get(ImportJob, import_id)
    if job is None:
        raise changes_service.ChangeNotFound(import_id)
    if job.dry_run:
        raise changes_service.NotUndoable(f"Import {import_id} was a dry run; it changed nothing.")
    if job.change_id is None:
        if job.status == "completed":
            raise changes_service.NotUndoable(
                f"Import {import_id} changed no product; there is nothing to undo."
            )
        raise changes_service.NotUndoable(
            f"Import {import_id} is {job.status}; it changed nothing to undo."
        )
    return changes_service.get(session, job.change_id)
