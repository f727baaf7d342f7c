"""Background work for webhooks: fan-out, delivery per endpoint, and the recovery sweep.

Each task opens short units of work of its own and holds no transaction while waiting on a
receiver. All are idempotent: the database says what is due, and leases say who is on it, so
running one twice, or in two processes, sends nothing twice.
"""

from __future__ import annotations

import logging
import time

from product_importer.db import utcnow
from product_importer.observability import metrics
from product_importer.tasks import registry
from product_importer.tasks.registry import TaskContext
from product_importer.webhooks import delivery, service

log = logging.getLogger(__name__)

# One task delivers to one endpoint for at most this long, then queues itself again behind
# other endpoints' work, so a busy endpoint cannot keep a worker thread to itself. It ends its
# turn at once when an import waits for this worker's thread (TaskContext.import_waiting).
DRAIN_SECONDS = 20.0
DRAIN_MAX_DELIVERIES = 200
SWEEP_SECONDS = 1.0


@registry.task("webhooks.fan_out", queue="webhooks")
def fan_out(context: TaskContext, event_id: int) -> None:
    with context.database.session() as session:
        service.fan_out(session, event_id)


@registry.task("webhooks.deliver", queue="webhooks")
def deliver(context: TaskContext, endpoint_id: int, lease_token: str) -> None:
    """Deliver what is due for one endpoint, one request at a time, while we hold its lease.

    One short transaction per delivery: it stores the attempt, renews the lease and picks the
    next delivery; none is open while the receiver is being waited on.
    """
    settings = context.settings
    deadline = time.monotonic() + DRAIN_SECONDS
    sent = 0
    with context.database.session() as session:
        attempt = service.next_attempt(session, endpoint_id, lease_token, settings)
    while attempt is not None:
        outcome = delivery.send(
            attempt.url,
            attempt.secrets,
            attempt.message_id,
            attempt.body,
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.webhook_allow_private,
        )
        sent += 1
        out_of_turn = (
            time.monotonic() > deadline or sent >= DRAIN_MAX_DELIVERIES or context.import_waiting()
        )
        with context.database.session() as session:
            service.record_attempt(session, attempt, outcome, settings)
            metrics.record_delivery(
                service.attempt_result(session, attempt.delivery_id, attempt.endpoint_id),
                outcome.latency_ms / 1000 if outcome.status_code is not None else None,
            )
            if context.stopping.is_set() or out_of_turn:
                attempt = None
            else:
                attempt = service.next_attempt(session, endpoint_id, lease_token, settings)
            if attempt is None:
                service.release(session, endpoint_id, lease_token)
                if out_of_turn and not context.stopping.is_set():
                    service.schedule_drain(session, endpoint_id)
        if attempt is None:
            return
    with context.database.session() as session:
        service.release(session, endpoint_id, lease_token)


@registry.periodic("webhooks.sweep", every_seconds=SWEEP_SECONDS)
def sweep(context: TaskContext) -> None:
    """Fan out events whose task was lost, and queue deliveries that are due (retries, and
    whatever was pending when the process last stopped)."""
    for event_id in _undispatched(context):
        with context.database.session() as session:
            service.fan_out(session, event_id)
    with context.database.session() as session:
        service.sweep(session, utcnow())


def _undispatched(context: TaskContext) -> list[int]:
    with context.database.session() as session:
        return list(service.undispatched_events(session))


@registry.periodic("webhooks.prune", every_seconds=3600)
def prune(context: TaskContext) -> None:
    with context.database.session() as session:
        removed = service.prune(session, context.settings)
    if removed:
        log.info("pruned %d old webhook deliveries", removed)
