from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text, text, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from product_importer.db import Base, BigIntId, UTCDateTime, utcnow

SKU_MAX_LENGTH = 255
NAME_MAX_LENGTH = 500
DESCRIPTION_MAX_LENGTH = 10_000

# Custom field values: a JSON object keyed by field key (catalog.field_types has the forms).
# JSONB on PostgreSQL, JSON text on SQLite; each field has an expression index of its own.
FieldValues = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def sku_key(sku: str) -> str:
    """The case-insensitive identity of a SKU, computed the same way for every database."""
    return sku.strip().casefold()


def next_version(current: datetime | None) -> datetime:
    """A new `updated_at` that always differs from the old one, so it can serve as a version."""
    now = utcnow()
    if current is not None and now <= current:
        return current + timedelta(microseconds=1)
    return now


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(SKU_MAX_LENGTH))
    # casefold() can lengthen a string (ß -> ss), so the key column has headroom.
    sku_key: Mapped[str] = mapped_column(String(SKU_MAX_LENGTH * 3), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    fields: Mapped[dict[str, Any]] = mapped_column(
        FieldValues, default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # ORM updates and deletes check that `updated_at` is still what was loaded (optimistic
    # locking), so two edits racing past the If-Match check cannot both win.
    __mapper_args__ = {"version_id_col": updated_at, "version_id_generator": next_version}


class CustomField(Base):
    """A field an admin defined: its key in `products.fields`, its label and its type."""

    __tablename__ = "custom_fields"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(63), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    # For `choice`: the allowed values, a JSON list; null for other types.
    choices: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


DELETE_JOB_STATUSES = ("queued", "running", "completed", "failed")


class DeleteAllJob(Base):
    """One "delete all products" request: the durable record the UI polls and recovery resumes."""

    __tablename__ = "product_delete_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    requested_by: Mapped[str] = mapped_column(String(150), default="")
    # Products when the job started (exact), and how many are gone so far.
    total: Mapped[int | None] = mapped_column(BigIntId, default=None)
    deleted: Mapped[int] = mapped_column(BigIntId, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Refreshed while queued work is handed over and after every batch; a stale heartbeat on
    # an unfinished job means its worker (or its queued task) was lost.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The change set that recorded what was deleted (see changes/), for undo.
    change_id: Mapped[int | None] = mapped_column(BigIntId, default=None)
