"""Periodic work of the system domain."""

from __future__ import annotations

import logging

from product_importer.system import service
from product_importer.tasks.registry import TaskContext, periodic

log = logging.getLogger(__name__)


@periodic("system.prune_workers", every_seconds=3600)
def prune_workers(context: TaskContext) -> None:
    with context.database.session() as session:
        pruned = service.prune(session)
    if pruned:
        log.info("forgot %d worker(s) not seen for a day", pruned)
