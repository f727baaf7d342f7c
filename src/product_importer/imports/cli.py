"""`product-importer import FILE`: the same import job as an upload, run in this process."""

from __future__ import annotations

import contextvars
import shutil
import threading
import time
from pathlib import Path

import typer
from sqlalchemy import update
from tqdm import tqdm

from product_importer.db import Database
from product_importer.imports import pipeline, service
from product_importer.imports.models import TERMINAL_STATUSES, ImportJob
from product_importer.imports.reading import FileFormatError, check_header
from product_importer.imports.schemas import ImportJobRead
from product_importer.imports.storage import storage_for
from product_importer.observability import logs
from product_importer.settings import Settings


def _store(settings: Settings, database: Database, file: Path) -> tuple[str, int]:
    storage = storage_for(settings, database)
    key = storage.new_key(".upload")
    with file.open("rb") as source, storage.open_write(key) as target:
        shutil.copyfileobj(source, target, 1024 * 1024)
    try:
        with storage.open_read(key) as raw:
            check_header(raw)
    except FileFormatError:
        storage.delete(key)
        raise
    return key, storage.size(key)


def _read(database: Database, job_id: int) -> ImportJobRead:
    with database.session() as session:
        return service.read(session, database, job_id)


def run(settings: Settings, database: Database, file: Path, dry_run: bool) -> ImportJobRead:
    """Store the file, run the import here with a progress bar, and return the final job."""
    key, size = _store(settings, database, file)
    with database.session() as session:
        job_id = service.start_import(
            session,
            filename=file.name,
            storage_key=key,
            total_bytes=size,
            dry_run=dry_run,
            created_by="cli",
        ).id
    with logs.task_context(service.RUN_TASK, "imports", {"job_id": job_id}):
        in_context = contextvars.copy_context()  # a new thread does not inherit it
    worker = threading.Thread(
        target=in_context.run,
        args=(pipeline.run_import, database, storage_for(settings, database), job_id),
        name="pi-cli-import",
        daemon=True,
    )
    worker.start()
    # disable=None: a bar on a terminal, nothing in logs and pipes (the summary follows anyway).
    bar = tqdm(total=100, bar_format="{l_bar}{bar}| {postfix}", dynamic_ncols=True, disable=None)
    job = _read(database, job_id)
    try:
        while job.status not in TERMINAL_STATUSES:
            time.sleep(0.2)
            job = _read(database, job_id)
            bar.set_description_str(job.phase[:28].ljust(28))
            bar.n = job.percent
            rate = f"{job.rows_per_second:,.0f} rows/s" if job.rows_per_second else ""
            eta = f"ETA {job.eta_seconds:.0f}s" if job.eta_seconds is not None else ""
            bar.set_postfix_str(f"{job.rows_processed:,} rows {rate} {eta}".strip())
    except KeyboardInterrupt:
        with database.session() as session:
            session.execute(
                update(ImportJob).where(ImportJob.id == job_id).values(cancel_requested=True)
            )
        typer.echo("\nCancelling; the catalogue is left as it was ...", err=True)
        worker.join()
        job = _read(database, job_id)
    worker.join()
    bar.n = job.percent
    bar.close()
    return job


def summary(job: ImportJobRead) -> str:
    lines = [
        f"Import {job.id} of {job.filename}: {job.status}"
        + (" (dry run: nothing was written)" if job.dry_run else ""),
        f"  rows read {job.rows_processed:,}; created {job.rows_created:,}, "
        f"updated {job.rows_updated:,}, unchanged {job.rows_unchanged:,}, "
        f"rejected {job.rows_rejected:,}",
    ]
    if job.duration_seconds is not None:
        lines.append(f"  took {job.duration_seconds:.2f}s")
    lines.extend(f"  warning: {w}" for w in job.warnings)
    if job.rows_rejected:
        lines.append(f"  rejected rows: GET /api/imports/{job.id}/errors")
    if job.error:
        lines.append(f"  error: {job.error}")
    return "\n".join(lines)
