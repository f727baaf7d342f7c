"""Queries and the few conditional updates that make delivery safe across processes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import ColumnElement

from product_importer.webhooks.models import Delivery, Endpoint, Event


def get_endpoint(session: Session, endpoint_id: int) -> Endpoint | None:
    return session.get(Endpoint, endpoint_id)


def list_endpoints(session: Session) -> Sequence[Endpoint]:
    return session.scalars(select(Endpoint).order_by(Endpoint.id)).all()


def enabled_endpoints(session: Session) -> Sequence[Endpoint]:
    return session.scalars(select(Endpoint).where(Endpoint.enabled).order_by(Endpoint.id)).all()


def get_delivery(session: Session, endpoint_id: int, delivery_id: int) -> Delivery | None:
    return session.scalars(
        select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.endpoint_id == endpoint_id)
        .options(selectinload(Delivery.attempts))
    ).one_or_none()


def page_deliveries(
    session: Session,
    endpoint_id: int,
    *,
    status: str | None,
    event_type: str | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[Delivery], int]:
    """Newest first, with their attempts, and the total matching the filters."""
    conditions = [Delivery.endpoint_id == endpoint_id]
    if status is not None:
        conditions.append(Delivery.status == status)
    if event_type is not None:
        conditions.append(Delivery.event_type == event_type)
    total = session.scalar(select(func.count()).select_from(Delivery).where(*conditions)) or 0
    items = session.scalars(
        select(Delivery)
        .where(*conditions)
        .order_by(Delivery.id.desc())
        .offset(offset)
        .limit(limit)
        .options(selectinload(Delivery.attempts))
    ).all()
    return items, total


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def claim_event(session: Session, event_id: int, now: datetime) -> Event | None:
    """Mark the event dispatched, unless someone else already did; the winner fans it out."""
    result = session.execute(
        update(Event)
        .where(Event.id == event_id, Event.dispatched_at.is_(None))
        .values(dispatched_at=now)
    )
    if _rowcount(result) != 1:
        return None
    return session.get(Event, event_id)


def undispatched_event_ids(session: Session, limit: int) -> Sequence[int]:
    return session.scalars(
        select(Event.id).where(Event.dispatched_at.is_(None)).order_by(Event.id).limit(limit)
    ).all()


def _lease_is_free(now: datetime) -> ColumnElement[bool]:
    return or_(Endpoint.lease_until.is_(None), Endpoint.lease_until < now)


def take_lease(
    session: Session, endpoint_id: int, token: str, until: datetime, now: datetime
) -> bool:
    """Take the endpoint's delivery lease if nobody holds it; True when taken."""
    result = session.execute(
        update(Endpoint)
        .where(Endpoint.id == endpoint_id, Endpoint.enabled, _lease_is_free(now))
        .values(lease_token=token, lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def renew_lease(session: Session, endpoint_id: int, token: str, until: datetime) -> bool:
    """Extend a lease we hold; False when it ran out and someone else took it."""
    result = session.execute(
        update(Endpoint)
        .where(Endpoint.id == endpoint_id, Endpoint.lease_token == token)
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def release_lease(session: Session, endpoint_id: int, token: str) -> None:
    session.execute(
        update(Endpoint)
        .where(Endpoint.id == endpoint_id, Endpoint.lease_token == token)
        .values(lease_token=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


def next_due_delivery(session: Session, endpoint_id: int, now: datetime) -> Delivery | None:
    return session.scalars(
        select(Delivery)
        .where(
            Delivery.endpoint_id == endpoint_id,
            Delivery.status == "pending",
            Delivery.next_attempt_at <= now,
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(1)
        .options(selectinload(Delivery.event))
    ).one_or_none()


def endpoints_with_due_deliveries(session: Session, now: datetime, limit: int) -> Sequence[int]:
    """Enabled endpoints that have deliveries due and no worker on them."""
    due = exists().where(
        Delivery.endpoint_id == Endpoint.id,
        Delivery.status == "pending",
        Delivery.next_attempt_at <= now,
    )
    return session.scalars(
        select(Endpoint.id)
        .where(Endpoint.enabled, _lease_is_free(now), due)
        .order_by(Endpoint.id)
        .limit(limit)
    ).all()


def fail_pending(session: Session, endpoint_id: int, reason: str) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.endpoint_id == endpoint_id, Delivery.status == "pending")
        .values(status="failed", next_attempt_at=None, last_error=reason)
        .execution_options(synchronize_session="fetch")
    )


def prune(session: Session, before: datetime) -> int:
    """Delete finished deliveries (and events nobody needs any more) older than `before`."""
    result = session.execute(
        delete(Delivery)
        .where(Delivery.status != "pending", Delivery.created_at < before)
        .execution_options(synchronize_session=False)
    )
    still_used = exists().where(Delivery.event_id == Event.id)
    session.execute(
        delete(Event)
        .where(Event.dispatched_at.is_not(None), Event.dispatched_at < before, ~still_used)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)
