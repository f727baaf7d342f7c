"""Feed runs against a real HTTP server, through the real import: imported, skipped when
unchanged, failures and their alert, mirror mode with its guard, undo, dry run, the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from product_importer.db import Database
from product_importer.feeds.models import FeedRun
from product_importer.webhooks.models import Event
from tests.changes.helpers import csv_of, undo
from tests.feeds.conftest import make_feed, run_feed, wait_for_run
from tests.feeds.file_server import FileServer
from tests.processes import cli_env, run_cli


def rows(count: int, start: int = 0) -> list[tuple[str, ...]]:
    return [(f"SKU-{n:03}", f"Product {n}", "From the ERP") for n in range(start, start + count)]


def products(client: TestClient) -> dict[str, dict[str, Any]]:
    page = client.get("/api/products?per_page=500&sort=sku").json()
    return {item["sku"]: item for item in page["items"]}


def events_of(database: Database, kind: str) -> list[dict[str, Any]]:
    with database.session() as session:
        found = session.scalars(select(Event).where(Event.type == kind).order_by(Event.id))
        return [event.payload["data"] for event in found]


def test_a_run_imports_the_file_and_an_unchanged_file_is_skipped(
    client: TestClient, files: FileServer, database: Database
) -> None:
    url = files.serve("/export/products.csv", csv_of(rows(5)))
    feed = make_feed(client, url)
    first = run_feed(client, feed["id"])
    assert first["status"] == "imported", first
    assert first["filename"] == "products.csv"
    assert first["bytes"] == len(csv_of(rows(5)))
    assert first["http_status"] == 200
    assert first["rows_created"] == 5
    assert sorted(products(client)) == [f"SKU-{n:03}" for n in range(5)]
    job = client.get(f"/api/imports/{first['import_job_id']}").json()
    assert job["status"] == "completed"
    assert job["created_by"] == "feed: Nightly ERP"
    completed = events_of(database, "import.completed")
    assert completed[-1]["feed_id"] == feed["id"]

    second = run_feed(client, feed["id"])
    assert second["status"] == "unchanged", second
    assert second["http_status"] == 304
    assert second["import_job_id"] is None
    assert files.requests[-1][1].get("if-none-match")


def test_without_an_etag_the_content_tells_it_is_unchanged(
    client: TestClient, files: FileServer
) -> None:
    url = files.serve("/products.csv", csv_of(rows(3)), etag=False)
    feed = make_feed(client, url)
    assert run_feed(client, feed["id"])["status"] == "imported"
    again = run_feed(client, feed["id"])
    assert again["status"] == "unchanged"
    assert "same SHA-256" in again["reason"]
    # A changed file is imported again.
    files.serve("/products.csv", csv_of(rows(4)), etag=False)
    assert run_feed(client, feed["id"])["status"] == "imported"
    assert len(products(client)) == 4


def test_failures_raise_one_alert_and_a_success_clears_it(
    client: TestClient, files: FileServer, database: Database
) -> None:
    url = files.serve("/products.csv", b"", status=503)
    feed = make_feed(client, url, failure_alert_after=3)
    for attempt in range(1, 5):
        run = run_feed(client, feed["id"])
        assert run["status"] == "failed"
        assert run["http_status"] == 503
        assert "503" in run["reason"]
        read = client.get(f"/api/feeds/{feed['id']}").json()
        assert read["consecutive_failures"] == attempt
        assert read["alerting"] is (attempt >= 3)
    sent = events_of(database, "feed.failed")
    assert len(sent) == 1  # once per streak, at the third failure
    assert sent[0]["feed_id"] == feed["id"] and sent[0]["consecutive_failures"] == 3
    warnings = client.get("/api/system").json()["warnings"]
    assert any("Nightly ERP" in warning and "503" in warning for warning in warnings)

    files.serve("/products.csv", csv_of(rows(2)))
    assert run_feed(client, feed["id"])["status"] == "imported"
    assert client.get(f"/api/feeds/{feed['id']}").json()["alerting"] is False
    assert not any("Nightly ERP" in w for w in client.get("/api/system").json()["warnings"])


def test_a_file_the_import_refuses_fails_the_run_with_the_reason(
    client: TestClient, files: FileServer
) -> None:
    url = files.serve("/products.csv", b"article,title\nA,B\n")
    feed = make_feed(client, url)
    run = run_feed(client, feed["id"])
    assert run["status"] == "failed"
    assert "sku" in run["reason"]
    assert products(client) == {}


@pytest.mark.parametrize("missing", ["deactivate", "delete"])
def test_mirror_mode_its_guard_the_override_and_undo(
    client: TestClient, files: FileServer, missing: str
) -> None:
    url = files.serve("/products.csv", csv_of(rows(20)))
    feed = make_feed(client, url, missing=missing, max_missing_percent=10)
    assert run_feed(client, feed["id"])["status"] == "imported"
    before = products(client)

    # A truncated export: 14 of 20 products, so 6 (30 %) would go.
    files.serve("/products.csv", csv_of(rows(14)))
    refused = run_feed(client, feed["id"])
    assert refused["status"] == "refused", refused
    assert refused["rows_missing"] == 6
    assert "6" in refused["reason"] and "20" in refused["reason"]
    assert products(client) == before

    dry = run_feed(client, feed["id"], "?dry_run=true&confirm_missing=true")
    assert dry["status"] == "imported" and dry["dry_run"] is True
    assert dry["rows_missing"] == 6
    assert products(client) == before

    pushed = run_feed(client, feed["id"], "?confirm_missing=true")
    assert pushed["status"] == "imported", pushed
    assert pushed["rows_missing"] == 6
    after = products(client)
    gone = [f"SKU-{n:03}" for n in range(14, 20)]
    if missing == "delete":
        assert sorted(after) == [f"SKU-{n:03}" for n in range(14)]
    else:
        assert all(after[sku]["active"] is False for sku in gone)
        assert all(after[sku]["active"] is True for sku in after if sku not in gone)

    job = client.get(f"/api/imports/{pushed['import_job_id']}").json()
    undo(client, job["change_id"])
    restored = products(client)
    assert sorted(restored) == sorted(before)
    assert all(restored[sku]["active"] for sku in restored)


def test_a_second_run_while_one_runs_is_refused(
    client: TestClient, files: FileServer, database: Database
) -> None:
    feed = make_feed(client, files.serve("/products.csv", csv_of(rows(2))))
    with database.session() as session:
        session.add(FeedRun(feed_id=feed["id"], status="fetching", trigger="manual"))
    response = client.post(f"/api/feeds/{feed['id']}/run")
    assert response.status_code == 409
    assert "in progress" in response.json()["detail"]


def test_runs_are_listed_newest_first(client: TestClient, files: FileServer) -> None:
    feed = make_feed(client, files.serve("/products.csv", csv_of(rows(2))))
    ids = [run_feed(client, feed["id"])["id"] for _ in range(3)]
    listed = client.get(f"/api/feeds/{feed['id']}/runs").json()
    assert [run["id"] for run in listed] == ids[::-1]
    assert [run["status"] for run in listed] == ["unchanged", "unchanged", "imported"]
    older = client.get(f"/api/feeds/{feed['id']}/runs?before={ids[2]}&limit=1").json()
    assert [run["id"] for run in older] == [ids[1]]
    assert client.get(f"/api/feeds/{feed['id']}/runs?limit=0").status_code == 422
    assert wait_for_run(client, feed["id"], ids[0])["status"] == "imported"


def test_the_command_line_lists_and_runs_feeds(
    client: TestClient, files: FileServer, settings: Any, tmp_path: Path
) -> None:
    feed = make_feed(client, files.serve("/products.csv", csv_of(rows(3))), name="Supplier A")
    env = cli_env(settings.home, settings.resolved_database_url)
    env["PRODUCT_IMPORTER_SECRET_KEY"] = settings.secret_key.get_secret_value()
    env["PRODUCT_IMPORTER_FEED_ALLOWED_HOSTS"] = '["127.0.0.0/8"]'
    listed = run_cli("feed", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "Supplier A" in listed.stdout and "At 02:00, every day (UTC)" in listed.stdout
    ran = run_cli("feed", "run", "supplier a", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "imported" in ran.stdout and "created 3" in ran.stdout
    again = run_cli("feed", "run", str(feed["id"]), "--dry-run", env=env)
    assert again.returncode == 0 and "(dry run)" in again.stdout
    unknown = run_cli("feed", "run", "nope", env=env)
    assert unknown.returncode == 2
    assert "no feed named" in unknown.stderr and "Traceback" not in unknown.stderr
