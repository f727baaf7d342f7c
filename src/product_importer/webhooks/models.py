from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from product_importer.db import Base, BigIntId, UTCDateTime, utcnow


class Event(Base):
    """The outbox: one row per catalogue event, written in the transaction that caused it."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set once the event has been turned into deliveries for the subscribed endpoints.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
