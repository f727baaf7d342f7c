"""Delivery end to end: the real app and workers, a real receiver on loopback, both databases."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from standardwebhooks import Webhook

from product_importer.app import create_app
from product_importer.db import Database, utcnow
from product_importer.tasks.registry import TaskContext
from product_importer.webhooks import delivery, events, schemas, service
from product_importer.webhooks import tasks as webhook_tasks
from product_importer.webhooks.models import Delivery, Endpoint, Event
from tests.factories import make_webhook, sign_in
from tests.webhooks.conftest import webhook_settings
from tests.webhooks.receiver import Receiver, Reply

T = TypeVar("T")
PRODUCT = {"id": 1, "sku": "CHAIR-1", "name": "Chair", "description": "", "active": True}


def wait_until(check: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(0.05)


def record(database: Database, event_type: str = "product.created", **data: Any) -> int:
    with database.session() as session:
        return events.record(session, event_type, data or PRODUCT).id


def deliveries(client: TestClient, endpoint_id: int, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/webhooks/{endpoint_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def settled(client: TestClient, endpoint_id: int) -> list[dict[str, Any]]:
    """The delivery log once nothing in it is pending any more."""

    def check() -> list[dict[str, Any]]:
        items = deliveries(client, endpoint_id)
        return items if items and all(item["status"] != "pending" for item in items) else []

    return wait_until(check)


def endpoint(client: TestClient, endpoint_id: int) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/webhooks/{endpoint_id}").json()
    return body


def assert_one_request_at_a_time(client: TestClient, endpoint_id: int) -> None:
    """Judged from the sender's own attempt log (each attempt is recorded when it ends): the
    receiver's view can briefly overlap while its thread notices that a socket was closed."""
    spans = sorted(
        (end - timedelta(milliseconds=attempt["latency_ms"]), end)
        for item in deliveries(client, endpoint_id)
        for attempt in item["attempts"]
        for end in [datetime.fromisoformat(attempt["attempted_at"])]
    )
    for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= previous_end - timedelta(milliseconds=50)


def test_an_event_is_delivered_signed_after_commit(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url, ["product.created"])
    record(database)
    [request] = receiver.wait_for(1)
    assert request.verified, request.error
    assert request.headers["content-type"] == "application/json"
    assert request.payload["type"] == "product.created"
    assert request.payload["data"] == PRODUCT
    assert "timestamp" in request.payload
    assert len(request.body) < 20_000

    [item] = settled(client, endpoint_id)
    assert item["status"] == "succeeded"
    assert item["webhook_id"] == request.webhook_id
    assert item["event_type"] == "product.created"
    assert item["attempt_count"] == 1
    assert item["attempts"][0]["status_code"] == 200
    assert item["attempts"][0]["response_excerpt"] == '{"received": true}'
    health = endpoint(client, endpoint_id)
    assert health["last_status_code"] == 200
    assert health["last_latency_ms"] >= 0
    assert health["consecutive_failures"] == 0


def test_only_subscribed_enabled_endpoints_get_an_event(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    wanted, receiver.secret = make_webhook(database, receiver.url + "/a", ["import.completed"])
    make_webhook(database, receiver.url + "/b", ["product.deleted"])
    make_webhook(database, receiver.url + "/c", ["import.completed"], enabled=False)
    record(database, "import.completed", id=7, filename="p.csv", rows_processed=3)
    [request] = receiver.wait_for(1)
    assert request.path == "/hook/a"
    assert request.payload["data"]["rows_processed"] == 3
    time.sleep(0.3)
    assert len(receiver.received) == 1
    assert len(settled(client, wanted)) == 1


def test_a_rolled_back_change_sends_nothing(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    make_webhook(database, receiver.url)
    try:
        with database.session() as session:
            events.record(session, "product.created", PRODUCT)
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    time.sleep(1.5)  # past a sweep
    assert receiver.received == []
    with database.session() as session:
        assert session.scalars(select(Event)).all() == []


def test_a_500_is_retried_with_the_same_webhook_id(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.script(Reply(status=500, body=b"database down"))
    record(database)
    first, second = receiver.wait_for(2)
    assert first.verified and second.verified
    assert first.webhook_id == second.webhook_id
    assert first.body == second.body

    [item] = settled(client, endpoint_id)
    assert item["status"] == "succeeded"
    assert [attempt["status_code"] for attempt in item["attempts"]] == [500, 200]
    assert item["attempts"][0]["error"] == "The receiver answered 500"
    assert item["attempts"][0]["response_excerpt"] == "database down"
    assert endpoint(client, endpoint_id)["consecutive_failures"] == 0


def test_after_the_last_retry_the_delivery_is_failed(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.default = Reply(status=503, body=b"")
    record(database)
    [item] = settled(client, endpoint_id)
    # One attempt, then one per delay in the schedule (three in these tests).
    assert item["status"] == "failed"
    assert item["attempt_count"] == 4
    assert item["next_attempt_at"] is None
    assert len(receiver.received) == 4
    health = endpoint(client, endpoint_id)
    assert health["consecutive_failures"] == 4
    assert health["failing_since"] is not None
    assert health["enabled"] is True


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_sets_the_next_attempt(
    tmp_path: Path, database: Database, receiver: Receiver, status: int
) -> None:
    """Without workers running, so the scheduled time can be read before it comes."""
    settings = webhook_settings(tmp_path, database, webhook_retry_schedule_seconds=(0.05, 600))
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.script(Reply(status=status, headers={"Retry-After": "120"}))
    context = TaskContext(database=database, settings=settings)
    record(database)
    webhook_tasks.sweep(context)  # fans the event out and queues nothing (no dispatcher)
    with database.session() as session:
        token = session.scalar(select(Endpoint.lease_token))
    assert token is not None
    webhook_tasks.deliver(context, endpoint_id=endpoint_id, lease_token=token)
    with database.session() as session:
        row = session.scalars(select(Delivery)).one()
        assert row.status == "pending"
        assert row.next_attempt_at is not None
        wait = (row.next_attempt_at - utcnow()).total_seconds()
    assert 100 < wait <= 120


def test_a_redirect_is_not_followed(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.script(Reply(status=302, headers={"Location": receiver.url + "/elsewhere"}))
    record(database)
    [item] = settled(client, endpoint_id)
    assert item["attempts"][0]["status_code"] == 302
    assert "not followed" in item["attempts"][0]["error"]
    assert all(request.path == "/hook" for request in receiver.received)


def test_410_gone_disables_the_endpoint(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.default = Reply(status=410, body=b"gone")
    record(database)
    [item] = settled(client, endpoint_id)
    assert item["status"] == "failed"
    assert item["attempt_count"] == 1
    health = endpoint(client, endpoint_id)
    assert health["enabled"] is False
    assert "410 Gone" in health["disabled_reason"]

    record(database)  # later events are not sent to a disabled endpoint
    time.sleep(1.5)
    assert len(receiver.received) == 1
    assert len(deliveries(client, endpoint_id)) == 1

    response = client.post(
        f"/api/webhooks/{endpoint_id}/deliveries/{item['id']}/redeliver",
    )
    assert response.status_code == 409
    assert client.patch(f"/api/webhooks/{endpoint_id}", json={"enabled": True}).status_code == 200
    health = endpoint(client, endpoint_id)
    assert health["disabled_reason"] is None and health["consecutive_failures"] == 0


def test_an_endpoint_failing_for_days_is_disabled_automatically(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    with database.session() as session:
        session.execute(
            update(Endpoint).values(failing_since=utcnow() - timedelta(days=5, minutes=1))
        )
    receiver.default = Reply(status=500)
    record(database)
    [item] = settled(client, endpoint_id)
    assert item["status"] == "failed"
    assert item["attempt_count"] == 1
    health = endpoint(client, endpoint_id)
    assert health["enabled"] is False
    assert health["disabled_reason"].startswith("Disabled automatically")


def test_a_hanging_receiver_times_out_and_never_slows_the_app(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    hanging_id, _ = make_webhook(database, receiver.url + "/hang")
    healthy = Receiver()
    healthy.start()
    try:
        healthy_id, healthy.secret = make_webhook(database, healthy.url)
        receiver.default = Reply(hang=True)

        took = []
        for number in range(10):
            started = time.perf_counter()
            record(database, id=number, sku=f"SKU-{number}")
            assert client.get("/api/webhooks").status_code == 200
            took.append(time.perf_counter() - started)
        took.sort()
        # Recording the event and answering the API take no part in delivery: waiting on the
        # hanging receiver would cost its 2 s timeout every time. One outlier is allowed for a
        # busy CI machine (seen once: 1.0 s while the other test worker ran browsers).
        assert took[-2] < 0.5, f"request+event times {[round(t, 3) for t in took]} s"
        assert took[-1] < 1.9, f"request+event times {[round(t, 3) for t in took]} s"

        # The healthy endpoint is served while the other hangs.
        healthy.wait_for(10, timeout=10)
        assert all(request.verified for request in healthy.received)

        def timed_out() -> list[dict[str, Any]]:
            items = deliveries(client, hanging_id)
            return [
                attempt
                for item in items
                for attempt in item["attempts"]
                if attempt["error"] == "Timed out after 2 s"
            ]

        attempt = wait_until(timed_out, timeout=15)[0]
        assert 1900 <= attempt["latency_ms"] < 4000
        assert attempt["status_code"] is None
        # One request at a time per endpoint: a slow receiver holds one worker, not all.
        assert_one_request_at_a_time(client, hanging_id)
        assert len(settled(client, healthy_id)) == 10
    finally:
        healthy.stop()


def test_product_changes_through_the_api_stay_fast_while_a_receiver_hangs(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    """The products API records events in its own transaction; delivery happens elsewhere."""
    endpoint_id, receiver.secret = make_webhook(
        database, receiver.url, ["product.created", "product.updated", "product.deleted"]
    )
    receiver.default = Reply(hang=True)
    timings = []
    for number in range(5):
        started = time.perf_counter()
        response = client.post(
            "/api/products", json={"sku": f"HANG-{number}", "name": f"Product {number}"}
        )
        timings.append(time.perf_counter() - started)
        assert response.status_code == 201, response.text
    assert max(timings) < 0.5, timings
    [first] = receiver.wait_for(1)
    assert first.verified, first.error
    assert first.payload["type"] == "product.created"
    assert first.payload["data"]["sku"] == "HANG-0"
    assert {"id", "sku", "name", "description", "active"} <= set(first.payload["data"])
    receiver.released.set()  # let it answer; everything is then delivered, in order per endpoint
    receiver.default = Reply()
    receiver.wait_for(5, timeout=15)
    items = settled(client, endpoint_id)
    assert len(items) == 5


def test_deliveries_per_endpoint_run_one_at_a_time(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.default = Reply(delay=0.05)
    for number in range(12):
        record(database, id=number)
    receiver.wait_for(12)
    assert len({request.webhook_id for request in receiver.received}) == 12
    assert all(item["status"] == "succeeded" for item in settled(client, endpoint_id))
    assert_one_request_at_a_time(client, endpoint_id)


def test_a_restart_delivers_what_was_pending(
    tmp_path: Path, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    # The app is down: an event committed now (e.g. by a CLI import) has nobody to send it.
    record(database, id=1)
    # And a delivery whose worker died mid-request: pending, due, its lease run out.
    record(database, id=2)
    with database.session() as session:
        second = session.scalars(select(Event).order_by(Event.id.desc())).first()
        assert second is not None
        service.fan_out(session, second.id)
        session.execute(
            update(Endpoint).values(
                lease_token="dead-worker", lease_until=utcnow() - timedelta(seconds=1)
            )
        )
    time.sleep(0.3)
    assert receiver.received == []

    settings = webhook_settings(tmp_path, database)
    with TestClient(create_app(settings, database)) as restarted:
        receiver.wait_for(2)
        sign_in(restarted, database, "bob")
        items = settled(restarted, endpoint_id)
    assert sorted(request.payload["data"]["id"] for request in receiver.received) == [1, 2]
    assert [item["status"] for item in items] == ["succeeded", "succeeded"]


def test_fan_out_and_delivery_are_idempotent(
    tmp_path: Path, database: Database, receiver: Receiver
) -> None:
    context = TaskContext(database=database, settings=webhook_settings(tmp_path, database))
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    event_id = record(database)
    webhook_tasks.fan_out(context, event_id=event_id)
    webhook_tasks.fan_out(context, event_id=event_id)
    webhook_tasks.sweep(context)
    with database.session() as session:
        assert len(session.scalars(select(Delivery)).all()) == 1
        token = session.scalar(select(Endpoint.lease_token))
    assert token is not None
    webhook_tasks.deliver(context, endpoint_id=endpoint_id, lease_token="someone-else")
    assert receiver.received == []
    webhook_tasks.deliver(context, endpoint_id=endpoint_id, lease_token=token)
    webhook_tasks.deliver(context, endpoint_id=endpoint_id, lease_token=token)
    assert len(receiver.received) == 1
    with database.session() as session:
        assert session.scalar(select(Endpoint.lease_token)) is None


def test_after_a_rotation_both_secrets_sign_for_a_day(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, old_secret = make_webhook(database, receiver.url)
    response = client.post(f"/api/webhooks/{endpoint_id}/rotate-secret")
    assert response.status_code == 200
    rotated = response.json()
    new_secret = rotated["secret"]
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    assert rotated["secret_hint"] == new_secret[-4:]
    assert rotated["previous_secret_expires_at"] is not None

    record(database)
    [request] = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, new_secret):
        Webhook(secret).verify(request.body, request.headers)

    with database.session() as session:
        session.execute(
            update(Endpoint).values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
    record(database)
    second = receiver.wait_for(2)[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    Webhook(new_secret).verify(second.body, second.headers)


def test_redeliver_sends_the_same_message_again(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    record(database)
    [item] = settled(client, endpoint_id)
    response = client.post(f"/api/webhooks/{endpoint_id}/deliveries/{item['id']}/redeliver")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    first, again = receiver.wait_for(2)
    assert again.verified
    assert again.webhook_id == first.webhook_id
    assert again.body == first.body
    [item] = settled(client, endpoint_id)
    assert item["attempt_count"] == 2


def test_disabling_an_endpoint_fails_what_is_pending(
    tmp_path: Path, database: Database, receiver: Receiver
) -> None:
    settings = webhook_settings(tmp_path, database)
    endpoint_id, _ = make_webhook(database, receiver.url)
    event_id = record(database)
    with database.session() as session:
        service.fan_out(session, event_id)
    with database.session() as session:
        service.update(session, endpoint_id, schemas.WebhookUpdate(enabled=False), settings)
    with database.session() as session:
        row = session.scalars(select(Delivery)).one()
        assert row.status == "failed"
        assert row.last_error == service.NOT_SENT_DISABLED
        assert session.get(Endpoint, endpoint_id).disabled_reason == service.DISABLED_BY_USER  # type: ignore[union-attr]


def test_the_test_button_reports_status_time_and_excerpt(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = make_webhook(database, receiver.url)
    receiver.script(Reply(status=200, body=b"pong"))
    result = client.post(f"/api/webhooks/{endpoint_id}/test").json()
    assert result["ok"] is True
    assert result["status_code"] == 200
    assert result["latency_ms"] >= 0
    assert result["error"] is None
    assert result["response_excerpt"] == "pong"
    [request] = receiver.received
    assert request.verified, request.error
    assert request.payload["type"] == "webhook.test"

    [logged] = deliveries(client, endpoint_id, event="webhook.test")
    assert deliveries(client, endpoint_id, event="product.created") == []
    assert logged["event_type"] == "webhook.test"
    assert logged["webhook_id"] == request.webhook_id
    assert endpoint(client, endpoint_id)["last_status_code"] == 200


def test_the_test_button_reports_failures_without_an_error_status(
    client: TestClient, database: Database, receiver: Receiver
) -> None:
    endpoint_id, _ = make_webhook(database, receiver.url)
    receiver.script(Reply(status=500, body=b"x" * 5000), Reply(hang=True))
    result = client.post(f"/api/webhooks/{endpoint_id}/test")
    assert result.status_code == 200
    body = result.json()
    assert body["ok"] is False and body["status_code"] == 500
    assert len(body["response_excerpt"]) <= 1000

    started = time.perf_counter()
    body = client.post(f"/api/webhooks/{endpoint_id}/test").json()
    assert body == body | {"ok": False, "status_code": None, "error": "Timed out after 2 s"}
    assert time.perf_counter() - started < 4

    receiver.stop()  # nothing listens on the port any more
    body = client.post(f"/api/webhooks/{endpoint_id}/test").json()
    assert body["ok"] is False and body["status_code"] is None
    assert body["error"].startswith("ConnectError")
    # Tests never count towards disabling an endpoint.
    assert endpoint(client, endpoint_id)["consecutive_failures"] == 0
    assert endpoint(client, endpoint_id)["enabled"] is True


def test_old_finished_deliveries_are_pruned(
    tmp_path: Path, database: Database, receiver: Receiver
) -> None:
    settings = webhook_settings(tmp_path, database)
    make_webhook(database, receiver.url)
    old, recent = record(database, id=1), record(database, id=2)
    with database.session() as session:
        service.fan_out(session, old)
        service.fan_out(session, recent)
        session.flush()
        long_ago = utcnow() - timedelta(days=31)
        session.execute(
            update(Delivery)
            .values(status="succeeded", created_at=long_ago)
            .where(Delivery.event_id == old)
        )
        session.execute(update(Event).values(dispatched_at=long_ago).where(Event.id == old))
    webhook_tasks.prune(TaskContext(database=database, settings=settings))
    with database.session() as session:
        assert [d.event_id for d in session.scalars(select(Delivery))] == [recent]
        assert [e.id for e in session.scalars(select(Event))] == [recent]


def test_a_receiver_that_trickles_bytes_is_cut_off_at_the_timeout() -> None:
    """Each byte arrives well within a per-read timeout; the whole answer would take 20 s."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok":
                if stop.wait(0.5):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        port = server.getsockname()[1]
        started = time.perf_counter()
        outcome = delivery.send(
            f"http://127.0.0.1:{port}/",
            ["whsec_" + "A" * 43 + "="],
            "msg_1",
            b"{}",
            timeout=1.5,
            allow_private=True,
        )
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        server.close()
    assert not outcome.ok
    assert outcome.error == "Timed out after 1.5 s"
    assert elapsed < 2.5
