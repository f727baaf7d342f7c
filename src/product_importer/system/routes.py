"""GET /api/system: the fleet's workers, queue depths and what is wrong with them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from product_importer import __version__
from product_importer.auth.dependencies import AppSettings, DbSession, Viewer, get_database
from product_importer.backups import service as backup_service
from product_importer.backups.schemas import BackupRead
from product_importer.db import Database, utcnow
from product_importer.feeds import service as feed_service
from product_importer.settings import Settings, redact_url
from product_importer.system import queues as system_queues
from product_importer.system import service
from product_importer.system.schemas import BackupsRead, QueueRead, SystemRead, WorkerRead

router = APIRouter(prefix="/api/system", tags=["system"])


@router.get("", summary="Workers, queue depths and warnings", response_model=SystemRead)
def read_system(
    _principal: Viewer,
    session: DbSession,
    settings: AppSettings,
    database: Annotated[Database, Depends(get_database)],
) -> SystemRead:
    """Which workers are alive (by their heartbeats), how much work waits per queue in the
    broker and in the database, and plain-sentence warnings such as "no worker is alive"."""
    workers = service.list_workers(session, utcnow())
    depths = system_queues.queue_depths(settings, database)
    return SystemRead(
        mode="distributed" if settings.distributed else "embedded",
        database=database.dialect,
        broker=redact_url(settings.broker_url) if settings.broker_url else None,
        version=__version__,
        heartbeat_seconds=settings.heartbeat_seconds,
        workers=[
            WorkerRead(
                name=state.row.name,
                kind=state.row.kind,
                hostname=state.row.hostname,
                pid=state.row.pid,
                queues=state.row.queues,
                concurrency=state.row.concurrency,
                started_at=state.row.started_at,
                last_heartbeat=state.row.last_seen_at,
                age_seconds=round(state.age_seconds, 1),
                heartbeat_seconds=state.row.heartbeat_seconds,
                alive=state.alive,
                stopped=state.row.stopped_at is not None,
                leader=state.row.leader and state.alive,
                running_tasks=state.row.running_tasks,
            )
            for state in workers
        ],
        workers_alive=sum(1 for state in workers if state.alive),
        queues=[
            QueueRead(
                queue=depth.queue,
                broker_queue=depth.broker_queue,
                broker_messages=depth.broker_messages,
                waiting=depth.waiting,
                due=depth.due,
                running=depth.running,
                alive_consumers=service.alive_consumers(workers, depth.queue),
            )
            for depth in depths
        ],
        warnings=service.warnings(
            settings.distributed,
            workers,
            broker_answers=all(depth.broker_messages is not None for depth in depths),
        )
        + feed_service.warnings(session),
        backups=_backups(settings),
    )


def _backups(settings: Settings) -> BackupsRead:
    found = backup_service.status(settings, utcnow())
    return BackupsRead(
        scheduled=found.scheduled,
        time=found.at.strftime("%H:%M"),
        keep=found.keep,
        next_at=found.next_at,
        last=BackupRead.of(found.last) if found.last else None,
        last_completed=BackupRead.of(found.last_completed) if found.last_completed else None,
        warning=found.warning,
    )
