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

from sqlalchemy.exc import SQLAlchemyError

from product_importer.db import Database
from product_importer.system import service
from product_importer.system.service import WorkerIdentity

log = logging.getLogger(__name__)


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
                service.record_stopped(session, self.worker.name)
        except SQLAlchemyError as exc:
            log.warning("heartbeat: could not record that the worker stopped (%s)", exc)

    def beat(self) -> bool:
        """Record one heartbeat; False (and a warning, once per outage) when it did not reach."""
        try:
            with self.database.session() as session:
                service.record_heartbeat(
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
