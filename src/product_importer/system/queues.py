"""How much work waits in each queue, as the broker and as the database see it.

`queue_depths` never raises for the broker: an unreachable broker gives `broker_messages=None`,
so callers (GET /api/system, the Prometheus collector) can always show the database's view.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from product_importer.catalog.models import DeleteAllJob
from product_importer.db import Database, utcnow
from product_importer.imports.models import ImportJob
from product_importer.settings import Settings
from product_importer.tasks.registry import QUEUES
from product_importer.webhooks.models import Delivery

log = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2.0
# Every open System page, every page's banner poll and every Prometheus scrape asks for the
# broker's counts; within this many seconds they share one answer instead of one connection each.
BROKER_COUNTS_TTL_SECONDS = 2.0
_counts_lock = threading.Lock()
_counts_cache: dict[tuple[str, str], tuple[float, dict[str, int] | None]] = {}


@dataclass(frozen=True)
class QueueDepth:
    """One queue's backlog.

    - `queue`: `imports`, `webhooks` or `default` (without the prefix).
    - `broker_queue`: its name on the broker (with `PRODUCT_IMPORTER_QUEUE_PREFIX`); None in
      embedded mode.
    - `broker_messages`: messages waiting in the broker (not those a worker holds); None in
      embedded mode or when the broker did not answer.
    - `waiting`: jobs the database holds for this queue that have not started: queued imports
      and delete-all jobs; pending webhook deliveries; 0 for `default` (its periodic work
      waits nowhere).
    - `due`: of `waiting`, how many may run now (deliveries whose next attempt time has come);
      None for queues whose jobs all run as soon as a worker is free.
    - `running`: jobs running now (imports and delete-all jobs); None where not recorded.
    """

    queue: str
    broker_queue: str | None
    broker_messages: int | None
    waiting: int
    due: int | None
    running: int | None


def queue_depths(settings: Settings, database: Database) -> list[QueueDepth]:
    """The three queues in a fixed order: imports, webhooks, default."""
    broker = broker_message_counts(settings)
    with database.session() as session:
        seen = _database_view(session, utcnow())
    names = _broker_names(settings)
    return [
        QueueDepth(
            queue=queue,
            broker_queue=names.get(queue),
            broker_messages=broker.get(queue) if broker is not None else None,
            waiting=seen[queue][0],
            due=seen[queue][1],
            running=seen[queue][2],
        )
        for queue in QUEUES
    ]


def _broker_names(settings: Settings) -> dict[str, str]:
    if not settings.broker_url:
        return {}
    from product_importer.tasks.celery_app import queue_name

    return {queue: queue_name(settings, queue) for queue in QUEUES}


def broker_message_counts(settings: Settings) -> dict[str, int] | None:
    """Messages waiting per queue on the broker (Redis or RabbitMQ); None when there is no
    broker or it does not answer within BROKER_TIMEOUT_SECONDS. Answers are shared for
    BROKER_COUNTS_TTL_SECONDS."""
    if not settings.broker_url:
        return None
    key = (settings.broker_url, settings.queue_prefix)
    with _counts_lock:  # one asker at a time; the others take its fresh answer
        cached = _counts_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < BROKER_COUNTS_TTL_SECONDS:
            return cached[1]
        counts = _ask_broker(settings)
        _counts_cache[key] = (time.monotonic(), counts)
        return counts


def _ask_broker(settings: Settings) -> dict[str, int] | None:
    assert settings.broker_url is not None
    from kombu.connection import Connection
    from kombu.exceptions import ChannelError

    counts: dict[str, int] = {}
    try:
        with Connection(  # type: ignore[no-untyped-call]
            settings.broker_url,
            connect_timeout=BROKER_TIMEOUT_SECONDS,
            transport_options={
                "socket_timeout": BROKER_TIMEOUT_SECONDS,
                "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
            },
        ) as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
            for queue, name in _broker_names(settings).items():
                # A failed passive declare closes the channel (AMQP), so one channel per queue.
                channel = connection.channel()
                try:
                    counts[queue] = int(channel.queue_declare(queue=name, passive=True)[1])
                except ChannelError:
                    counts[queue] = 0  # never declared: no worker or sender used it yet
                finally:
                    with contextlib.suppress(Exception):  # the broker closed it already
                        channel.close()
    except Exception as exc:
        log.warning("queue depths: the broker does not answer (%s)", type(exc).__name__)
        return None
    return counts


def _database_view(
    session: Session, now: datetime
) -> dict[str, tuple[int, int | None, int | None]]:
    """(waiting, due, running) per queue, from the job tables."""
    imports = dict(
        session.execute(
            select(ImportJob.status, func.count())
            .where(ImportJob.status.in_(("queued", "running")))
            .group_by(ImportJob.status)
        ).all()
    )
    deletes = dict(
        session.execute(
            select(DeleteAllJob.status, func.count())
            .where(DeleteAllJob.status.in_(("queued", "running")))
            .group_by(DeleteAllJob.status)
        ).all()
    )
    pending = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.status == "pending")
    )
    due = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
    )
    return {
        "imports": (
            imports.get("queued", 0) + deletes.get("queued", 0),
            None,
            imports.get("running", 0) + deletes.get("running", 0),
        ),
        "webhooks": (int(pending or 0), int(due or 0), None),
        "default": (0, None, None),  # none of its work waits in the database
    }


def queue_depth_metrics(settings: Settings, database: Database) -> dict[str, dict[str, int | None]]:
    """`queue_depths` in the shape of observability.metrics.QueueDepthCollector."""
    return {
        depth.queue: {
            "broker/messages": depth.broker_messages,
            "database/waiting": depth.waiting,
            "database/due": depth.due,
            "database/running": depth.running,
        }
        for depth in queue_depths(settings, database)
    }
