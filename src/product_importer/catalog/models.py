from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from product_importer.db import Base, BigIntId, UTCDateTime, utcnow

SKU_MAX_LENGTH = 255
NAME_MAX_LENGTH = 500
DESCRIPTION_MAX_LENGTH = 10_000


def sku_key(sku: str) -> str:
    """The case-insensitive identity of a SKU, computed the same way for every database."""
    return sku.strip().casefold()


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(SKU_MAX_LENGTH))
    # casefold() can lengthen a string (ß -> ss), so the key column has headroom.
    sku_key: Mapped[str] = mapped_column(String(SKU_MAX_LENGTH * 3), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
