"""*Test connection*: fetch the head of a feed's file and answer the preview an upload gets."""

from __future__ import annotations

from product_importer.db import Database
from product_importer.feeds import fetching, runs, secrets, service
from product_importer.feeds.models import Feed
from product_importer.feeds.schemas import ConnectionTest, FeedTest
from product_importer.imports import fields as import_fields
from product_importer.imports import preview, saved_mappings, workbook
from product_importer.imports.columns import FileFormatError
from product_importer.imports.sources import ReadOptions
from product_importer.imports.storage import UploadStorage, storage_for
from product_importer.settings import Settings

# Enough of a CSV file for the preview's rows; a workbook is read whole (its index is at the
# end), within the upload size limit.
HEAD_BYTES = 512 * 1024


def try_new(database: Database, settings: Settings, data: FeedTest) -> ConnectionTest:
    """A source as the form holds it, before it is saved."""
    values = data.model_dump()
    with database.session() as session:
        service.check_source(session, settings, values)
        feed = Feed(
            url=values["url"],
            mapping=values["mapping"],
            mapping_id=values["mapping_id"],
            sheet=values["sheet"],
            encoding=values["encoding"],
            options={key: values[key] for key in service.READ_OPTIONS if values[key] is not None},
            host_key=values["host_key"],
        )
        options = runs.read_options(session, feed)
    source = fetching.Source(
        url=values["url"],
        headers=values["headers"] or {},
        username=values["username"],
        password=values["password"],
        private_key=values["private_key"],
        host_key=values["host_key"],
    )
    return _try(database, settings, source, options)


def try_saved(database: Database, settings: Settings, feed_id: int) -> ConnectionTest:
    with database.session() as session:
        feed = service.get(session, feed_id)
        options = runs.read_options(session, feed)
        try:
            source = runs.source_of(settings, feed)
        except secrets.SecretsUnreadable as exc:
            return ConnectionTest(ok=False, reason=str(exc))
    return _try(database, settings, source, options)


def _try(
    database: Database, settings: Settings, source: fetching.Source, options: ReadOptions
) -> ConnectionTest:
    storage = storage_for(settings, database)
    key = storage.new_key(".feed-test")
    try:
        try:
            fetched = _fetch(source, settings, storage, key, HEAD_BYTES)
            with storage.open_read(key) as raw:
                if fetched.truncated_at_head and workbook.is_workbook(raw):
                    fetched = _fetch(source, settings, storage, key, None)
        except fetching.FetchFailed as exc:
            return ConnectionTest(
                ok=False,
                reason=str(exc),
                http_status=exc.http_status,
                host_key=exc.host_key,
                host_key_known=False if exc.host_key else None,
            )
        answer = ConnectionTest(
            ok=True,
            http_status=fetched.http_status,
            host_key=fetched.host_key,
            host_key_known=True if fetched.host_key else None,
            filename=fetched.filename,
            bytes_read=fetched.size,
        )
        with database.session() as session:
            defined = import_fields.specs(session)
            try:
                with storage.open_read(key) as raw:
                    shown = preview.preview(
                        raw,
                        options,
                        lambda header: saved_mappings.for_header(session, header, defined),
                        partial=fetched.truncated_at_head,
                        max_decompressed_bytes=settings.max_decompressed_bytes,
                        fields=defined,
                    )
            except (FileFormatError, workbook.SheetNotFound) as exc:
                answer.ok, answer.reason = False, f"The file was fetched but cannot be read: {exc}"
                return answer
        answer.preview = shown.model_dump(mode="json")
        return answer
    finally:
        storage.delete(key)


def _fetch(
    source: fetching.Source,
    settings: Settings,
    storage: UploadStorage,
    key: str,
    head_bytes: int | None,
) -> fetching.Fetched:
    with storage.open_write(key) as sink:
        return fetching.fetch(
            source, fetching.Known(), service.limits(settings), sink, head_bytes=head_bytes
        )
