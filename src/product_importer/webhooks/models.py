from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from product_importer.db import Base, BigIntId, UTCDateTime, utcnow

URL_MAX_LENGTH = 2000
DESCRIPTION_MAX_LENGTH = 500
ERROR_MAX_LENGTH = 500
EXCERPT_MAX_LENGTH = 1000

DELIVERY_STATUSES = ("pending", "succeeded", "failed")


class Event(Base):
    """The outbox: one row per catalogue event, written in the transaction that caused it."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set once the event has been turned into deliveries for the subscribed endpoints.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)


class Endpoint(Base):
    """A receiver URL, the events it wants, its signing secret(s) and its recent health."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(URL_MAX_LENGTH))
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX_LENGTH), default="")
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Kept in clear: HMAC signing needs the key itself, so a hash would be useless.
    secret: Mapped[str] = mapped_column(String(100))
    # After a rotation the old secret also signs, until it expires, so receivers can switch over.
    previous_secret: Mapped[str | None] = mapped_column(String(100), default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    last_delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(String(ERROR_MAX_LENGTH), default=None)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # First failed attempt since the last success; drives the automatic disabling.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    disabled_reason: Mapped[str | None] = mapped_column(String(ERROR_MAX_LENGTH), default=None)

    # One worker at a time delivers to an endpoint, in any process: whoever holds this
    # unexpired lease. A lease left by a crashed process simply runs out.
    lease_token: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Delivery(Base):
    """One event for one endpoint: the durable record of its delivery and retries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "endpoint_id", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    # The `webhook-id` header: random, stable across retries and redeliveries.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts since the delivery was (re)queued; indexes the retry schedule.
    round_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(String(ERROR_MAX_LENGTH), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    event: Mapped[Event] = relationship(lazy="raise")
    attempts: Mapped[list[DeliveryAttempt]] = relationship(
        lazy="raise", order_by="DeliveryAttempt.id", passive_deletes=True
    )


class DeliveryAttempt(Base):
    """One HTTP request made for a delivery, successful or not."""

    __tablename__ = "webhook_delivery_attempts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(String(ERROR_MAX_LENGTH), default=None)
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
