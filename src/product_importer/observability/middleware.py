"""Counts HTTP requests by route template, so labels stay bounded whatever paths clients send."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from product_importer.observability import metrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"
SKIPPED_PATHS = frozenset({"/metrics"})  # a scrape should not count itself


class HttpMetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware), so streamed responses pass through untouched; the
    time recorded is to the response's start, so an SSE stream does not count its whole life."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in SKIPPED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        def record(status_code: int) -> None:
            nonlocal recorded
            recorded = True
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            metrics.record_request(method, route, status_code, time.perf_counter() - started)

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except BaseException:
            if not recorded:
                record(500)
            raise
