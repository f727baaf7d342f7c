"""`product-importer import FILE`: the same import job as an upload, run in this process."""

from __future__ import annotations

import contextvars
import shlex
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import update
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from product_importer.db import Database
from product_importer.imports import fields as import_fields
from product_importer.imports import mapping as column_mapping
from product_importer.imports import mirror, pipeline, saved_mappings, service, sources
from product_importer.imports.columns import FileFormatError
from product_importer.imports.models import TERMINAL_STATUSES, ImportJob
from product_importer.imports.schemas import ImportJobRead
from product_importer.imports.sources import ReadOptions
from product_importer.imports.storage import storage_for
from product_importer.observability import logs
from product_importer.settings import Settings


class OptionError(Exception):
    """A command-line option is unusable; the message says why."""


def read_options(
    database: Database,
    maps: list[str],
    saved_name: str | None,
    encoding: str | None,
    sheet: str | None,
    decimal_separator: str | None = None,
    empty_cells: str | None = None,
    group_by: str | None = None,
    variant_names: bool | None = None,
) -> ReadOptions:
    """--mapping NAME (a saved mapping, with its reading options), then --map field=Column on
    top (a field is built-in or a custom field's key); --encoding, --sheet; then the reading
    options given, over the saved mapping's."""
    mapping: dict[str, str] | None = None
    saved_options: dict[str, Any] = {}
    with database.session() as session:
        keys = [spec.key for spec in import_fields.specs(session)]
        if saved_name is not None:
            found = {m.name.casefold(): m for m in saved_mappings.list_all(session)}
            names = ", ".join(m.name for m in found.values()) or "none"
            saved = found.get(saved_name.strip().casefold())
            if saved is None:
                raise OptionError(f"no saved mapping named {saved_name!r} (saved: {names}).")
            mapping = dict(saved.mapping)
            saved_options = dict(saved.options or {})
    for item in maps:
        field, sep, column = item.partition("=")
        if not sep:
            raise OptionError(f'--map takes field=Column (e.g. sku="Variant SKU"), not {item!r}.')
        mapping = mapping or {}
        mapping[field.strip().casefold()] = column
    given = {
        "decimal_separator": decimal_separator,
        "empty_cells": empty_cells,
        "group_by": group_by,
        "variant_names": variant_names,
    }
    chosen = {**saved_options, **{k: v for k, v in given.items() if v is not None}}
    try:
        text = sources.parse_options(
            None,
            encoding,
            sheet,
            decimal_separator=chosen.get("decimal_separator"),
            empty_cells=chosen.get("empty_cells"),
            group_by=chosen.get("group_by"),
            variant_names=chosen.get("variant_names"),
        )
        checked = column_mapping.check_mapping(mapping, keys) if mapping is not None else None
    except column_mapping.MappingInvalid as exc:
        raise OptionError(str(exc)) from None
    return replace(text, mapping=checked)


def mirror_options(
    missing: str | None, max_missing_percent: float | None, confirm_missing: bool
) -> mirror.MirrorOptions:
    """--missing keep|deactivate|delete, --max-missing-percent (0 to 100), --confirm-missing."""
    try:
        return mirror.parse_options(missing, max_missing_percent, confirm_missing)
    except column_mapping.MappingInvalid as exc:
        raise OptionError(str(exc)) from None


def mismatch_message(database: Database, exc: column_mapping.HeaderMismatch) -> str:
    with database.session() as session:
        suggestion = saved_mappings.for_header(session, exc.columns)
    message = str(exc)
    if suggestion.mapping:
        flags = " ".join(
            f"--map {field}={shlex.quote(column)}" for field, column in suggestion.mapping.items()
        )
        message += f"\nSuggested: {flags}"
    if exc.sheets:
        message += f"\nSheets: {', '.join(exc.sheets)}"
    return message


def _store(
    settings: Settings, database: Database, file: Path, options: ReadOptions
) -> tuple[str, int]:
    storage = storage_for(settings, database)
    key = storage.new_key(".upload")
    with file.open("rb") as source, storage.open_write(key) as target:
        shutil.copyfileobj(source, target, 1024 * 1024)
    with database.session() as session:
        defined = import_fields.specs(session)
    try:
        with storage.open_read(key) as raw:
            sources.inspect(raw, options, settings.max_decompressed_bytes, defined)
    except FileFormatError:
        storage.delete(key)
        raise
    return key, storage.size(key)


def _read(database: Database, job_id: int) -> ImportJobRead:
    with database.session() as session:
        return service.read(session, database, job_id)


def run(
    settings: Settings,
    database: Database,
    file: Path,
    dry_run: bool,
    options: ReadOptions | None = None,
    mirror_mode: mirror.MirrorOptions | None = None,
) -> ImportJobRead:
    """Store the file, run the import here with a progress bar, and return the final job."""
    options = options or ReadOptions()
    key, size = _store(settings, database, file, options)
    with database.session() as session:
        job_id = service.start_import(
            session,
            filename=file.name,
            storage_key=key,
            total_bytes=size,
            dry_run=dry_run,
            created_by="cli",
            options=options,
            mirror=mirror_mode,
        ).id
    with logs.task_context(service.RUN_TASK, "imports", {"job_id": job_id}):
        in_context = contextvars.copy_context()  # a new thread does not inherit it
    worker = threading.Thread(
        target=in_context.run,
        args=(
            pipeline.run_import,
            database,
            storage_for(settings, database),
            job_id,
            None,
            settings.max_decompressed_bytes,
        ),
        name="pi-cli-import",
        daemon=True,
    )
    worker.start()
    # disable=None: a bar on a terminal, nothing in logs and pipes (the summary follows anyway).
    bar = tqdm(total=100, bar_format="{l_bar}{bar}| {postfix}", dynamic_ncols=True, disable=None)
    job = _read(database, job_id)
    # Log lines (from the import thread too) are written above the bar, not through it.
    with logging_redirect_tqdm():
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
    if job.missing != "keep":
        done = {"deactivate": "deactivated", "delete": "deleted"}[job.missing]
        would = "would be " if job.dry_run or job.refused else ""
        lines.append(f"  products not in the file: {job.rows_missing:,} {would}{done}")
    if job.duration_seconds is not None:
        lines.append(f"  took {job.duration_seconds:.2f}s")
    lines.extend(f"  warning: {w}" for w in job.warnings)
    if job.rows_rejected:
        lines.append(f"  rejected rows: GET /api/imports/{job.id}/errors")
    if job.error:
        lines.append(f"  error: {job.error}")
    return "\n".join(lines)
