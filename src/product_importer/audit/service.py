"""Record and read the audit log. Nothing here commits: an entry is written in the same unit
of work as the change it describes, so a change that rolls back leaves no entry.

Callers pass names, ids and counts, never secrets: no password, token, webhook secret or
request body reaches `details`. `_scrub` drops any key that looks like one all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from product_importer.audit.models import AuditEvent
from product_importer.auth.service import Principal
from product_importer.db import utcnow

_SECRET_WORDS = ("password", "secret", "token", "hash", "authorization", "cookie")


def _scrub(details: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in details.items()
        if not any(word in key.lower() for word in _SECRET_WORDS)
    }


def record(
    session: Session,
    actor: Principal | None,
    action: str,
    *,
    target: str | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> AuditEvent:
    """Add one entry. `actor_name` names an actor that has no principal (a failed sign-in)."""
    event = AuditEvent(
        actor=(actor.name if actor else actor_name or "anonymous")[:200],
        actor_kind=actor.kind if actor else "anonymous",
        actor_user_id=actor.user_id if actor else None,
        action=action,
        target=target[:300] if target else None,
        ip=ip[:64] if ip else None,
        details=_scrub(details or {}),
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def search(
    session: Session, where: AuditFilter, page: int, page_size: int
) -> tuple[list[AuditEvent], int]:
    """Entries newest first, and how many match in all."""
    query = select(AuditEvent)
    if where.actor:
        query = query.where(AuditEvent.actor == where.actor)
    if where.action:
        # "user" finds user.create, user.update...; "user.create" only itself.
        if "." in where.action:
            query = query.where(AuditEvent.action == where.action)
        else:
            query = query.where(AuditEvent.action.startswith(where.action + ".", autoescape=True))
    if where.since:
        query = query.where(AuditEvent.occurred_at >= where.since)
    if where.until:
        query = query.where(AuditEvent.occurred_at < where.until)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return list(rows), total


def prune(session: Session, retention_days: float) -> int:
    """Remove entries older than the retention period; returns how many."""
    cutoff = utcnow() - timedelta(days=retention_days)
    result = session.execute(delete(AuditEvent).where(AuditEvent.occurred_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
