"""Change sets: every change to the catalogue, with what each product was before and after.

`change_sets` holds one row per change (an import, a delete-all, a bulk action, an undo, a
single edit): who, when, what kind, counts, and for background work its status. `product_changes`
holds one row per product a change touched, keyed by (change, SKU key): a change touches a
product at most once. Rows are written set-based inside the change's own transaction. A large
change on PostgreSQL keeps its rows in a table of its own instead (`history.record_tables`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from product_importer.db import Base, BigIntId, UTCDateTime, utcnow

# A record keeps a product as it was, so its columns are as wide as the product's
# (catalog.models; history sits below the catalogue, and a test checks the two agree).
SKU_MAX_LENGTH = 255
NAME_MAX_LENGTH = 500
# As catalog.models.FieldValues.
FieldValues = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

KINDS = ("import", "delete_all", "bulk", "undo", "edit", "fields")
STATUSES = ("queued", "running", "completed", "failed")
OPERATIONS = ("created", "updated", "deleted")


class ChangeSet(Base):
    __tablename__ = "change_sets"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default="completed")
    # Who asked: "user alice", "token ci-bot"; what ran it is in the links below.
    actor: Mapped[str] = mapped_column(String(200), default="")
    summary: Mapped[str] = mapped_column(String(300), default="")
    import_job_id: Mapped[int | None] = mapped_column(BigIntId, default=None, index=True)
    delete_job_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # An undo names the change it undoes; the undone change names its (completed) undo.
    undoes_id: Mapped[int | None] = mapped_column(BigIntId, default=None, index=True)
    undone_by_id: Mapped[int | None] = mapped_column(BigIntId, default=None)
    # A bulk action's request (action, ids or filter), so its job can run it later.
    request: Mapped[str | None] = mapped_column(Text, default=None)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    restored: Mapped[int] = mapped_column(Integer, default=0)
    kept: Mapped[int] = mapped_column(Integer, default=0)
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when retention pruned the per-product records: history is gone, undo impossible.
    pruned: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ProductChange(Base):
    """One product as one change left it: before (null when created) and after (null when
    deleted; for an update, null for each field it did not change)."""

    __tablename__ = "product_changes"
    __table_args__ = (
        Index("ix_product_changes_sku_key", "sku_key", "change_id", unique=True),
        Index("ix_product_changes_change_id", "change_id"),
        Index(
            "ix_product_changes_before_sku_key",
            "before_sku_key",
            "change_id",
            sqlite_where=text("before_sku_key IS NOT NULL"),
            postgresql_where=text("before_sku_key IS NOT NULL"),
        ),
    )

    change_id: Mapped[int] = mapped_column(BigIntId)
    sku_key: Mapped[str] = mapped_column(String(SKU_MAX_LENGTH * 3))
    product_id: Mapped[int | None] = mapped_column(BigIntId, default=None)
    op: Mapped[str] = mapped_column(String(8))
    # Set only when the change gave the product another SKU key (an edit of the SKU).
    before_sku_key: Mapped[str | None] = mapped_column(String(SKU_MAX_LENGTH * 3), default=None)
    before_sku: Mapped[str | None] = mapped_column(String(SKU_MAX_LENGTH), default=None)
    before_name: Mapped[str | None] = mapped_column(String(NAME_MAX_LENGTH), default=None)
    before_description: Mapped[str | None] = mapped_column(Text, default=None)
    before_active: Mapped[bool | None] = mapped_column(Boolean, default=None)
    after_sku: Mapped[str | None] = mapped_column(String(SKU_MAX_LENGTH), default=None)
    after_name: Mapped[str | None] = mapped_column(String(NAME_MAX_LENGTH), default=None)
    after_description: Mapped[str | None] = mapped_column(Text, default=None)
    after_active: Mapped[bool | None] = mapped_column(Boolean, default=None)
    # Custom field values, the whole object: before for a deleted product and for an update
    # that changed a field; after for a created product and for such an update.
    before_fields: Mapped[dict[str, Any] | None] = mapped_column(FieldValues, default=None)
    after_fields: Mapped[dict[str, Any] | None] = mapped_column(FieldValues, default=None)

    # The ORM's identity; in the database the unique (sku_key, change_id) index keeps it.
    __mapper_args__ = {"primary_key": [change_id, sku_key]}


class KeptProduct(Base):
    """A product an undo left as it was, and why (it was changed again since)."""

    __tablename__ = "change_kept"
    __table_args__ = ({"sqlite_with_rowid": False},)

    change_id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    sku_key: Mapped[str] = mapped_column(String(SKU_MAX_LENGTH * 3), primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_MAX_LENGTH))
    # The first later change of this product, or null when its SKU was simply taken again.
    by_change_id: Mapped[int | None] = mapped_column(BigIntId, default=None)
