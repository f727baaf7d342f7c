"""GET /api/system: the fleet's workers, queue depths and what is wrong with them."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from fastapi import APIRouter, Depends

from product_importer import __version__
from product_importer.auth.dependencies import AppSettings, DbSession, Viewer, get_database
from product_importer.db import Database, utcnow
from product_importer.system import queues as system_queues
from product_importer.system import service
from product_importer.system.schemas import QueueRead, SystemRead, WorkerRead

router = APIRouter(prefix="/api/system", tags=["system"])


# A query parameter whose name holds one of these carries a credential (`password`,
# `sentinel_password`, `ssl_keyfile_password`, `ssl_keyfile`, `token`, `secret`, ...).
SECRET_WORDS = ("password", "passwd", "secret", "token", "key")


def _secret_name(name: str) -> bool:
    lowered = unquote_plus(name).lower()
    return any(word in lowered for word in SECRET_WORDS)


def _redact_query(query: str) -> str:
    """The query with the value of every credential parameter replaced, the rest as it was."""
    parts = []
    for part in re.split(r"([&;])", query):
        name, equals, _value = part.partition("=")
        parts.append(f"{name}=***" if equals and _secret_name(name) else part)
    return "".join(parts)


def redact_url(url: str) -> str:
    """The URL with its password (in the user part or the query) replaced, for showing to
    users."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            user = parts.username or ""
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            parts = parts._replace(netloc=f"{user}:***@{host}")
        # The fragment too: nothing reads it, but a mistyped `#password=` would show.
        parts = parts._replace(
            query=_redact_query(parts.query), fragment=_redact_query(parts.fragment)
        )
        return urlunsplit(parts)
    except ValueError:
        return "<unparseable URL>"


@router.get("", summary="Workers, queue depths and warnings", response_model=SystemRead)
def read_system(
    _principal: Viewer,
    session: DbSession,
    settings: AppSettings,
    database: Annotated[Database, Depends(get_database)],
) -> SystemRead:
    """Which workers are alive (by their heartbeats), how much work waits per queue in the
    broker and in the database, and plain-sentence warnings such as "no worker is alive"."""
    workers = service.list_workers(session, utcnow())
    depths = system_queues.queue_depths(settings, database)
    return SystemRead(
        mode="distributed" if settings.distributed else "embedded",
        database=database.dialect,
        broker=redact_url(settings.broker_url) if settings.broker_url else None,
        version=__version__,
        heartbeat_seconds=settings.heartbeat_seconds,
        workers=[
            WorkerRead(
                name=state.row.name,
                kind=state.row.kind,
                hostname=state.row.hostname,
                pid=state.row.pid,
                queues=state.row.queues,
                concurrency=state.row.concurrency,
                started_at=state.row.started_at,
                last_heartbeat=state.row.last_seen_at,
                age_seconds=round(state.age_seconds, 1),
                heartbeat_seconds=state.row.heartbeat_seconds,
                alive=state.alive,
                stopped=state.row.stopped_at is not None,
                leader=state.row.leader and state.alive,
                running_tasks=state.row.running_tasks,
            )
            for state in workers
        ],
        workers_alive=sum(1 for state in workers if state.alive),
        queues=[
            QueueRead(
                queue=depth.queue,
                broker_queue=depth.broker_queue,
                broker_messages=depth.broker_messages,
                waiting=depth.waiting,
                due=depth.due,
                running=depth.running,
                alive_consumers=service.alive_consumers(workers, depth.queue),
            )
            for depth in depths
        ],
        warnings=service.warnings(
            settings.distributed,
            workers,
            broker_answers=all(depth.broker_messages is not None for depth in depths),
        ),
    )
