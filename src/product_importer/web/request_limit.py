"""At most N requests at once use the database in one web process; the others wait their turn
in the event loop, holding neither a thread nor a connection.

A request holds its pooled connection from its first query (the sign-in check) to the end of
its response, across the thread hand-offs between dependencies and the endpoint, so bounding
threads does not bound connections. Without this, a burst of requests, or edits waiting for an
import's lock, took every connection and the rest (the import's own progress included) failed
after the pool's 30 s timeout.

Reads and writes take turns from separate shares. A write may wait up to 5 s for a lock an
import's merge holds (db.REQUEST_LOCK_WAIT_MS); with one shared limit, 50 clients' edits waiting
on a PostgreSQL merge held most of the turns and the product list queued behind them (p50 442
ms during the import against 19 ms outside). Writes now wait for one another, never reads.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

# Long-lived streams poll with short sessions of their own and would hold a turn for minutes;
# static files and the health check use no pooled connection of a request.
EXEMPT_SUFFIXES = ("/events",)
EXEMPT_PREFIXES = ("/static/", "/healthz")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def write_share(limit: int) -> int:
    """The turns of `limit` that writes may hold at once: a third, at least one. Writes on
    SQLite take the one write lock in turn anyway; a few at once keep PostgreSQL busy."""
    return max(1, limit // 3)


class RequestLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.writes = write_share(limit)
        self.reads = max(1, limit - self.writes)
        self._turns: dict[bool, asyncio.Semaphore] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path.endswith(EXEMPT_SUFFIXES)
            or path.startswith(EXEMPT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        if self._turns is None:  # made in the serving event loop
            self._turns = {
                True: asyncio.Semaphore(self.reads),
                False: asyncio.Semaphore(self.writes),
            }
        async with self._turns[scope.get("method", "GET") in READ_METHODS]:
            await self.app(scope, receive, send)
