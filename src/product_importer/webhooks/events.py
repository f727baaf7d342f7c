"""Recording catalogue events in the outbox. Any domain may call `record` inside its transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from product_importer.db import utcnow
from product_importer.webhooks.models import Event

EVENT_TYPES = (
    "product.created",
    "product.updated",
    "product.deleted",
    "products.deleted_all",
    "import.completed",
    "import.failed",
)


def record(session: Session, event_type: str, data: dict[str, Any]) -> Event:
    """Add an event to the outbox in the caller's transaction (sent only if it commits)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    now = utcnow()
    event = Event(
        type=event_type,
        payload={"type": event_type, "timestamp": now.isoformat(), "data": data},
        created_at=now,
    )
    session.add(event)
    session.flush()
    return event
