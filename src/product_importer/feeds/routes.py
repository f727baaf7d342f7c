"""The feeds API: feeds, their runs, running one now, and testing a source."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from product_importer.auth.dependencies import (
    AppSettings,
    AuditLog,
    DbSession,
    Editor,
    NoStore,
    Viewer,
)
from product_importer.feeds import connection_test, schemas, service
from product_importer.feeds.models import Feed

router = APIRouter(prefix="/api/feeds", tags=["feeds"])

MAX_ID = 2**63 - 1
FeedId = Annotated[int, Path(ge=1, le=MAX_ID, description="The feed's id.")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="The run's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such feed."}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "A value is invalid: the answer says which and why."},
    409: {"description": "A feed with this name exists."},
}


def _not_found(what: str = "Feed") -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found.")


def _get(session: Session, feed_id: int) -> Feed:
    try:
        return service.get(session, feed_id)
    except service.FeedNotFound:
        raise _not_found() from None


@router.get("", summary="List feeds")
def list_feeds(
    session: DbSession, settings: AppSettings, _principal: Viewer
) -> list[schemas.FeedRead]:
    return [service.read(session, settings, feed) for feed in service.list_all(session)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a feed",
    dependencies=[NoStore],
    responses=INVALID,
)
def create_feed(
    data: schemas.FeedCreate,
    session: DbSession,
    settings: AppSettings,
    principal: Editor,
    audit: AuditLog,
) -> schemas.FeedRead:
    """Credentials (`headers`, `password`, `private_key`) are kept encrypted and never
    answered; `credentials` lists which are set."""
    try:
        feed = service.create(session, settings, data, principal.name)
    except service.FeedInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except service.FeedNameTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    audit(
        "feed.create",
        f"feed:{feed.id} {feed.name}",
        {"schedule": feed.schedule, "missing": feed.missing, "enabled": feed.enabled},
    )
    return service.read(session, settings, feed)


@router.post(
    "/test",
    summary="Try a source before saving it",
    dependencies=[NoStore],
    responses={422: {"description": "A value is invalid."}},
)
async def try_source(
    data: schemas.FeedTest, request: Request, settings: AppSettings, _principal: Editor
) -> schemas.ConnectionTest:
    """Fetches the head of the file (the whole of a workbook) and answers the preview an
    upload would get, or the reason it cannot be fetched; nothing is kept. For SFTP the answer
    carries the server's key fingerprint, to confirm by saving it as `host_key`."""
    database = request.app.state.database
    try:
        return await to_thread.run_sync(connection_test.try_new, database, settings, data)
    except service.FeedInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.get("/{feed_id}", summary="One feed", responses=NOT_FOUND)
def get_feed(
    feed_id: FeedId, session: DbSession, settings: AppSettings, _principal: Viewer
) -> schemas.FeedRead:
    return service.read(session, settings, _get(session, feed_id))


@router.patch("/{feed_id}", summary="Change a feed", responses=NOT_FOUND | INVALID)
def update_feed(
    feed_id: FeedId,
    data: schemas.FeedUpdate,
    session: DbSession,
    settings: AppSettings,
    _principal: Editor,
    audit: AuditLog,
) -> schemas.FeedRead:
    """Only the fields given change. Credentials given replace the saved ones (null removes
    one). A new `url` forgets the confirmed host key unless `host_key` is given too."""
    try:
        feed, changed = service.change(session, settings, feed_id, data)
    except service.FeedNotFound:
        raise _not_found() from None
    except service.FeedInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except service.FeedNameTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    audit("feed.update", f"feed:{feed.id} {feed.name}", {"fields": changed})
    return service.read(session, settings, feed)


@router.delete(
    "/{feed_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a feed and its run history (its imports stay)",
    responses=NOT_FOUND,
)
def delete_feed(
    feed_id: FeedId, session: DbSession, _principal: Editor, audit: AuditLog
) -> Response:
    try:
        feed = service.delete(session, feed_id)
    except service.FeedNotFound:
        raise _not_found() from None
    audit("feed.delete", f"feed:{feed_id} {feed.name}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{feed_id}/test",
    summary="Try a saved feed's source",
    dependencies=[NoStore],
    responses=NOT_FOUND,
)
async def try_feed(
    feed_id: FeedId, request: Request, settings: AppSettings, _principal: Editor
) -> schemas.ConnectionTest:
    database = request.app.state.database
    try:
        return await to_thread.run_sync(connection_test.try_saved, database, settings, feed_id)
    except service.FeedNotFound:
        raise _not_found() from None


@router.post(
    "/{feed_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Run a feed now",
    responses=NOT_FOUND | {409: {"description": "A run of this feed is in progress."}},
)
def run_feed(
    feed_id: FeedId,
    session: DbSession,
    principal: Editor,
    audit: AuditLog,
    dry_run: Annotated[bool, Query(description="Report what the import would do.")] = False,
    confirm_missing: Annotated[
        bool,
        Query(description="Let this one run through the mirror guard (max_missing_percent)."),
    ] = False,
) -> schemas.FeedRunRead:
    """Answers the run, `queued`; follow it at `GET /api/feeds/{id}/runs/{run_id}` and its
    import (once `import_job_id` is set) at `/api/imports/{id}`."""
    feed = _get(session, feed_id)
    try:
        run = service.request_run(
            session,
            feed,
            trigger="manual",
            requested_by=principal.name,
            dry_run=dry_run,
            confirm_missing=confirm_missing,
        )
    except service.RunInProgress as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    audit(
        "feed.run",
        f"feed:{feed.id} {feed.name}",
        {"run_id": run.id, "dry_run": dry_run, "confirm_missing": confirm_missing},
    )
    return service.run_read(session, run)


@router.get("/{feed_id}/runs", summary="A feed's runs, newest first", responses=NOT_FOUND)
def list_runs(
    feed_id: FeedId,
    session: DbSession,
    _principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Runs older than this run id.")
    ] = None,
) -> list[schemas.FeedRunRead]:
    _get(session, feed_id)
    return [service.run_read(session, run) for run in service.runs(session, feed_id, limit, before)]


@router.get("/{feed_id}/runs/{run_id}", summary="One run", responses=NOT_FOUND)
def get_run(
    feed_id: FeedId, run_id: RunId, session: DbSession, _principal: Viewer
) -> schemas.FeedRunRead:
    try:
        return service.run_read(session, service.get_run(session, feed_id, run_id))
    except service.FeedNotFound:
        raise _not_found("Run") from None
