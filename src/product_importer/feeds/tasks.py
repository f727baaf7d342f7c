"""Feed work for the dispatch seam: a run, and the scheduler that records due runs.

The scheduler runs where every periodic task runs: in the server in embedded mode, and on the
one worker that leads the fleet in distributed mode. Each due time is claimed in the database
(feeds.service.claim_due), so even two schedulers at once record one run.
"""

from __future__ import annotations

from product_importer.db import utcnow
from product_importer.feeds import runs, service
from product_importer.tasks.registry import TaskContext, periodic, task

CHECK_EVERY_SECONDS = 5.0


@task(service.RUN_TASK, queue="default")
def run(context: TaskContext, run_id: int) -> None:
    runs.execute(context.database, context.settings, run_id, context.stopping)


@periodic("feeds.schedule", every_seconds=CHECK_EVERY_SECONDS)
def schedule_due(context: TaskContext) -> None:
    with context.database.session() as session:
        service.claim_due(session, utcnow())
    runs.settle(context.database)
