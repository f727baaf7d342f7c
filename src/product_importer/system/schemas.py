"""What GET /api/system answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from product_importer.backups.schemas import BackupRead


class WorkerRead(BaseModel):
    name: str = Field(description='Celery hostname, or "embedded@<host>:<pid>" inside `serve`.')
    kind: Literal["celery", "embedded"]
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_heartbeat: datetime
    age_seconds: float = Field(description="Seconds since the last heartbeat.")
    heartbeat_seconds: float = Field(description="The worker's heartbeat interval.")
    alive: bool = Field(description="Seen within 3 heartbeat intervals and not stopped.")
    stopped: bool = Field(description="The worker shut down cleanly.")
    leader: bool = Field(description="Runs the fleet's periodic work (sweeps, retries).")
    running_tasks: int | None


class QueueRead(BaseModel):
    queue: Literal["imports", "webhooks", "default"]
    broker_queue: str | None = Field(description="Name on the broker, with the queue prefix.")
    broker_messages: int | None = Field(
        description="Messages waiting in the broker; null in embedded mode or broker unreachable."
    )
    waiting: int = Field(description="Jobs the database holds for this queue, not started.")
    due: int | None = Field(description="Of those waiting, how many may run now (deliveries).")
    running: int | None = Field(description="Jobs running now, where recorded.")
    alive_consumers: int = Field(description="Alive workers that take this queue.")


class BackupsRead(BaseModel):
    scheduled: bool = Field(description="Daily backups run (embedded mode, not turned off).")
    time: str = Field(description="The daily backup's time on the server's clock (HH:MM).")
    keep: int = Field(description="Backups kept in PRODUCT_IMPORTER_HOME/backups.")
    next_at: datetime | None = Field(description="When the next daily backup runs.")
    last: BackupRead | None = Field(description="The newest backup, whatever its status.")
    last_completed: BackupRead | None = Field(description="The newest finished backup.")
    warning: str | None = Field(
        description="Set when the last backup failed, or the last finished one is over two "
        "days old while daily backups are on."
    )


class SystemRead(BaseModel):
    mode: Literal["embedded", "distributed"]
    database: str = Field(description="Database dialect: sqlite or postgresql.")
    broker: str | None = Field(description="BROKER_URL with any password hidden.")
    version: str
    heartbeat_seconds: float
    workers: list[WorkerRead]
    workers_alive: int
    queues: list[QueueRead]
    warnings: list[str] = Field(description="Plain sentences about work that cannot progress.")
    backups: BackupsRead
