"""Opening change sets: the one row every change to the catalogue starts with.

Nothing here commits: the change's own unit of work does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from product_importer.db import utcnow
from product_importer.history.models import ChangeSet

# The product fields a change record keeps, before and after.
FIELDS = ("sku", "name", "description", "active")


def actor_name(kind: str, name: str) -> str:
    """How a principal shows in history: a user by name, a token as `token NAME`."""
    return name if kind == "user" else f"token {name}"


def open_change(
    session: Session,
    kind: str,
    actor: str,
    summary: str,
    *,
    status: str = "completed",
    **links: Any,
) -> ChangeSet:
    now = utcnow()
    change = ChangeSet(
        kind=kind,
        status=status,
        actor=actor[:200],
        summary=summary[:300],
        created=0,
        updated=0,
        deleted=0,
        restored=0,
        kept=0,
        percent=100.0 if status == "completed" else 0.0,
        attempts=0,
        pruned=False,
        created_at=now,
        finished_at=now if status == "completed" else None,
        heartbeat_at=now,
        **links,
    )
    session.add(change)
    session.flush()
    return change
