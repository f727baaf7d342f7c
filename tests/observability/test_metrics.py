"""The queue-depth collector, fed by a small real function as `system.queues` will feed it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from product_importer.observability.metrics import QueueDepthCollector, QueueDepths
from tests.observability.conftest import parse, scrape, value


def _depths() -> QueueDepths:
    return {
        "imports": {"broker/messages": 3, "database/queued": 2, "database/running": 1},
        "webhooks": {"broker/messages": None, "pending": 40},
    }


def test_queue_depths_become_gauges_and_unknown_ones_are_left_out() -> None:
    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(_depths))
    text = generate_latest(registry).decode()
    assert "# TYPE product_importer_queue_depth gauge" in text
    samples = parse(text)
    depth = "product_importer_queue_depth"
    assert value(samples, depth, queue="imports", source="broker", kind="messages") == 3
    assert value(samples, depth, queue="imports", source="database", kind="queued") == 2
    assert value(samples, depth, queue="imports", source="database", kind="running") == 1
    assert value(samples, depth, queue="webhooks", source="database", kind="pending") == 40
    assert (
        depth,
        frozenset({"queue": "webhooks", "source": "broker", "kind": "messages"}.items()),
    ) not in samples


def test_a_failing_source_costs_the_queue_depths_only() -> None:
    calls = []

    def broken() -> QueueDepths:
        calls.append(1)
        raise ConnectionError("broker down")

    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(broken))
    assert calls == [], "registering must not call the source"
    text = generate_latest(registry).decode()
    assert calls == [1]
    assert "product_importer_queue_depth{" not in text


def test_the_app_serves_collectors_it_is_given(client: TestClient) -> None:
    app = client.app
    # In place of the app's own queue-depth collector (one family name per scrape).
    app.state.metrics_collectors[:] = [QueueDepthCollector(_depths)]  # type: ignore[attr-defined]
    samples = scrape(client)
    depth = "product_importer_queue_depth"
    assert value(samples, depth, queue="imports", source="broker", kind="messages") == 3
    # The process's own metrics are still there.
    assert any(name == "product_importer_http_requests_total" for name, _ in samples)
