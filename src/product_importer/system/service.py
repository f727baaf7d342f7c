"""Rules about workers: recording a heartbeat, who counts as alive, and what to warn about."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from product_importer.db import utcnow
from product_importer.tasks.models import WorkerHeartbeat

# A worker is alive while its last heartbeat is younger than this many of its own intervals:
# one missed beat (a slow database, a long pause) is not yet a death.
ALIVE_INTERVALS = 3
PRUNE_AFTER = timedelta(days=1)

# What waits in each queue when nobody takes it, in words for the warnings.
QUEUE_WORK = {
    "imports": "imports and delete-all jobs",
    "webhooks": "webhook deliveries",
    "default": "other background work (search catch-up)",
}


@dataclass(frozen=True)
class WorkerState:
    row: WorkerHeartbeat
    alive: bool
    age_seconds: float


def is_alive(row: WorkerHeartbeat, now: datetime) -> bool:
    if row.stopped_at is not None:
        return False
    return (now - row.last_seen_at).total_seconds() <= ALIVE_INTERVALS * row.heartbeat_seconds


def list_workers(session: Session, now: datetime | None = None) -> list[WorkerState]:
    """Every worker seen in the last day: alive ones first, then the most recently seen."""
    now = now or utcnow()
    rows = session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.name)).all()
    states = [
        WorkerState(
            row=row,
            alive=is_alive(row, now),
            age_seconds=max(0.0, (now - row.last_seen_at).total_seconds()),
        )
        for row in rows
    ]
    states.sort(key=lambda state: (not state.alive, state.age_seconds))
    return states


def prune(session: Session, now: datetime | None = None) -> int:
    """Forget workers not seen for a day (stopped, killed, or renamed by a restart)."""
    cutoff = (now or utcnow()) - PRUNE_AFTER
    result = session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def alive_consumers(workers: Sequence[WorkerState], queue: str) -> int:
    return sum(1 for state in workers if state.alive and queue in state.row.queues)


def warnings(
    distributed: bool, workers: Sequence[WorkerState], *, broker_answers: bool = True
) -> list[str]:
    """Plain sentences for the System page and the banner; none in embedded mode, where the
    server process that answers is the one running the work."""
    if not distributed:
        return []
    found = []
    if not broker_answers:
        found.append(
            "The broker does not answer: new work is kept in the database and sent again "
            "once the broker is back."
        )
    if not any(state.alive for state in workers):
        found.append(
            "No worker is alive: imports and webhook deliveries wait until one starts. "
            "Start one with `product-importer worker`."
        )
        return found
    for queue, work in QUEUE_WORK.items():
        if alive_consumers(workers, queue) == 0:
            found.append(
                f"No alive worker consumes the {queue} queue: {work} wait until one does. "
                f"Start one with `product-importer worker --queues {queue}`."
            )
    return found
