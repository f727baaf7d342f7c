"""Prometheus metrics, recorded where an outcome is known, in the process that ran the work.

Imports and webhook deliveries are counted by whichever process runs them: `serve` in embedded
mode, each `worker` in distributed mode (scrape the workers' `--metrics-port` too). HTTP
requests are counted by the web processes. Queue depths are read at scrape time from a source
given to `QueueDepthCollector`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from product_importer.observability import metrics_dir


class EndedImport(Protocol):
    """What an ended import job tells the metrics (the imports package's job row has it)."""

    @property
    def status(self) -> str: ...

    @property
    def dry_run(self) -> bool: ...

    @property
    def started_at(self) -> datetime | None: ...

    @property
    def finished_at(self) -> datetime | None: ...

    @property
    def rows_processed(self) -> int | None: ...

    @property
    def rows_created(self) -> int | None: ...

    @property
    def rows_updated(self) -> int | None: ...

    @property
    def rows_unchanged(self) -> int | None: ...

    @property
    def rows_rejected(self) -> int | None: ...


log = logging.getLogger(__name__)

PREFIX = "product_importer"

IMPORTS = Counter(
    f"{PREFIX}_imports",
    'Import jobs that ended, by outcome; dry runs are labelled dry_run="true".',
    ["outcome", "dry_run"],
)
IMPORT_DURATION = Histogram(
    f"{PREFIX}_import_duration_seconds",
    "Time from an import's start to its end (dry runs excluded).",
    ["outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
IMPORT_ROWS = Counter(
    f"{PREFIX}_import_rows",
    "Rows of completed imports by result (dry runs excluded).",
    ["result"],
)
IMPORT_ROWS_PER_SECOND = Histogram(
    f"{PREFIX}_import_rows_per_second",
    "Rows read per second over a completed import, start to end (dry runs excluded).",
    buckets=(100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000),
)
WEBHOOK_DELIVERIES = Counter(
    f"{PREFIX}_webhook_deliveries",
    "Webhook delivery attempts by what came of them.",
    ["outcome"],
)
WEBHOOK_LATENCY = Histogram(
    f"{PREFIX}_webhook_delivery_seconds",
    "Time a receiver took to answer a delivery attempt (attempts with an HTTP answer).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
)
HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests by method, route template and status class.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time until the response starts (streams such as SSE count to their first byte).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def record_import(job: EndedImport) -> None:
    """Count an import that has just ended (completed, failed or cancelled)."""
    outcome = job.status
    IMPORTS.labels(outcome=outcome, dry_run="true" if job.dry_run else "false").inc()
    if job.dry_run:
        return  # a dry run writes nothing: its rows and speed would mislead the real figures
    seconds = None
    if job.started_at is not None and job.finished_at is not None:
        seconds = max(0.0, (job.finished_at - job.started_at).total_seconds())
        IMPORT_DURATION.labels(outcome=outcome).observe(seconds)
    if outcome != "completed":
        return  # nothing of a failed or cancelled import reached the catalogue
    for result, count in (
        ("created", job.rows_created),
        ("updated", job.rows_updated),
        ("unchanged", job.rows_unchanged),
        ("rejected", job.rows_rejected),
    ):
        IMPORT_ROWS.labels(result=result).inc(count or 0)
    if seconds:
        IMPORT_ROWS_PER_SECOND.observe((job.rows_processed or 0) / seconds)


def record_delivery(result: str, latency_seconds: float | None) -> None:
    """Count a delivery attempt by what came of it (the webhooks package decides the word)."""
    if latency_seconds is not None:
        WEBHOOK_LATENCY.observe(latency_seconds)
    WEBHOOK_DELIVERIES.labels(outcome=result).inc()


def record_request(method: str, route: str, status_code: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method=method, route=route, status=f"{status_code // 100}xx").inc()
    HTTP_LATENCY.labels(method=method, route=route).observe(seconds)


# --- queue depths ---------------------------------------------------------------------------

QueueDepths = Mapping[str, Mapping[str, int | None]]


class QueueDepthCollector(Collector):
    """Emits `product_importer_queue_depth{queue, source, kind}` at each scrape.

    `source()` returns, per queue, depths keyed `"<source>/<kind>"`: for example
    `{"imports": {"broker/messages": 0, "database/queued": 2, "database/running": 1}}`. A key
    without a slash counts as `database/<key>`. None means unknown (no broker, or it did not
    answer): that series is left out rather than reported as 0. A source that raises is logged
    and the scrape goes on without queue depths.
    """

    def __init__(self, source: Callable[[], QueueDepths]) -> None:
        self._source = source

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [self._family()]  # no call to the source when the collector is registered

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        try:
            depths = self._source()
        except Exception:
            log.warning("queue depths unavailable for /metrics", exc_info=True)
            depths = {}
        for queue, values in depths.items():
            for key, value in values.items():
                if value is None:
                    continue
                source, _, kind = key.rpartition("/")
                family.add_metric([queue, source or "database", kind], float(value))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_queue_depth",
            "Work waiting or running per queue, as the broker and the database see it.",
            labels=["queue", "source", "kind"],
        )


# --- exposition -----------------------------------------------------------------------------


def scrape_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """The registry /metrics renders: this process's metrics, or every web process's in
    multiprocess mode, plus collectors read at scrape time (queue depths)."""
    if metrics_dir.enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    elif not extra:
        return REGISTRY
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return registry


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        yield from self._registry.collect()
