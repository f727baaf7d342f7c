"""/metrics of the in-process app on both databases, after real imports, deliveries and requests.

The metrics live in the process, so every test compares a scrape before with one after."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from product_importer.db import Database
from product_importer.imports.models import ImportJob
from product_importer.observability import metrics
from tests.factories import make_token, make_webhook
from tests.imports.conftest import run_import
from tests.observability.conftest import delta, scrape, value
from tests.webhooks.receiver import Receiver, Reply
from tests.webhooks.test_delivery import record, settled


def test_metrics_need_credentials_and_take_an_api_token(
    anon_client: TestClient, database: Database
) -> None:
    refused = anon_client.get("/metrics")
    assert refused.status_code == 401
    assert "product_importer" not in refused.text
    wrong = anon_client.get("/metrics", headers={"Authorization": "Bearer pi_not-a-token"})
    assert wrong.status_code == 401
    token = make_token(database)
    scraped = anon_client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200
    assert "# TYPE product_importer_imports_total counter" in scraped.text


def test_a_completed_import_is_counted_with_rows_duration_and_speed(client: TestClient) -> None:
    before = scrape(client)
    job = run_import(client, b"sku,name\nA-1,Chair\nB-2,Table\nC-3,\n")
    assert job["status"] == "completed"
    after = scrape(client)
    imports = "product_importer_imports_total"
    assert delta(before, after, imports, outcome="completed", dry_run="false") == 1
    assert delta(before, after, imports, outcome="failed", dry_run="false") == 0
    rows = "product_importer_import_rows_total"
    assert delta(before, after, rows, result="created") == 2
    assert delta(before, after, rows, result="rejected") == 1
    assert delta(before, after, rows, result="updated") == 0
    duration = "product_importer_import_duration_seconds"
    assert delta(before, after, f"{duration}_count", outcome="completed") == 1
    assert delta(before, after, f"{duration}_sum", outcome="completed") > 0
    assert delta(before, after, "product_importer_import_rows_per_second_count") == 1

    again = run_import(client, b"sku,name\nA-1,Chair\nB-2,Desk\n")
    assert again["status"] == "completed"
    last = scrape(client)
    assert delta(after, last, rows, result="unchanged") == 1
    assert delta(after, last, rows, result="updated") == 1


def test_an_import_is_counted_before_anyone_can_see_it_ended(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count is taken while the job's final state is not committed yet: a client that sees
    `completed` and then scrapes /metrics always finds the import counted (a flake in CI)."""
    seen_by_others: list[str] = []
    count = metrics.record_import

    def counting(job: ImportJob) -> None:
        with database.session() as other:  # another connection: sees only what is committed
            seen = other.get(ImportJob, job.id)
            assert seen is not None
            seen_by_others.append(seen.status)
        count(job)

    monkeypatch.setattr(metrics, "record_import", counting)
    job = run_import(client, b"sku,name\nA-1,Chair\n")
    assert job["status"] == "completed"
    assert seen_by_others == ["running"]


def test_failed_and_dry_run_imports_are_told_apart(client: TestClient) -> None:
    before = scrape(client)
    failed = run_import(client, b"sku,name\n\n")
    assert failed["status"] == "failed"
    dry = run_import(client, b"sku,name\nD-1,Lamp\n", dry_run=True)
    assert dry["status"] == "completed"
    after = scrape(client)
    imports = "product_importer_imports_total"
    assert delta(before, after, imports, outcome="failed", dry_run="false") == 1
    assert delta(before, after, imports, outcome="completed", dry_run="true") == 1
    assert delta(before, after, imports, outcome="completed", dry_run="false") == 0
    # Neither wrote a row: rows and speed are those of real, completed imports only.
    assert delta(before, after, "product_importer_import_rows_total", result="created") == 0
    assert delta(before, after, "product_importer_import_rows_per_second_count") == 0
    duration = "product_importer_import_duration_seconds_count"
    assert delta(before, after, duration, outcome="failed") == 1


def test_a_delivery_is_counted_with_the_receivers_answer_time(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    receiver.default = Reply(delay=0.2)
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    before = scrape(client)
    record(database)
    receiver.wait_for(1)
    [item] = settled(client, endpoint_id)
    assert item["status"] == "succeeded"
    after = scrape(client)
    deliveries = "product_importer_webhook_deliveries_total"
    assert delta(before, after, deliveries, outcome="delivered") == 1
    latency = "product_importer_webhook_delivery_seconds"
    assert delta(before, after, f"{latency}_count") == 1
    assert delta(before, after, f"{latency}_sum") >= 0.2
    assert delta(before, after, f"{latency}_bucket", le="0.1") == 0


def test_a_500_answer_counts_a_retry_then_the_delivery(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.script(Reply(status=500, body=b"down"))
    before = scrape(client)
    record(database)
    receiver.wait_for(2)
    [item] = settled(client, endpoint_id)
    assert [attempt["status_code"] for attempt in item["attempts"]] == [500, 200]
    after = scrape(client)
    deliveries = "product_importer_webhook_deliveries_total"
    assert delta(before, after, deliveries, outcome="will_retry") == 1
    assert delta(before, after, deliveries, outcome="delivered") == 1
    assert delta(before, after, "product_importer_webhook_delivery_seconds_count") == 2


def test_a_410_counts_the_endpoint_disabled(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.default = Reply(status=410, body=b"")
    before = scrape(client)
    record(database)
    receiver.wait_for(1)
    settled(client, endpoint_id)
    after = scrape(client)
    deliveries = "product_importer_webhook_deliveries_total"
    assert delta(before, after, deliveries, outcome="endpoint_disabled") == 1


def test_requests_are_counted_by_route_template_never_by_raw_path(client: TestClient) -> None:
    before = scrape(client)
    for job_id in (101, 102, 103):
        assert client.get(f"/api/imports/{job_id}").status_code == 404
    assert client.get("/no/such/page/" + "x" * 50).status_code == 404
    assert client.request("BREW", "/api/imports").status_code == 405
    assert client.get("/healthz").status_code == 200
    after = scrape(client)
    requests = "product_importer_http_requests_total"
    template = "/api/imports/{job_id}"
    assert delta(before, after, requests, method="GET", route=template, status="4xx") == 3
    assert delta(before, after, requests, method="GET", route="(unmatched)", status="4xx") == 1
    assert delta(before, after, requests, method="OTHER", route="/api/imports", status="4xx") == 1
    assert delta(before, after, requests, method="GET", route="/healthz", status="2xx") == 1
    label_values = {label for _name, labels in after for _key, label in labels}
    assert not [label for label in label_values if "101" in label or "xxxx" in label]
    # A scrape does not count itself.
    assert value(after, requests, method="GET", route="/metrics", status="2xx") == 0
    latency = "product_importer_http_request_duration_seconds_count"
    assert delta(before, after, latency, method="GET", route="/healthz") == 1


def test_a_stream_is_timed_to_its_first_byte(client: TestClient) -> None:
    job = run_import(client, b"sku,name\nS-1,Stool\n")
    before = scrape(client)
    started = time.perf_counter()
    stream = client.get(f"/api/imports/{job['id']}/events")
    assert stream.status_code == 200
    elapsed = time.perf_counter() - started
    after = scrape(client)
    name = "product_importer_http_request_duration_seconds"
    route = "/api/imports/{job_id}/events"
    assert delta(before, after, f"{name}_count", method="GET", route=route) == 1
    assert delta(before, after, f"{name}_sum", method="GET", route=route) <= elapsed


def test_queue_depths_are_scraped_from_the_database(client: TestClient, database: Database) -> None:
    name = "product_importer_queue_depth"
    before = scrape(client)
    for queue in ("imports", "webhooks", "default"):
        labels = {"queue": queue, "source": "database", "kind": "waiting"}
        assert (name, frozenset(labels.items())) in before
    # Embedded mode has no broker: its series is left out, not reported as 0.
    assert not [key for key in before if key[0] == name and ("source", "broker") in key[1]]
    with database.session() as session:  # waits: nothing sends it to a worker
        session.add(ImportJob(filename="waiting.csv", status="queued"))
    after = scrape(client)
    assert delta(before, after, name, queue="imports", source="database", kind="waiting") == 1
