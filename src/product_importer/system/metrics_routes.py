"""`GET /metrics`: the Prometheus text format, for a scraper holding an API token."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from product_importer.auth.dependencies import Viewer
from product_importer.observability import metrics

router = APIRouter(tags=["system"])


@router.get("/metrics", response_class=Response)
def read_metrics(request: Request, _principal: Viewer) -> Response:
    """Prometheus metrics: imports, webhook deliveries, HTTP requests and queue depths.

    Send an API token (`Authorization: Bearer ...`) as for the API."""
    extra = getattr(request.app.state, "metrics_collectors", [])
    body = generate_latest(metrics.scrape_registry(extra))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
