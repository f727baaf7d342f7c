"""The periodic sweep that drops expired sign-in rate-limit counters."""

from __future__ import annotations

import logging

from product_importer.auth import ratelimit
from product_importer.tasks import registry
from product_importer.tasks.registry import TaskContext

log = logging.getLogger(__name__)


@registry.periodic("auth.prune_rate_limits", every_seconds=3600)
def prune_rate_limits(context: TaskContext) -> None:
    counters = ratelimit.prune_expired(context.database)
    if counters:
        log.info("pruned %d expired rate-limit counters", counters)
