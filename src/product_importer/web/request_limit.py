"""At most N requests at once use the database in one web process; the others wait their turn
in the event loop, holding neither a thread nor a connection.

A request holds its pooled connection from its first query (the sign-in check) to the end of
its response, across the thread hand-offs between dependencies and the endpoint, so bounding
threads does not bound connections. Without this, a burst of requests, or edits waiting for an
import's lock, took every connection and the rest (the import's own progress included) failed
after the pool's 30 s timeout.

Writes to the catalogue take turns from a share of their own. Such a write may wait up to 5 s
for the lock an import's merge holds (db.REQUEST_LOCK_WAIT_MS); with one shared limit, 50
clients' edits waiting on a PostgreSQL merge held most of the turns, and the product list
queued behind them (p50 442 ms during the import, 19 ms over the run). Now they wait for one
another, never for reads or for other writes (a webhook test send, a new feed).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

# Long-lived streams poll with short sessions of their own and would hold a turn for minutes;
# static files and the health check use no pooled connection of a request.
EXEMPT_SUFFIXES = ("/events",)
EXEMPT_PREFIXES = ("/static/", "/healthz")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The API paths whose writes change products, and so may wait for an import's merge: products
# and bulk actions, undo, custom field definitions.
CATALOGUE_PREFIXES = ("/api/products", "/api/changes", "/api/fields")


def catalogue_write_share(limit: int) -> int:
    """The turns of `limit` that catalogue writes may hold at once: a third, at least one.
    Writes on SQLite take the one write lock in turn anyway; a few at once keep PostgreSQL
    busy."""
    return max(1, limit // 3)


def is_catalogue_write(scope: Scope) -> bool:
    return scope.get("method", "GET") not in READ_METHODS and scope.get("path", "").startswith(
        CATALOGUE_PREFIXES
    )


class RequestLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.writes = catalogue_write_share(limit)
        self.others = max(1, limit - self.writes)
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
                True: asyncio.Semaphore(self.writes),
                False: asyncio.Semaphore(self.others),
            }
        async with self._turns[is_catalogue_write(scope)]:
            await self.app(scope, receive, send)
