"""A password an admin hands out is one-time: the session can only set its own until it does;
API tokens are unaffected. The Not-allowed page keeps the navigation."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from product_importer.auth.roles import Role
from product_importer.db import Database
from tests.factories import login_csrf, make_token, sign_in


def _signed_in(client: TestClient, username: str, password: str) -> TestClient:
    """Another browser on the same app, signed in as `username`."""
    other = TestClient(client.app)
    response = other.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": login_csrf(other)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    account = other.get("/account")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', account.text)
    assert match
    other.headers["X-CSRF-Token"] = match.group(1)
    return other


def test_a_new_user_sets_their_own_password_first(client: TestClient) -> None:
    created = client.post("/api/users", json={"username": "bob", "role": Role.editor.value})
    assert created.status_code == 201, created.text
    one_time = created.json()["password"]
    bob = _signed_in(client, "bob", one_time)

    page = bob.get("/products", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/account#password-form"
    account = bob.get("/account")
    assert account.status_code == 200
    assert "one-time password from an admin" in account.text
    refused = bob.get("/api/products")
    assert refused.status_code == 403
    assert "Set your own password first" in refused.json()["detail"]
    assert bob.get("/api/me").json()["must_change_password"] is True

    changed = bob.post(
        "/api/me/password",
        json={"current_password": one_time, "new_password": "bob's own password"},
    )
    assert changed.status_code == 200, changed.text
    assert bob.get("/api/products").status_code == 200
    assert bob.get("/products", follow_redirects=False).status_code == 200
    assert bob.get("/api/me").json()["must_change_password"] is False


def test_a_reset_password_is_one_time_and_tokens_are_unaffected(
    client: TestClient, database: Database
) -> None:
    created = client.post("/api/users", json={"username": "carol", "role": Role.viewer.value})
    carol = _signed_in(client, "carol", created.json()["password"])
    carol.post(
        "/api/me/password",
        json={"current_password": created.json()["password"], "new_password": "carol's own"},
    )
    reset = client.post(f"/api/users/{created.json()['id']}/reset-password")
    assert reset.status_code == 200
    carol = _signed_in(client, "carol", reset.json()["password"])
    assert carol.get("/api/products").status_code == 403
    assert carol.get("/import", follow_redirects=False).status_code == 303

    token = make_token(database, "ci", Role.viewer)
    with_token = TestClient(client.app, headers={"Authorization": f"Bearer {token}"})
    assert with_token.get("/api/products").status_code == 200


def test_the_not_allowed_page_keeps_the_navigation(
    anon_client: TestClient, database: Database
) -> None:
    sign_in(anon_client, database, "vera", Role.viewer)
    page = anon_client.get("/users")
    assert page.status_code == 403
    assert "This needs the admin role" in page.text
    assert 'aria-label="Main"' in page.text
    assert 'href="/products"' in page.text
    assert "Sign out" in page.text
