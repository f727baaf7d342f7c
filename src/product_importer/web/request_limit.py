"""At most N requests at once use the database in one web process; the others wait their turn
in the event loop, holding neither a thread nor a connection.

A request holds its pooled connection from its first query (the sign-in check) to the end of
its response, across the thread hand-offs between dependencies and the endpoint, so bounding
threads does not bound connections. Without this, a burst of requests, or edits waiting for an
import's lock, took every connection and the rest (the import's own progress included) failed
after the pool's 30 s timeout.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

# Long-lived streams poll with short sessions of their own and would hold a turn for minutes;
# static files and the health check use no pooled connection of a request.
EXEMPT_SUFFIXES = ("/events",)
EXEMPT_PREFIXES = ("/static/", "/healthz")


class RequestLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._turns: asyncio.Semaphore | None = None

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
            self._turns = asyncio.Semaphore(self.limit)
        async with self._turns:
            await self.app(scope, receive, send)
