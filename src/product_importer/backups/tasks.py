"""The daily backup in embedded mode, run by the scheduler that runs every periodic task.

In distributed mode the web processes and workers may each have a `PRODUCT_IMPORTER_HOME` of
their own, on machines of their own: no folder is the obvious home of the fleet's backups, so
scheduling them is left to the operator (README, "Backups and restore").
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from product_importer.backups import schedule, service
from product_importer.backups.errors import BackupBusy
from product_importer.db import utcnow
from product_importer.tasks.registry import TaskContext, periodic

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 30.0
# When this process first looked at each backups folder that held no backup yet.
_watching_since: dict[str, datetime] = {}
# The daily backup being written, if any (tests wait for it).
running: threading.Thread | None = None


@periodic("backups.daily", every_seconds=CHECK_EVERY_SECONDS)
def daily_backup(context: TaskContext) -> None:
    settings = context.settings
    if not settings.backup_enabled or settings.distributed:
        return
    folder = service.folder(settings)
    now = utcnow()
    since = folder.newest_attempt() or _watching_since.setdefault(str(folder.path), now)
    if not schedule.is_due(now.astimezone(), settings.backup_time, since):
        return
    try:
        reservation = service.reserve(settings, "scheduled")
    except BackupBusy:
        log.info("the daily backup waits: another backup is being written")
        return
    # On a thread of its own: a large catalogue takes a minute or more, which the other
    # periodic work (recovery at start-up, retries due) should not wait for.
    global running
    running = threading.Thread(
        target=service.finish,
        args=(reservation, settings, context.database),
        name="pi-backup",
        daemon=True,
    )
    running.start()
