"""Periodic work in distributed mode: run by one worker of the fleet at a time.

Every worker runs a scheduler thread, but only the one holding the scheduler lock runs the
periodic tasks; the others wait to take over. On PostgreSQL the lock is a session advisory lock
on a connection kept for that purpose, so the server releases it the moment the leader's process
or connection dies; on SQLite (one machine) it is an exclusive lock on a file beside the database.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from product_importer.db import Database
from product_importer.tasks.registry import TaskContext, all_periodic, run_periodic

log = logging.getLogger(__name__)

SCHEDULER_LOCK_ID = 7_246_013
TICK_SECONDS = 0.5


class SchedulerLock:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: Any = None
        self._file: Any = None

    def try_acquire(self) -> bool:
        if self._database.dialect == "postgresql":
            connection = self._database.engine.connect()
            try:
                got = connection.execute(
                    text("SELECT pg_try_advisory_lock(:id)"), {"id": SCHEDULER_LOCK_ID}
                ).scalar()
                connection.commit()
            except SQLAlchemyError:
                connection.close()
                raise
            if got:
                self._connection = connection
                return True
            connection.close()
            return False
        path = Path(f"{self._database.engine.url.database or 'memory'}.scheduler-lock")
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        """False once the connection holding the advisory lock is gone (and the lock with it)."""
        if self._connection is None:
            return self._file is not None
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except SQLAlchemyError:
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": SCHEDULER_LOCK_ID}
                )
                self._connection.commit()
            except SQLAlchemyError:
                pass  # the connection is gone, and the lock with it
            self._drop()
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def _drop(self) -> None:
        try:
            self._connection.invalidate()
            self._connection.close()
        except SQLAlchemyError:
            pass
        self._connection = None


class FleetScheduler:
    """Runs `registry.all_periodic()` on their schedules while this process is the leader.

    A new leader runs every periodic task at once, as the embedded scheduler does at start-up,
    so whatever the previous leader left (orphaned jobs, due retries) is picked up at once.
    """

    def __init__(self, context: TaskContext) -> None:
        self._context = context
        self._lock = SchedulerLock(context.database)
        self._thread = threading.Thread(target=self._run, name="pi-fleet-scheduler", daemon=True)
        self.leading = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = 10) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = self._context.stopping
        due: dict[str, float] = {}
        try:
            while not stopping.is_set():
                if not self._lead():
                    due.clear()
                    stopping.wait(2 * TICK_SECONDS)
                    continue
                now = time.monotonic()
                for spec in all_periodic():
                    if due.get(spec.name, 0.0) <= now and not stopping.is_set():
                        due[spec.name] = now + spec.every_seconds
                        run_periodic(self._context, spec)
                stopping.wait(TICK_SECONDS)
        finally:
            self._lock.release()
            self.leading.clear()

    def _lead(self) -> bool:
        try:
            if self.leading.is_set():
                if self._lock.still_held():
                    return True
                log.warning("lost the scheduler lock; another worker takes over periodic work")
                self.leading.clear()
            if self._lock.try_acquire():
                log.info("this worker now runs the periodic work of the fleet")
                self.leading.set()
                return True
        except SQLAlchemyError as exc:
            log.warning("scheduler lock: database unavailable (%s)", type(exc).__name__)
        return False
