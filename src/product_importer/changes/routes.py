"""HTTP edge of change sets: list, read, undo (and its dry run), kept products, history."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse

from product_importer.auth.dependencies import (
    AppSettings,
    AuditLog,
    DbSession,
    Editor,
    Viewer,
)
from product_importer.auth.roles import Role, at_least
from product_importer.catalog.export import neutralise_cell
from product_importer.catalog.locking import CatalogueLock
from product_importer.catalog.models import SKU_MAX_LENGTH, sku_key
from product_importer.catalog.schemas import single_line
from product_importer.changes import bulk
from product_importer.changes import service as changes_service
from product_importer.changes.schemas import (
    BulkCount,
    BulkRequest,
    ChangePage,
    ChangeSetRead,
    HistoryPage,
    UndoDryRun,
)
from product_importer.changes.tasks import live_key
from product_importer.db import Database
from product_importer.history import service as history

router = APIRouter(prefix="/api", tags=["changes"])

MAX_ID = 2**63 - 1
ChangeId = Annotated[int, Path(ge=1, le=MAX_ID, description="The change set's id.")]
Kind = Literal["import", "delete_all", "bulk", "undo", "edit", "fields"]
SSE_POLL_SECONDS = 0.25
SSE_MAX_SILENCE_SECONDS = 1.0
KEPT_BATCH = 2000
# How long an inline bulk action waits for the catalogue lock before answering 409: long enough
# for a momentary holder (a recovery check, an import letting go), short beside a real one.
BRIEF_HOLD_SECONDS = 2.0

UNDO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": UndoDryRun, "description": "The dry run's counts."},
    202: {"model": ChangeSetRead, "description": "The undo's change set (queued)."},
    403: {"description": "The undo would delete every product; that needs the admin role."},
    404: {"description": "No such change (or import)."},
    409: {"description": "Not undoable: not completed, already undone, or past retention."},
}


def _read(request: Request, session: Any, settings: Any, change: Any) -> ChangeSetRead:
    database: Database = request.app.state.database
    return changes_service.read(
        session, change, settings.history_retention_days, live_key(database, change.id)
    )


def _actor(principal: Any) -> str:
    return history.actor_name(principal.kind, principal.name)


def _forbidden_everything(exc: changes_service.RemovesEverything, principal: Any) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, f"{exc} Your role is {principal.role.value}.")


@router.get("/changes", summary="Change sets, newest first")
def list_changes(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    _principal: Viewer,
    kind: Annotated[Kind | None, Query(description="Only this kind.")] = None,
    actor: Annotated[
        str | None,
        Query(max_length=200, description="Only this person's (`user alice`, `token ci`)."),
    ] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> ChangePage:
    database: Database = request.app.state.database
    return changes_service.list_page(
        session,
        kind,
        page,
        page_size,
        settings.history_retention_days,
        lambda change_id: live_key(database, change_id),
        actor=actor,
    )


@router.get("/changes/actors", summary="Who made changes, most recent first")
def change_actors(session: DbSession, _principal: Viewer) -> list[str]:
    return changes_service.actors(session)


@router.get("/changes/{change_id}", summary="One change set", responses={404: {}})
def read_change(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    _principal: Viewer,
    change_id: ChangeId,
) -> ChangeSetRead:
    try:
        change = changes_service.get(session, change_id)
    except changes_service.ChangeNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return _read(request, session, settings, change)


def undo_response(
    request: Request,
    session: Any,
    settings: Any,
    principal: Any,
    response: Response,
    find: Any,
    dry_run: bool,
) -> ChangeSetRead | UndoDryRun:
    retention = settings.history_retention_days
    admin = at_least(principal.role, Role.admin)
    try:
        change = find()
        if dry_run:
            return changes_service.dry_run(session, change.id, retention)
        # An undo that would delete every product (the undo of a delete-all's undo, say) needs
        # the delete-all's role; the job checks again in its own transaction.
        removes = 0 if admin else changes_service.undo_removes_everything(session, change)
        if removes:
            raise _forbidden_everything(changes_service.RemovesEverything(removes), principal)
        undo = changes_service.start_undo(
            session, change.id, _actor(principal), retention, may_remove_all=admin
        )
    except changes_service.ChangeNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except changes_service.NotUndoable as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = f"/api/changes/{undo.id}"
    return _read(request, session, settings, undo)


@router.post(
    "/changes/{change_id}/undo",
    summary="Undo a change (background job), or see what it would do",
    description=(
        "Answers `202` with the new change set of kind `undo`; follow it with "
        "`GET /api/changes/{id}` or its `/events` stream. With `dry_run=true` answers `200` at "
        "once with `would_delete`, `would_restore` and `would_keep`. Products changed again "
        "since the change are kept as they are and listed by `GET /api/changes/{id}/kept`."
    ),
    responses=UNDO_RESPONSES,
)
def undo_change(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    principal: Editor,
    audit: AuditLog,
    response: Response,
    change_id: ChangeId,
    dry_run: Annotated[bool, Query(description="Only count what the undo would do.")] = False,
) -> ChangeSetRead | UndoDryRun:
    result = undo_response(
        request,
        session,
        settings,
        principal,
        response,
        lambda: changes_service.get(session, change_id),
        dry_run,
    )
    if isinstance(result, ChangeSetRead):
        audit("change.undo", f"change:{change_id}", {"undo_change_id": result.id})
    return result


@router.get(
    "/changes/{change_id}/events",
    summary="Server-Sent Events stream of a change set until it ends",
    response_class=EventSourceResponse,
)
async def change_events(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    _principal: Viewer,
    change_id: ChangeId,
) -> EventSourceResponse:
    database: Database = request.app.state.database
    try:
        changes_service.get(session, change_id)
    except changes_service.ChangeNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    retention = settings.history_retention_days

    def snapshot() -> ChangeSetRead:
        with database.session() as inner:
            change = changes_service.get(inner, change_id)
            return changes_service.read(inner, change, retention, live_key(database, change_id))

    async def stream() -> AsyncIterator[dict[str, Any]]:
        last_sent, last_time = "", 0.0
        while True:
            current = await to_thread.run_sync(snapshot)
            body = current.model_dump_json()
            now = time.monotonic()
            if body != last_sent or now - last_time >= SSE_MAX_SILENCE_SECONDS:
                last_sent, last_time = body, now
                yield {"id": str(time.time_ns() // 1_000_000), "data": body, "retry": 2000}
            if current.status in ("completed", "failed"):
                return
            await asyncio.sleep(SSE_POLL_SECONDS)

    return EventSourceResponse(
        stream(), ping=15, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get(
    "/changes/{change_id}/kept",
    summary="Products an undo kept as they were, and why, as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, 404: {}},
)
def kept_products(
    request: Request, session: DbSession, _principal: Viewer, change_id: ChangeId
) -> StreamingResponse:
    try:
        change = changes_service.get(session, change_id)
    except changes_service.ChangeNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if change.kind != "undo":
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"Change {change_id} is not an undo; it kept nothing."
        )
    database: Database = request.app.state.database

    def body() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["sku", "reason"])
        after = ""
        while True:
            with database.session() as inner:
                rows = changes_service.kept_csv_rows(inner, change_id, after, KEPT_BATCH)
            for key, sku, reason in rows:
                writer.writerow([neutralise_cell(sku), reason])
                after = key
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < KEPT_BATCH:
                return

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="undo-{change_id}-kept.csv"'},
    )


# --- bulk actions ---------------------------------------------------------------------------


@router.post(
    "/products/bulk",
    summary="Activate, deactivate, delete or set custom fields of many products at once",
    description=(
        "Select by `ids` (at most 1,000) or by `filter` (the list's filters, custom field "
        'filters named as in its query string: `{"field.price.gte": "100"}`) with '
        "`expected_total`, the number of products you saw: if the filter now matches another "
        "number, nothing happens (409). Up to 1,000 products are changed within the request "
        "(`200` with the change set); more answer `202` with a queued change set to follow "
        "like an undo. Either way the action is one change set, and can be undone. "
        "`set_fields` takes `fields` as `PATCH /api/products/{id}` does (`null` unsets a "
        "field, keys not sent are kept) and changes only the products it gives another "
        "value. A field filter or value that does not fit the defined fields is a 422 naming "
        "it."
    ),
    tags=["products"],
    responses={
        200: {
            "model": ChangeSetRead,
            "description": "Done: the change set (or, for a dry run, the count).",
        },
        202: {"model": ChangeSetRead, "description": "Queued: the change set, as a job."},
        403: {
            "description": "A delete that would remove every product, asked for without the "
            "admin role."
        },
        409: {
            "description": "`expected_total` is stale, or an import or another bulk change "
            "holds the catalogue."
        },
        422: {"description": "A malformed request, or a field filter or value that does not fit."},
    },
)
def bulk_action(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    principal: Editor,
    audit: AuditLog,
    response: Response,
    body: BulkRequest,
    dry_run: Annotated[
        bool, Query(description="Only count the selection (exactly); change nothing.")
    ] = False,
) -> ChangeSetRead | BulkCount:
    database: Database = request.app.state.database
    actor = _actor(principal)
    admin = at_least(principal.role, Role.admin)
    try:
        if body.action == "set_fields":
            bulk.field_values(session, body)
        if dry_run:
            unchecked = body.model_copy(update={"expected_total": None})
            matched = bulk.count_selected(session, unchecked)
            everything = changes_service.covers_everything(session, matched)
            return BulkCount(action=body.action, matched=matched, everything=everything)
    except bulk.InvalidRequest as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if body.filter is not None and body.expected_total is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "`expected_total` is required with `filter`: the number of products you saw "
            "(get it exactly with ?dry_run=true).",
        )
    try:
        matched = bulk.count_selected(session, body)
        # Deleting every product is delete-all, whatever the selection: admin only. Checked
        # here to refuse at once, and again under the lock in the delete's transaction.
        if (
            body.action == "delete"
            and not admin
            and changes_service.covers_everything(session, matched)
        ):
            raise changes_service.RemovesEverything(matched)
        if matched > bulk.INLINE_LIMIT:
            change, _matched = bulk.start(session, body, actor, may_remove_all=admin)
            audit(
                "products.bulk", f"change:{change.id}", {"action": body.action, "matched": matched}
            )
            response.status_code = status.HTTP_202_ACCEPTED
            response.headers["Location"] = f"/api/changes/{change.id}"
            return _read(request, session, settings, change)
        lock = CatalogueLock(database)
        if not lock.acquire_within(BRIEF_HOLD_SECONDS):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "An import, a delete-all or another bulk change is running; nothing was "
                "changed. Try again when it has finished.",
            )
        try:
            # Its own transaction, committed before the lock is released.
            with database.session() as own:
                matched = bulk.count_selected(own, body)
                change = bulk.run_inline(own, body, actor, matched, may_remove_all=admin)
                change_id = change.id
        finally:
            lock.release()
    except bulk.TotalMismatch as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except bulk.InvalidRequest as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except changes_service.RemovesEverything as exc:
        raise _forbidden_everything(exc, principal) from None
    audit("product.bulk", f"change:{change_id}", {"action": body.action, "matched": matched})
    return _read(request, session, settings, changes_service.get(session, change_id))


# --- product history ------------------------------------------------------------------------

Page = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=200)]


@router.get(
    "/products/history",
    summary="History of a SKU, also of a deleted product",
    tags=["products"],
)
def history_by_sku(
    session: DbSession,
    _principal: Viewer,
    sku: Annotated[str, Query(min_length=1, max_length=SKU_MAX_LENGTH)],
    page: Page = 1,
    page_size: PageSize = 20,
) -> HistoryPage:
    try:
        single_line(sku)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"sku {exc}.") from None
    if not sku.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "sku must not be blank.")
    return changes_service.history(session, sku_key(sku), page, page_size)


@router.get(
    "/products/{product_id}/history",
    summary="A product's history, newest first",
    tags=["products"],
    responses={404: {"description": "No product with that id."}},
)
def history_by_id(
    session: DbSession,
    _principal: Viewer,
    product_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    page: Page = 1,
    page_size: PageSize = 20,
) -> HistoryPage:
    key = changes_service.product_key(session, product_id)
    if key is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"No product with id {product_id}; a deleted product's history is at "
            "/api/products/history?sku=...",
        )
    return changes_service.history(session, key, page, page_size)
