"""GET /api/system and the System page, in embedded mode, on both databases."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from product_importer.app import create_app
from product_importer.db import Database, utcnow
from product_importer.imports.models import ImportJob
from product_importer.settings import Settings, redact_url
from product_importer.tasks.embedded import EmbeddedDispatcher
from product_importer.tasks.models import WorkerHeartbeat
from product_importer.webhooks.models import Delivery, Endpoint, Event
from tests.conftest import make_settings
from tests.factories import make_token


def _system(client: TestClient) -> dict[str, object]:
    response = client.get("/api/system")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_embedded_mode_lists_the_server_as_its_own_alive_worker(
    client: TestClient, database: Database
) -> None:
    body = _system(client)
    assert body["mode"] == "embedded"
    assert body["database"] == database.dialect
    assert body["broker"] is None
    assert body["warnings"] == []
    assert body["workers_alive"] == 1
    [worker] = body["workers"]  # type: ignore[misc]
    assert worker["name"] == f"embedded@{socket.gethostname()}:{os.getpid()}"
    assert worker["kind"] == "embedded" and worker["alive"] and worker["leader"]
    assert worker["queues"] == ["imports", "webhooks", "default"]
    assert worker["age_seconds"] < 10 and worker["running_tasks"] == 0
    assert [q["queue"] for q in body["queues"]] == ["imports", "webhooks", "default"]  # type: ignore[attr-defined]
    for queue in body["queues"]:  # type: ignore[attr-defined]
        assert queue["broker_messages"] is None and queue["broker_queue"] is None
        assert queue["waiting"] == 0 and queue["alive_consumers"] == 1


def test_database_view_counts_queued_imports_and_due_deliveries(
    client: TestClient, database: Database
) -> None:
    with database.session() as session:
        session.add_all(
            [
                ImportJob(filename="a.csv", status="queued"),
                ImportJob(filename="b.csv", status="failed"),
            ]
        )
        # A documentation address the SSRF guard refuses: a delivery never leaves the machine.
        endpoint = Endpoint(
            url="http://192.0.2.1/", events=["product.created"], secret="whsec_c2VjcmV0"
        )
        # Already dispatched: its deliveries are the two below, and the periodic dispatch
        # (which made a third when it came round first on a loaded machine) leaves it alone.
        event = Event(type="product.created", payload={}, dispatched_at=utcnow())
        session.add_all([endpoint, event])
        session.flush()
        for i, due_in in enumerate((-5, 3600)):
            session.add(
                Delivery(
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    event_type="product.created",
                    message_id=f"msg-{i}",
                    next_attempt_at=utcnow() + timedelta(seconds=due_in),
                )
            )
    # The embedded runner may pick the import up: it is then running, not gone.
    queues = {q["queue"]: q for q in _system(client)["queues"]}  # type: ignore[attr-defined]
    assert queues["imports"]["waiting"] + queues["imports"]["running"] >= 1
    assert queues["webhooks"]["waiting"] in (1, 2) and queues["webhooks"]["due"] in (0, 1)


def test_needs_credentials(anon_client: TestClient) -> None:
    response = anon_client.get("/api/system")
    assert response.status_code == 401
    assert "Not signed in" in response.json()["detail"]


def test_bearer_token_works_and_the_route_is_documented(
    anon_client: TestClient, database: Database
) -> None:
    token = make_token(database)
    headers = {"Authorization": f"Bearer {token}"}
    assert anon_client.get("/api/system", headers=headers).status_code == 200
    schema = anon_client.get("/openapi.json", headers=headers).json()
    assert "/api/system" in schema["paths"]
    assert "SystemRead" in schema["components"]["schemas"]


def test_the_server_marks_itself_stopped_on_shutdown(
    settings: Settings, database: Database
) -> None:
    with TestClient(create_app(settings, database)):
        pass
    with database.session() as session:
        row = session.get(WorkerHeartbeat, f"embedded@{socket.gethostname()}:{os.getpid()}")
        assert row is not None and row.stopped_at is not None


def test_distributed_mode_with_a_broker_that_does_not_answer(
    tmp_path: Path, database: Database
) -> None:
    """A distributed web process never answers 500 for a dead broker: null depths, a warning."""
    settings = make_settings(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        broker_url="redis://:s3cret@127.0.0.1:1/0",
    )
    # The embedded dispatcher stands in for Celery's sender: this test is about reading.
    app = create_app(settings, database, dispatcher=EmbeddedDispatcher())
    token = make_token(database)
    with TestClient(app) as client:
        started = time.monotonic()
        body = client.get("/api/system", headers={"Authorization": f"Bearer {token}"}).json()
        assert time.monotonic() - started < 10
    assert body["mode"] == "distributed"
    assert body["broker"] == "redis://:***@127.0.0.1:1/0"
    assert all(q["broker_messages"] is None for q in body["queues"])
    assert [q["broker_queue"] for q in body["queues"]] == ["imports", "webhooks", "default"]
    assert body["warnings"][0].startswith("The broker does not answer")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("amqp://guest:guest@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
        ("rediss://:pw@h/1", "rediss://:***@h/1"),
        ("redis://u:p@[::1:6379/0", "<unparseable URL>"),
        # A password given as a query parameter, as redis-py and kombu accept it.
        ("redis://host:6379/0?password=secret", "redis://host:6379/0?password=***"),
        ("amqp://host/?password=x", "amqp://host/?password=***"),
        (
            "redis://h/0?sentinel_password=s&socket_timeout=5",
            "redis://h/0?sentinel_password=***&socket_timeout=5",
        ),
        (
            "rediss://:pw@h/1?ssl_cert_reqs=required&ssl_keyfile_password=k",
            "rediss://:***@h/1?ssl_cert_reqs=required&ssl_keyfile_password=***",
        ),
        ("redis://h/0?PASSWORD=a&Auth_Token=b", "redis://h/0?PASSWORD=***&Auth_Token=***"),
        ("redis://h/0?api%5Fkey=a;client_secret=b", "redis://h/0?api%5Fkey=***;client_secret=***"),
        ("redis://h/0?password=a%26b&db=1", "redis://h/0?password=***&db=1"),
        ("redis://h/0?password=", "redis://h/0?password=***"),
        ("redis://h/0#password=x", "redis://h/0#password=***"),
        ("redis://h/0?passwordless=1", "redis://h/0?passwordless=***"),  # better safe
    ],
)
def test_broker_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_system_page_hides_a_broker_password_given_as_a_query_parameter(
    tmp_path: Path, database: Database
) -> None:
    settings = make_settings(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        broker_url="redis://127.0.0.1:1/0?password=s3cret&sentinel_password=s3cret2",
    )
    app = create_app(settings, database, dispatcher=EmbeddedDispatcher())
    token = make_token(database)
    with TestClient(app) as client:
        response = client.get("/api/system", headers={"Authorization": f"Bearer {token}"})
    assert response.json()["broker"] == ("redis://127.0.0.1:1/0?password=***&sentinel_password=***")
    assert "s3cret" not in response.text
