from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from product_importer.db import Base, UTCDateTime, utcnow

KINDS = ("celery", "embedded")


class WorkerHeartbeat(Base):
    """One process that runs background work, as it last reported itself (see tasks.heartbeat)."""

    __tablename__ = "worker_heartbeats"

    # The Celery hostname, or "embedded@<host>:<pid>" for the runner inside `serve`.
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    concurrency: Mapped[int] = mapped_column(Integer)
    # The worker's own interval, so every reader judges it by the pace it promised.
    heartbeat_seconds: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Set on a clean shutdown; a worker that died keeps None and simply stops being seen.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    leader: Mapped[bool] = mapped_column(Boolean, default=False)
    running_tasks: Mapped[int | None] = mapped_column(Integer, default=None)
