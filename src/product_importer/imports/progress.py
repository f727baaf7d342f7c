"""Live progress of running imports.

A running import publishes its progress to an in-process board (read by the API and the SSE
stream of the same process, several times a second) and, at most twice a second, to its row in
`import_jobs`, which every process can read. While a SQLite merge holds the catalogue's write
lock, only the board is updated: a write from another connection would wait for that lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select, update

from product_importer.db import Database, utcnow
from product_importer.imports.models import ImportJob

READ_SHARE = 90.0  # percent of the bar for reading and staging; the merge takes the rest
DB_WRITE_INTERVAL = 0.5


class ImportCancelled(Exception):
    """Someone asked to cancel this import."""


@dataclass(frozen=True)
class Snapshot:
    phase: str
    percent: float
    bytes_read: int
    rows_processed: int
    rows_rejected: int
    version: int


class ProgressBoard:
    """Latest progress of the imports running in this process, keyed by database and job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int], Snapshot] = {}

    def put(self, key: tuple[str, int], snapshot: Snapshot) -> None:
        with self._lock:
            self._entries[key] = snapshot

    def get(self, key: tuple[str, int]) -> Snapshot | None:
        with self._lock:
            return self._entries.get(key)

    def drop(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._entries.pop(key, None)


BOARD = ProgressBoard()


def board_key(database: Database, job_id: int) -> tuple[str, int]:
    return (database.engine.url.render_as_string(hide_password=True), job_id)


class ProgressReporter:
    def __init__(self, database: Database, job_id: int, total_bytes: int) -> None:
        self._database = database
        self._job_id = job_id
        self._key = board_key(database, job_id)
        self._total = max(total_bytes, 1)
        self._snapshot = Snapshot("Reading and validating", 0.0, 0, 0, 0, 0)
        self._last_write = 0.0
        self.db_writes_blocked = False
        BOARD.put(self._key, self._snapshot)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def _publish(self, **changes: Any) -> None:
        percent = max(self._snapshot.percent, changes.pop("percent", self._snapshot.percent))
        self._snapshot = replace(
            self._snapshot,
            percent=min(percent, 99.0),
            version=self._snapshot.version + 1,
            **changes,
        )
        BOARD.put(self._key, self._snapshot)
        now = time.monotonic()
        if now - self._last_write >= DB_WRITE_INTERVAL:
            self._last_write = now
            self._sync_database()

    def phase(self, name: str) -> None:
        self._last_write = 0.0  # a new phase is worth writing at once
        self._publish(phase=name)

    def reading(
        self,
        bytes_read: int,
        rows_processed: int,
        rows_rejected: int,
        fraction: float | None = None,
    ) -> None:
        """Progress of the read: by bytes, or by `fraction` (rows of a workbook's sheet)."""
        done = bytes_read / self._total if fraction is None else fraction
        self._publish(
            bytes_read=bytes_read,
            rows_processed=rows_processed,
            rows_rejected=rows_rejected,
            percent=READ_SHARE * min(done, 1.0),
        )

    def tick(self) -> None:
        """Nothing new to say, but the heartbeat goes on and a cancel is noticed."""
        self._publish()

    def merging(self, fraction: float) -> None:
        self._publish(percent=READ_SHARE + (99.0 - READ_SHARE) * fraction)

    def _sync_database(self) -> None:
        """Write progress (unless the catalogue lock is ours) and honour a cancel request."""
        snap = self._snapshot
        with self._database.session() as session:
            if not self.db_writes_blocked:
                session.execute(
                    update(ImportJob)
                    .where(ImportJob.id == self._job_id)
                    .values(
                        phase=snap.phase,
                        percent=snap.percent,
                        bytes_read=snap.bytes_read,
                        rows_processed=snap.rows_processed,
                        rows_rejected=snap.rows_rejected,
                        heartbeat_at=utcnow(),
                    )
                )
            cancel = session.scalar(
                select(ImportJob.cancel_requested).where(ImportJob.id == self._job_id)
            )
        if cancel:
            raise ImportCancelled

    def close(self) -> None:
        BOARD.drop(self._key)
