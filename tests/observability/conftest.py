"""Metrics tests read /metrics as Prometheus would and compare before and after."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

# The webhooks tests' settings (private targets allowed, fast retries) and receiver.
from tests.webhooks.conftest import receiver, settings  # noqa: F401 (fixtures)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


# The distributed tests run a real fleet (PostgreSQL, Redis, web and worker processes).
from tests.fleet import fleet_fixture, pg_fixture, redis_url_fixture  # noqa: E402, F401
