"""Answers that carry a secret shown once, and every HTML page, say `Cache-Control: no-store`;
token expiry times that no UTC datetime can hold are a precise 422, not a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from product_importer.db import Database
from product_importer.settings import Settings
from tests.factories import make_user


def test_one_time_secrets_are_never_stored_by_a_cache(
    client: TestClient, database: Database
) -> None:
    user = client.post("/api/users", json={"username": "bob"})
    assert user.status_code == 201 and user.json()["password"]
    reset = client.post(f"/api/users/{user.json()['id']}/reset-password")
    token = client.post("/api/tokens", json={"name": "ci"})
    for answer in (user, reset, token):
        assert answer.headers["cache-control"] == "no-store", answer.request.url
    # An answer without a secret is left to the usual rules.
    assert "cache-control" not in client.get("/api/users").headers


def test_a_webhook_signing_secret_is_never_stored_by_a_cache(
    settings: Settings, client: TestClient
) -> None:
    created = client.post(
        "/api/webhooks",
        json={"url": "https://hooks.example.com/catalogue", "events": ["product.created"]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    rotated = client.post(f"/api/webhooks/{created.json()['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    for answer in (created, rotated):
        assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/products", "/import", "/webhooks", "/users", "/docs"])
def test_pages_are_never_stored_by_a_cache(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200, path
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store", path


def test_the_sign_in_page_and_its_errors_are_never_stored(
    anon_client: TestClient, database: Database
) -> None:
    make_user(database)
    assert anon_client.get("/login").headers["cache-control"] == "no-store"
    wrong = anon_client.post("/login", data={"username": "alice", "password": "x"})
    assert wrong.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("expires_at", "reason"),
    [
        ("9999-12-31T23:59:59-14:00", "between the years 1 and 9999"),
        ("0001-01-01T00:00:00+14:00", "between the years 1 and 9999"),
        ("2030-01-01T00:00:00", "timezone"),
        ("99999-01-01T00:00:00Z", ""),
    ],
)
def test_token_expiry_out_of_range_or_without_a_zone_is_a_422(
    client: TestClient, expires_at: str, reason: str
) -> None:
    response = client.post("/api/tokens", json={"name": "ci", "expires_at": expires_at})
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"][0]["msg"]
    assert client.get("/api/tokens").json() == []


def test_the_latest_expiry_utc_can_hold_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/api/tokens", json={"name": "ci", "expires_at": "9999-12-31T09:59:59-14:00"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["expires_at"].startswith("9999-12-31T23:59:59")
    assert client.get("/api/tokens").json()[0]["status"] == "active"
