"""The periodic sweep that keeps the audit log to its retention period."""

from __future__ import annotations

import logging

from product_importer.audit import service as audit
from product_importer.tasks import registry
from product_importer.tasks.registry import TaskContext

log = logging.getLogger(__name__)


@registry.periodic("audit.prune", every_seconds=3600)
def prune(context: TaskContext) -> None:
    with context.database.session() as session:
        removed = audit.prune(session, context.settings.audit_retention_days)
    if removed:
        log.info("pruned %d old audit entries", removed)
