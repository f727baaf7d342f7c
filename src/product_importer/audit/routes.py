"""GET /api/audit: the audit log, newest first, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime

from product_importer.audit import schemas
from product_importer.audit import service as audit
from product_importer.auth.dependencies import Admin, DbSession

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", summary="The audit log, newest first")
def list_events(
    session: DbSession,
    _principal: Admin,
    actor: Annotated[
        str | None,
        Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", description="Exact actor name."),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z_]+(\.[a-z_]+)?$",
            description="An action (`user.create`) or a family of them (`user`).",
        ),
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="From this time on.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before this time.")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> schemas.AuditPage:
    if since and until and since >= until:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "'since' must be before 'until'.")
    rows, total = audit.search(
        session,
        audit.AuditFilter(actor=actor, action=action, since=since, until=until),
        page,
        page_size,
    )
    return schemas.AuditPage(
        items=[schemas.AuditEventRead.model_validate(row) for row in rows],
        total=total,
        page=page,
        page_size=page_size,
    )
