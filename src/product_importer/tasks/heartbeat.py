"""A thread in every worker process that records, every few seconds, that the worker is alive.

The row lives in the database every web process already reads, so GET /api/system can tell
which workers are alive without asking the broker (see docs/decisions.md).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from product_importer.db import Database, utcnow
from product_importer.tasks.models import WorkerHeartbeat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerIdentity:
    """What a worker process says about itself in every heartbeat."""

    name: str
    kind: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int


def record_heartbeat(
    session: Session,
    worker: WorkerIdentity,
    *,
    interval_seconds: float,
    leader: bool,
    running_tasks: int | None,
    now: datetime | None = None,
) -> WorkerHeartbeat:
    """Insert or refresh this worker's row; only its own process writes it, so no race."""
    now = now or utcnow()
    row = session.get(WorkerHeartbeat, worker.name)
    if row is None:
        row = WorkerHeartbeat(name=worker.name, started_at=now)
        session.add(row)
    row.kind = worker.kind
    row.hostname = worker.hostname
    row.pid = worker.pid
    row.queues = list(worker.queues)
    row.concurrency = worker.concurrency
    row.heartbeat_seconds = interval_seconds
    row.last_seen_at = now
    row.stopped_at = None
    row.leader = leader
    row.running_tasks = running_tasks
    return row


def record_stopped(session: Session, name: str, now: datetime | None = None) -> None:
    row = session.get(WorkerHeartbeat, name)
    if row is not None:
        row.stopped_at = now or utcnow()
        row.leader = False
        row.running_tasks = 0


def embedded_identity(queues: tuple[str, ...], concurrency: int) -> WorkerIdentity:
    host = socket.gethostname()
    pid = os.getpid()
    return WorkerIdentity(
        name=f"embedded@{host}:{pid}",
        kind="embedded",
        hostname=host,
        pid=pid,
        queues=queues,
        concurrency=concurrency,
    )


def celery_identity(name: str, queues: tuple[str, ...], concurrency: int) -> WorkerIdentity:
    return WorkerIdentity(
        name=name,
        kind="celery",
        hostname=socket.gethostname(),
        pid=os.getpid(),
        queues=queues,
        concurrency=concurrency,
    )


class Heartbeat:
    """Upserts the worker's row now and every `interval_seconds`; marks it stopped on `stop`.

    `leading` and `running_tasks` are read at each beat, so the row follows the worker's state.
    A database that does not answer costs a warning, never the thread: beats resume with it.
    """

    def __init__(
        self,
        database: Database,
        worker: WorkerIdentity,
        interval_seconds: float,
        *,
        leading: Callable[[], bool] = lambda: False,
        running_tasks: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.database = database
        self.worker = worker
        self.interval_seconds = interval_seconds
        self._leading = leading
        self._running_tasks = running_tasks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pi-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        # Idempotent: a Celery worker started again after an error signals "ready" again.
        if self._thread.ident is None:
            self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        """Stop beating and record a clean shutdown, so the worker shows as stopped at once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            with self.database.session() as session:
                record_stopped(session, self.worker.name)
        except SQLAlchemyError as exc:
            log.warning("heartbeat: could not record that the worker stopped (%s)", exc)

    def beat(self) -> bool:
        """Record one heartbeat; False (and a warning, once per outage) when it did not reach."""
        try:
            with self.database.session() as session:
                record_heartbeat(
                    session,
                    self.worker,
                    interval_seconds=self.interval_seconds,
                    leader=self._leading(),
                    running_tasks=self._running_tasks(),
                )
        except SQLAlchemyError as exc:
            if not self._failing:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
                log.warning(
                    "heartbeat: database unavailable (%s); retrying every %g s",
                    reason[0] if reason else type(exc).__name__,
                    self.interval_seconds,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("heartbeat: database reachable again")
        self._failing = False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:
                # Anything else is a bug, but the worker must still be seen: log and go on.
                log.exception("heartbeat failed")
            self._stop.wait(self.interval_seconds)
