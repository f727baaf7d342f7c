"""Running one import job: read → validate → stage → merge → record the outcome.

This is the task body, the same whether a worker thread of the server, a Celery worker or the
CLI runs it. The job row is the durable record: a job is claimed atomically, its progress and
heartbeat are written as it goes, and it ends `completed`, `failed` or `cancelled`. A job cut
short by a shutdown goes back to `queued` and is resumed; nothing is merged until the end, so
the catalogue gets the whole import or none of it.
"""

from __future__ import annotations

import csv
import ctypes
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from product_importer.catalog.locking import CatalogueLock
from product_importer.db import Database, utcnow
from product_importer.history.recording import ChangeRequest
from product_importer.imports import fields as import_fields
from product_importer.imports import grouping, mirror, service, workbook
from product_importer.imports.columns import FileFormatError
from product_importer.imports.merge import MergeCounts, Merger, merger_for
from product_importer.imports.models import ImportJob, ImportReject
from product_importer.imports.progress import ImportCancelled, ProgressReporter
from product_importer.imports.reading import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    CsvSource,
    detect_format,
)
from product_importer.imports.sources import ReadOptions, RowSource, open_source
from product_importer.imports.storage import UploadStorage
from product_importer.imports.validation import normalise
from product_importer.observability import metrics
from product_importer.webhooks import events

log = logging.getLogger(__name__)

PROGRESS_EVERY_ROWS = 2048
REJECT_FLUSH_ROWS = 2000
MAX_STORED_REJECTS = 100_000
# A rejected row keeps its fields for the download, each cut to this many characters (a 2 MB
# description is not worth keeping 100,000 times).
MAX_STORED_FIELD = 10_000
# ... and at most this many fields (a row of a million tiny fields is a few MB of file but
# ~60 bytes a field in memory).
MAX_STORED_FIELDS = 1_000
# Rejected rows waiting to be written are written once they hold this many characters, so a
# run of huge rejected rows never piles up in memory.
REJECT_FLUSH_CHARS = 4 * 1024 * 1024
MAX_ATTEMPTS = 3
# Phases of a job that is reading its file. A worker that stops uncleanly here may have been
# killed by the file itself (out of memory), and would be again: recovery resumes such a job
# once, leaving this note in its warnings, and fails it the second time (see tasks.recover).
READING_PHASES = ("Reading and validating", "Opening the workbook")
STOPPED_WHILE_READING = "The worker stopped while reading this file"
FALLBACK_ENCODING = "cp1252"
ANALYZE_AFTER_ROWS = 50_000


class ImportInterrupted(Exception):
    """The process is shutting down; the job goes back to the queue to be resumed."""


def _shortened(value: str) -> str:
    if len(value) <= MAX_STORED_FIELD:
        return value
    return value[:MAX_STORED_FIELD] + f" [... cut: {len(value):,} characters in the file]"


class _Rejects:
    """Collects rejected rows and writes them in batches, up to a cap."""

    def __init__(self, database: Database, job_id: int) -> None:
        self._database = database
        self._job_id = job_id
        self._pending: list[dict[str, Any]] = []
        self._pending_chars = 0
        self.count = 0

    def __call__(self, line: int, reason: str, fields: list[str]) -> None:
        self.count += 1
        if self.count <= MAX_STORED_REJECTS:
            if len(fields) > MAX_STORED_FIELDS:
                cut = f"[... cut: {len(fields):,} fields in the row]"
                fields = [*fields[:MAX_STORED_FIELDS], cut]
            size = sum(map(len, fields))
            if size > MAX_STORED_FIELD and any(len(value) > MAX_STORED_FIELD for value in fields):
                fields = [_shortened(value) for value in fields]
                size = sum(map(len, fields))
            self._pending.append(
                {"job_id": self._job_id, "line": line, "reason": reason, "fields": fields}
            )
            self._pending_chars += size
            if len(self._pending) >= REJECT_FLUSH_ROWS or self._pending_chars >= REJECT_FLUSH_CHARS:
                self.flush()

    def flush(self) -> None:
        if self._pending:
            with self._database.session() as session:
                session.execute(insert(ImportReject), self._pending)
            self._pending = []
            self._pending_chars = 0

    def clear(self) -> None:
        self._pending = []
        self._pending_chars = 0
        self.count = 0
        with self._database.session() as session:
            session.execute(delete(ImportReject).where(ImportReject.job_id == self._job_id))


def _claim(database: Database, job_id: int) -> ImportJob | None:
    """Move a queued job to running; None if it was cancelled or has already run."""
    now = utcnow()
    with database.session() as session:
        result = session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.status == "queued")
            .values(
                status="running",
                phase="Reading and validating",
                started_at=now,
                heartbeat_at=now,
                attempts=ImportJob.attempts + 1,
                error=None,
            )
        )
        if not getattr(result, "rowcount", 0):
            return None
        return session.get(ImportJob, job_id)


def _wait_for_lock(
    database: Database, lock: CatalogueLock, job_id: int, stopping: threading.Event | None
) -> bool:
    """Take the catalogue lock before claiming the job, so that a `running` job always has a
    live holder of the lock. False if the job was cancelled (or the process is stopping)."""
    while not lock.try_acquire():
        if stopping is not None and stopping.is_set():
            return False
        with database.session() as session:
            if session.scalar(select(ImportJob.status).where(ImportJob.id == job_id)) != "queued":
                return False
        time.sleep(0.25)
    return True


def _ticking(
    source: RowSource,
    reporter: ProgressReporter,
    rejects: _Rejects,
    stopping: threading.Event | None,
    counter: list[int],
) -> Iterator[tuple[int, list[str]]]:
    """Pass rows through, reporting progress and checking for cancel/shutdown every few rows,
    and between slices of a CSV file's text: a file of blank lines has no rows to count."""
    count = 0
    next_report = PROGRESS_EVERY_ROWS

    def between_slices() -> None:
        reporter.reading(source.bytes_read, counter[0], rejects.count, source.fraction_read)
        if stopping is not None and stopping.is_set():
            raise ImportInterrupted

    if isinstance(source, CsvSource):
        source.on_read = between_slices
    for item in source.rows():
        count += 1
        if count >= next_report:
            next_report += PROGRESS_EVERY_ROWS
            counter[0] = count
            reporter.reading(source.bytes_read, count, rejects.count, source.fraction_read)
            if stopping is not None and stopping.is_set():
                raise ImportInterrupted
        yield item
    counter[0] = count


def _open_ticking(
    raw: BinaryIO,
    options: ReadOptions,
    encoding: str | None,
    reporter: ProgressReporter,
    stopping: threading.Event | None,
    max_decompressed_bytes: int,
) -> RowSource:
    """Open the file. A workbook's sheet is read (by calamine, which lets go of the GIL) before
    its first row, for seconds on a big one: meanwhile progress stays alive and a cancel or a
    shutdown is noticed."""
    if not workbook.is_workbook(raw):
        return open_source(raw, options, encoding, max_decompressed_bytes)
    reporter.phase("Opening the workbook")
    box: dict[str, Any] = {}

    def load() -> None:
        try:
            box["source"] = open_source(raw, options, encoding)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=load, name="pi-open-workbook", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.25)
        reporter.tick()
        if stopping is not None and stopping.is_set():
            raise ImportInterrupted
    if "error" in box:
        raise box["error"]
    reporter.phase("Reading and validating")
    source: RowSource = box["source"]
    return source


def _stage_file(
    database: Database,
    merger: Merger,
    storage: UploadStorage,
    job: ImportJob,
    encoding: str | None,
    reporter: ProgressReporter,
    rejects: _Rejects,
    stopping: threading.Event | None,
    max_decompressed_bytes: int,
    seen: mirror.SeenKeys | None = None,
) -> tuple[int, bool, list[str], list[str]]:
    """Read, validate and stage every row: (rows read, has active column, warnings, header).
    With `seen` (mirror mode), the SKUs of rejected rows are kept there too."""
    options = service.options_of(job)
    with database.session() as session:
        defined = import_fields.specs(session)
    known = {spec.key for spec in defined}
    defined += tuple(s for s in service.pending_fields_of(job) if s.key not in known)
    with storage.open_read(job.storage_key) as raw:
        source = _open_ticking(raw, options, encoding, reporter, stopping, max_decompressed_bytes)
        try:
            columns = source.read_header(options.mapping, defined, options.group_by)
            warnings = list(source.warnings)
            if columns.ignored:
                warnings.append("Ignored columns: " + ", ".join(columns.ignored) + ".")
            counter = [0]
            rows = _ticking(source, reporter, rejects, stopping, counter)
            if columns.group is not None or (options.variant_names and columns.options):
                rows = grouping.inherit(rows, columns, options.variant_names)
            sink = rejects if seen is None else seen.sink(rejects, columns.sku)
            try:
                merger.stage(
                    normalise(rows, columns, sink, options.decimal_separator, options.empty_cells)
                )
            except csv.Error as exc:
                raise FileFormatError(
                    f"Line {source.line_num}: {exc}. "
                    "The file is not valid CSV (an unclosed quote?)."
                ) from None
            reporter.reading(source.bytes_read, counter[0], rejects.count, source.fraction_read)
            return counter[0], columns.active is not None, warnings, source.header
        finally:
            source.close()


def _finish(database: Database, job_id: int, **values: Any) -> None:
    with database.session() as session:
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(finished_at=utcnow(), heartbeat_at=utcnow(), **values)
        )
        job = session.get(ImportJob, job_id)
        assert job is not None
        if not job.dry_run and job.status in ("completed", "failed"):
            events.record(session, f"import.{job.status}", event_data(job))
        # Counted before the commit that makes the end visible, so whoever sees the job's
        # final state and then scrapes /metrics finds it counted (a failed commit overcounts
        # by one, which is the lesser error).
        metrics.record_import(job)


def event_data(job: ImportJob) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job.id,
        "filename": job.filename,
        "status": job.status,
        "rows_processed": job.rows_processed,
        "rows_created": job.rows_created,
        "rows_updated": job.rows_updated,
        "rows_unchanged": job.rows_unchanged,
        "rows_rejected": job.rows_rejected,
        "rows_missing": job.rows_missing,
        "error": job.error,
    }
    feed_id = (job.options or {}).get(mirror.FEED_ID)
    if feed_id is not None:
        data["feed_id"] = feed_id
    return data


def complete_merged(database: Database, storage: UploadStorage, job_id: int) -> None:
    """Mark a job whose merge is committed as completed (also used by crash recovery)."""
    with database.session() as session:
        job = session.get(ImportJob, job_id)
        key = job.storage_key if job else ""
    _finish(database, job_id, status="completed", phase="Completed", percent=100.0)
    storage.delete(key)


def run_import(
    database: Database,
    storage: UploadStorage,
    job_id: int,
    stopping: threading.Event | None = None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> None:
    lock = CatalogueLock(database)
    if not _wait_for_lock(database, lock, job_id, stopping):
        lock.release()
        return
    job = _claim(database, job_id)
    if job is None:
        lock.release()
        return
    reporter = ProgressReporter(database, job_id, job.total_bytes)
    merger: Merger | None = None
    rejects = _Rejects(database, job_id)
    # Mirror mode: what becomes of the products the file leaves out (None: they are kept).
    step = mirror.step_for(job.options)
    seen = step.seen if step is not None else None
    started = time.perf_counter()
    try:
        rejects.clear()
        merger = merger_for(database.engine)
        # Recovery's note that an earlier attempt stopped while reading stays with the job.
        warnings = [w for w in job.warnings or [] if w.startswith(STOPPED_WHILE_READING)]
        try:
            rows_read, has_active, more, header = _stage_file(
                database,
                merger,
                storage,
                job,
                None,
                reporter,
                rejects,
                stopping,
                max_decompressed_bytes,
                seen,
            )
        except UnicodeError as exc:  # idna-like codecs raise UnicodeError, not a decode error
            with storage.open_read(job.storage_key) as raw:
                file_format = detect_format(raw, job.encoding)
            if file_format.chosen or file_format.encoding not in ("utf-8", "utf-8-sig"):
                raise FileFormatError(
                    f"The file cannot be decoded as {file_format.encoding}: {exc}."
                ) from None
            # The start looked like UTF-8 but later bytes are not: spreadsheets on Windows
            # write Windows-1252. Start over in that encoding.
            warnings.append("The file is not UTF-8 throughout; it was read as Windows-1252.")
            merger.reset()
            rejects.clear()
            if seen is not None:
                seen.clear()
            rows_read, has_active, more, header = _stage_file(
                database,
                merger,
                storage,
                job,
                FALLBACK_ENCODING,
                reporter,
                rejects,
                stopping,
                max_decompressed_bytes,
                seen,
            )
        warnings.extend(more)
        rejects.flush()
        if rows_read == 0:
            raise FileFormatError("The file has a header but no data rows.")
        _record_read(database, job_id, rows_read, rejects.count, warnings, header, reporter)
        read_seconds = time.perf_counter() - started

        if job.dry_run:
            reporter.phase("Counting changes (dry run)")
            counts = merger.count_changes(has_active, step)
            _finish(
                database,
                job_id,
                status="completed",
                phase="Completed (dry run)",
                percent=100.0,
                **_count_values(counts),
                **_dry_run_mirror(step, warnings),
            )
            return
        reporter.phase("Merging")
        reporter.db_writes_blocked = merger.merge_locks_database
        merged_at = utcnow()
        record = ChangeRequest(
            kind="import",
            actor=job.created_by,
            summary=f"Import #{job_id} ({job.filename})",
            import_job_id=job_id,
        )
        counts = merger.merge(
            has_active,
            merged_at,
            reporter.merging,
            _merged_marker(job_id, step),
            record,
            step,
        )
        reporter.db_writes_blocked = False
        # Logged before the job says completed, so whoever sees `completed` finds the line.
        log.info(
            "import %s: %s rows read and staged in %.2fs, merged in %.2fs (%s)",
            job_id,
            rows_read,
            read_seconds,
            time.perf_counter() - started - read_seconds,
            counts,
        )
        complete_merged(database, storage, job_id)
        # Whoever sees `completed` may start a bulk action or another import at once: the
        # catalogue is free before the statistics are refreshed (seconds on PostgreSQL).
        lock.release()
        _refresh_statistics(database, counts)
    except ImportCancelled:
        mark_cancelled(database, job_id)
    except ImportInterrupted:
        _requeue(database, job_id)
    except FileFormatError as exc:
        _finish(database, job_id, status="failed", phase="Failed", error=str(exc))
    except mirror.MirrorRefused as exc:
        values = {"error": str(exc), "refused": True, "rows_missing": exc.missing}
        _finish(database, job_id, status="failed", phase="Refused", **values)
    except SQLAlchemyError as exc:
        log.exception("import %s failed on a database error", job_id)
        fail(database, job_id, f"Database error: {type(exc).__name__}. Nothing was imported.")
    except Exception as exc:
        log.exception("import %s failed", job_id)
        fail(database, job_id, f"Internal error ({type(exc).__name__}). Nothing was imported.")
    finally:
        reporter.db_writes_blocked = False
        if merger is not None:
            merger.close()
        if step is not None:
            step.close()
        lock.release()
        reporter.close()
        _return_freed_memory()


def _return_freed_memory() -> None:
    """Hand the heap an import freed (the merge's page cache, parsed rows) back to the system.
    glibc keeps freed blocks for reuse, and a long-lived server's next import would otherwise
    grow on top of them: a second 500,000-row import right after the first peaked at 204-210
    MB on SQLite against 167-180 MB for a first one."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def _refresh_statistics(database: Database, counts: MergeCounts) -> None:
    """After a large merge PostgreSQL's planner statistics are stale until autovacuum comes
    round; the product list's query plans depend on them. Runs after the job is completed."""
    if database.dialect != "postgresql" or counts.created + counts.updated < ANALYZE_AFTER_ROWS:
        return
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE products")
        connection.commit()


def _count_values(counts: MergeCounts) -> dict[str, int]:
    return {
        "rows_created": counts.created,
        "rows_updated": counts.updated,
        "rows_unchanged": counts.unchanged,
    }


def _merged_marker(job_id: int, step: mirror.MirrorStep | None = None) -> Any:
    """SQL run inside the merge transaction: if the merge commits, the job row says so."""

    def marker(counts: MergeCounts) -> list[tuple[str, dict[str, Any]]]:
        statements = [
            (
                "UPDATE import_jobs SET phase = 'Merged', percent = 99, rows_created = :created, "
                "rows_updated = :updated, rows_unchanged = :unchanged, change_id = :change_id "
                "WHERE id = :id",
                {
                    "change_id": counts.change_id,
                    "created": counts.created,
                    "updated": counts.updated,
                    "unchanged": counts.unchanged,
                    "id": job_id,
                },
            )
        ]
        if step is not None:
            statements.extend(step.marker_statements(job_id, counts.change_id))
        return statements

    return marker


def _dry_run_mirror(step: mirror.MirrorStep | None, warnings: list[str]) -> dict[str, Any]:
    """What a dry run says about the products the file leaves out, and the guard."""
    if step is None:
        return {}
    values: dict[str, Any] = {"rows_missing": step.missing, "refused": step.refusal is not None}
    if step.refusal is not None:
        values["warnings"] = [*warnings, step.refusal]
    return values


def _record_read(
    database: Database,
    job_id: int,
    rows_read: int,
    rejected: int,
    warnings: list[str],
    header: list[str],
    reporter: ProgressReporter,
) -> None:
    snap = reporter.snapshot
    with database.session() as session:
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(
                rows_processed=rows_read,
                rows_rejected=rejected,
                warnings=warnings,
                header=header,
                bytes_read=snap.bytes_read,
                percent=snap.percent,
                heartbeat_at=utcnow(),
            )
        )


def _requeue(database: Database, job_id: int) -> None:
    """A graceful hand-back at shutdown: not counted as an attempt, since nothing went wrong."""
    with database.session() as session:
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(
                status="queued",
                phase="Interrupted; will resume",
                percent=0.0,
                attempts=ImportJob.attempts - 1,
            )
        )


def stopped_while_reading_before(warnings: list[str] | None) -> bool:
    return any(w.startswith(STOPPED_WHILE_READING) for w in warnings or [])


def mark_cancelled(database: Database, job_id: int) -> None:
    _finish(database, job_id, status="cancelled", phase="Cancelled", error=None)


def fail(database: Database, job_id: int, message: str) -> None:
    try:
        _finish(database, job_id, status="failed", phase="Failed", error=message)
    except SQLAlchemyError:
        log.exception("could not record the failure of import %s", job_id)
