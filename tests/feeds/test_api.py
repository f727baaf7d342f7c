"""The feeds API: saving, reading and changing feeds; hostile input gets a precise 4xx."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from product_importer.auth.roles import Role
from product_importer.db import Database
from tests.factories import make_token
from tests.feeds.conftest import make_feed

URL = "https://erp.example.com/export/products.csv"


def test_create_read_update_delete(client: TestClient) -> None:
    created = make_feed(
        client,
        URL,
        timezone="Europe/Berlin",
        mapping={"sku": "Article", "name": "Title"},
        missing="deactivate",
        max_missing_percent=5,
        headers={"Authorization": "Bearer s3cret-token"},
        username="shop",
        password="hunter2-password",
    )
    assert created["schedule_text"] == "At 02:00, every day (Europe/Berlin)"
    assert created["next_run_at"] is not None
    assert created["missing"] == "deactivate"
    assert created["max_missing_percent"] == 5
    assert created["credentials"] == ["header:Authorization", "password"]
    assert created["username"] == "shop"
    assert "s3cret-token" not in str(created) and "hunter2" not in str(created)
    feed_id = created["id"]

    listed = client.get("/api/feeds").json()
    assert [feed["id"] for feed in listed] == [feed_id]
    patched = client.patch(
        f"/api/feeds/{feed_id}", json={"schedule": "30 6 * * 1-5", "password": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["schedule"] == "30 6 * * 1-5"
    assert patched.json()["credentials"] == ["header:Authorization"]
    assert client.delete(f"/api/feeds/{feed_id}").status_code == 204
    assert client.get(f"/api/feeds/{feed_id}").status_code == 404


def test_credentials_are_stored_encrypted_and_kept_out_of_the_audit_log(
    client: TestClient, database: Database
) -> None:
    make_feed(client, URL, password="hunter2-password", headers={"X-Api-Key": "k3y-value"})
    with database.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT secrets FROM feeds").scalar_one()
        audit = connection.exec_driver_sql("SELECT action, details FROM audit_events").all()
    assert b"hunter2" not in bytes(stored) and b"k3y-value" not in bytes(stored)
    assert "feed.create" in {action for action, _details in audit}
    assert "hunter2" not in str(audit) and "k3y-value" not in str(audit)


def test_a_name_is_taken_once(client: TestClient) -> None:
    make_feed(client, URL)
    response = client.post(
        "/api/feeds", json={"name": "Nightly ERP", "url": URL, "schedule": "0 2 * * *"}
    )
    assert response.status_code == 409
    assert "exists already" in response.json()["detail"]


BAD: list[tuple[dict[str, Any], str]] = [
    ({"schedule": "61 * * * *"}, "not a valid cron expression"),
    ({"schedule": "* * *"}, "5 fields"),
    ({"timezone": "Mars/Olympus"}, "not a known time zone"),
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": "ftp://erp.example.com/products.csv"}, "url"),
    ({"url": "gopher://erp.example.com/1"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "http://10.1.2.3/products.csv"}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
    ({"url": "http://[::ffff:192.168.1.1]/p.csv"}, "url"),
    ({"url": "https://user:pw@erp.example.com/p.csv"}, "url"),
    ({"url": "sftp://erp.example.com/p.csv"}, "url"),
    ({"missing": "wipe"}, "missing"),
    ({"max_missing_percent": 101}, "max_missing_percent"),
    ({"max_missing_percent": -1}, "max_missing_percent"),
    ({"failure_alert_after": 0}, "failure_alert_after"),
    ({"mapping": {"sku": "A", "nonsense": "B"}}, "mapping"),
    ({"mapping": {"name": "Title"}}, "mapping"),
    ({"mapping_id": 99}, "mapping_id"),
    ({"mapping": {"sku": "A", "name": "B"}, "mapping_id": 1}, "not both"),
    ({"headers": {"Bad Header": "x"}}, "header name"),
    ({"headers": {"X-Ok": "a\r\nInjected: 1"}}, "line breaks"),
    ({"headers": {"Host": "evil.example"}}, "set by the server"),
    ({"private_key": "not a key"}, "private key"),
    ({"host_key": "SHA256:short"}, "fingerprint"),
    ({"encoding": "no-such-codec"}, "encoding"),
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "tab\there"}, "control characters"),
    ({"unknown": 1}, "unknown"),
]


@pytest.mark.parametrize(("change", "says"), BAD)
def test_hostile_feeds_get_a_precise_422(
    client: TestClient, change: dict[str, Any], says: str
) -> None:
    body = {"name": "Feed", "url": URL, "schedule": "0 2 * * *"} | change
    response = client.post("/api/feeds", json=body)
    assert response.status_code == 422, response.text
    assert says in response.text
    assert client.get("/api/feeds").json() == []


def test_patch_refuses_nulls_and_bad_values(client: TestClient) -> None:
    feed_id = make_feed(client, URL)["id"]
    for change, says in [
        ({"schedule": None}, "may not be null"),
        ({"url": "gopher://x/"}, "url"),
        ({"timezone": "Nowhere/Land"}, "time zone"),
    ]:
        response = client.patch(f"/api/feeds/{feed_id}", json=change)
        assert response.status_code == 422, response.text
        assert says in response.text
    assert client.get(f"/api/feeds/{feed_id}").json()["schedule"] == "0 2 * * *"


@pytest.mark.parametrize("path", ["/api/feeds/0", "/api/feeds/abc", "/api/feeds/99999999"])
def test_unknown_feeds(client: TestClient, path: str) -> None:
    assert client.get(path).status_code in (404, 422)
    assert client.post(f"{path}/run").status_code in (404, 422)


def test_viewers_read_editors_change(anon_client: TestClient, database: Database) -> None:
    admin = {"Authorization": f"Bearer {make_token(database, 'admin', Role.admin)}"}
    viewer = {"Authorization": f"Bearer {make_token(database, 'viewer', Role.viewer)}"}
    editor = {"Authorization": f"Bearer {make_token(database, 'editor', Role.editor)}"}
    body = {"name": "Feed", "url": URL, "schedule": "0 2 * * *"}
    assert anon_client.post("/api/feeds", json=body, headers=viewer).status_code == 403
    created = anon_client.post("/api/feeds", json=body, headers=editor)
    assert created.status_code == 201
    feed_id = created.json()["id"]
    assert anon_client.get("/api/feeds", headers=viewer).status_code == 200
    assert anon_client.post(f"/api/feeds/{feed_id}/run", headers=viewer).status_code == 403
    assert anon_client.delete(f"/api/feeds/{feed_id}", headers=viewer).status_code == 403
    assert anon_client.delete(f"/api/feeds/{feed_id}", headers=admin).status_code == 204


def test_a_new_url_forgets_the_host_key_unless_it_is_given_again(client: TestClient) -> None:
    key = "SHA256:" + "A" * 43
    feed_id = make_feed(client, "sftp://shop@sftp.example.com/out/p.csv", host_key=key)["id"]
    same = {"url": "sftp://shop@sftp.example.com/out/p.csv", "host_key": key}
    assert client.patch(f"/api/feeds/{feed_id}", json=same).json()["host_key"] == key
    moved = {"url": "sftp://shop@other.example.com/out/p.csv", "host_key": key}
    assert client.patch(f"/api/feeds/{feed_id}", json=moved).json()["host_key"] == key
    again = {"url": "sftp://shop@third.example.com/out/p.csv"}
    assert client.patch(f"/api/feeds/{feed_id}", json=again).json()["host_key"] is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http://10.1.2.3/p.csv"}, "url"),
        ({"url": "gopher://erp.example.com/1"}, "url"),
        ({}, "url"),
        ({"url": URL, "headers": {"Host": "evil"}}, "set by the server"),
    ],
)
def test_testing_a_hostile_source_gets_a_precise_422(
    client: TestClient, body: dict[str, Any], says: str
) -> None:
    response = client.post("/api/feeds/test", json=body)
    assert response.status_code == 422, response.text
    assert says in response.text
