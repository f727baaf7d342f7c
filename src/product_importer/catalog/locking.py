"""One import at a time per catalogue, across threads, processes and machines.

PostgreSQL: a session advisory lock, released by the server if the holder dies.
SQLite: an exclusive lock on a file beside the database, released by the OS if the holder dies.
"""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from product_importer.db import Database

ADVISORY_LOCK_ID = 7_246_012
_thread_lock = threading.Lock()  # flock is per process; threads of one process queue here


class CatalogueLock:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: Any = None
        self._file: Any = None
        self._thread_held = False

    def try_acquire(self) -> bool:
        if self._database.dialect == "postgresql":
            connection = self._database.engine.connect()
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID}
            ).scalar()
            connection.commit()
            if got:
                self._connection = connection
                return True
            connection.close()
            return False
        if not _thread_lock.acquire(blocking=False):
            return False
        self._thread_held = True
        handle = self._lock_path().open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            self._thread_held = False
            _thread_lock.release()
            return False
        self._file = handle
        return True

    def acquire_within(self, seconds: float) -> bool:
        """Try for up to `seconds`: the lock is also held for a moment by the periodic recovery
        checks, and by an import between recording `completed` and letting go, which a request
        sent at once must not take for a running import."""
        deadline = time.monotonic() + seconds
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _lock_path(self) -> Path:
        database = self._database.engine.url.database or "memory"
        return Path(f"{database}.import-lock")

    def release(self) -> None:
        if self._connection is not None:
            self._connection.execute(
                text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID}
            )
            self._connection.commit()
            self._connection.close()
            self._connection = None
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._thread_held:
            self._thread_held = False
            _thread_lock.release()
