"""Recording catalogue events in the outbox. Any domain may call `record` inside its transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from product_importer.db import utcnow
from product_importer.tasks import dispatch
from product_importer.webhooks.models import Event

TEST_EVENT = "webhook.test"

_SAMPLE_PRODUCT: dict[str, Any] = {
    "id": 42,
    "sku": "CHAIR-OAK-01",
    "name": "Oak dining chair",
    "description": "Solid oak, oiled finish.",
    "active": True,
    "fields": {"price": "129.00", "stock": 4, "tags": ["dining", "oak"]},
    "created_at": "2025-01-31T09:30:00+00:00",
    "updated_at": "2025-02-01T14:05:12+00:00",
}
_SAMPLE_JOB: dict[str, Any] = {
    "id": 7,
    "filename": "products.csv",
    "status": "completed",
    "rows_processed": 500000,
    "rows_created": 120000,
    "rows_updated": 379000,
    "rows_unchanged": 900,
    "rows_rejected": 100,
    "rows_missing": 0,
    "error": None,
}


@dataclass(frozen=True)
class EventInfo:
    type: str
    description: str
    sample_data: dict[str, Any]


CATALOGUE: tuple[EventInfo, ...] = (
    EventInfo(
        "product.created", "A product was created through the API or the UI.", _SAMPLE_PRODUCT
    ),
    EventInfo(
        "product.updated", "A product was edited through the API or the UI.", _SAMPLE_PRODUCT
    ),
    EventInfo(
        "product.deleted",
        "A product was deleted through the API or the UI.",
        {"id": 42, "sku": "CHAIR-OAK-01"},
    ),
    EventInfo(
        "products.deleted_all",
        "Every product was deleted at once.",
        {"deleted_count": 500000, "job_id": 3},
    ),
    EventInfo(
        "import.completed",
        "An import finished; one event per import, not one per product.",
        _SAMPLE_JOB,
    ),
    EventInfo(
        "import.failed",
        "An import failed and left the catalogue as it was.",
        _SAMPLE_JOB
        | {"status": "failed", "error": "Missing column 'sku' in the header.", "rows_created": 0},
    ),
    EventInfo(
        "import.reverted",
        "An import was undone; one event per undo, with counts.",
        {
            "import_id": 7,
            "change_id": 31,
            "undoes_change_id": 12,
            "deleted": 120000,
            "restored": 379000,
            "kept": 12,
        },
    ),
    EventInfo(
        "products.restored",
        "A delete-all was undone: the products are back; one event per undo.",
        {
            "delete_job_id": 3,
            "change_id": 32,
            "undoes_change_id": 14,
            "deleted": 0,
            "restored": 500000,
            "kept": 0,
        },
    ),
    EventInfo(
        "products.bulk_changed",
        "A bulk action (activate, deactivate, delete, set_fields) or the undo of one ran; one "
        "event per operation, with counts; `set_fields` also carries the values it set (null "
        "for a field it unset).",
        {
            "change_id": 33,
            "action": "set_fields",
            "matched": 1200,
            "changed": 1180,
            "fields": {"vendor": "Acme", "stock": None},
        },
    ),
    EventInfo(
        "feed.failed",
        "A feed's runs failed (or were refused by its mirror guard) as many times in a row as "
        "its failure_alert_after; sent once per streak, which the next success ends.",
        {
            "feed_id": 3,
            "name": "Nightly ERP",
            "consecutive_failures": 3,
            "run_id": 41,
            "outcome": "failed",
            "reason": "The server answered HTTP 503.",
            "import_job_id": None,
        },
    ),
)

EVENT_TYPES = tuple(info.type for info in CATALOGUE)


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The payload every receiver gets (the Standard Webhooks convention)."""
    return {"type": event_type, "timestamp": utcnow().isoformat(), "data": data}


def record(session: Session, event_type: str, data: dict[str, Any]) -> Event:
    """Add an event to the outbox in the caller's transaction (sent only if it commits)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    payload = envelope(event_type, data)
    event = Event(type=event_type, payload=payload, created_at=utcnow())
    session.add(event)
    session.flush()
    # Fan out to the subscribed endpoints once this commits; the periodic sweep catches any
    # event whose task was lost (no dispatcher in this process, or a crash after commit).
    dispatch.enqueue(session, "webhooks.fan_out", event_id=event.id)
    return event
