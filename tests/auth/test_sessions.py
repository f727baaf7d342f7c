"""Signing out ends the session on the server: a copy of the cookie kept from before answers
401, while the same user's other sessions go on."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import func, select, update

from product_importer.auth.models import UserSession
from product_importer.db import Database, utcnow
from tests.factories import DEFAULT_PASSWORD, login_csrf, make_user


def _signed_in(client: TestClient, username: str = "alice") -> str:
    """Sign in through the form; returns the session cookie's value."""
    response = client.post(
        "/login",
        data={"username": username, "password": DEFAULT_PASSWORD, "csrf_token": login_csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    cookie = client.cookies.get("pi_session")
    assert cookie
    return cookie


def _csrf(client: TestClient) -> str:
    page = client.get("/products").text
    return page.split('name="csrf-token" content="')[1].split('"')[0]


def test_a_cookie_kept_from_before_sign_out_answers_401(
    anon_client: TestClient, database: Database
) -> None:
    make_user(database)
    kept = _signed_in(anon_client)
    assert anon_client.get("/api/me").status_code == 200
    out = anon_client.post("/logout", data={"csrf_token": _csrf(anon_client)})
    assert out.status_code == 200  # followed to the sign-in page
    replay = TestClient(anon_client.app, cookies={"pi_session": kept})
    assert replay.get("/api/me").status_code == 401
    assert replay.get("/products", follow_redirects=False).status_code == 303
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_signing_out_one_browser_leaves_the_others_signed_in(
    anon_client: TestClient, database: Database
) -> None:
    make_user(database)
    _signed_in(anon_client)
    other = TestClient(anon_client.app)
    _signed_in(other)
    anon_client.post("/logout", data={"csrf_token": _csrf(anon_client)})
    assert anon_client.get("/api/me").status_code == 401
    assert other.get("/api/me").json()["name"] == "alice"


def test_a_session_past_its_server_side_expiry_answers_401(
    anon_client: TestClient, database: Database
) -> None:
    make_user(database)
    _signed_in(anon_client)
    with database.session() as session:
        session.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert anon_client.get("/api/me").status_code == 401
    # The next sign-in drops the expired row.
    _signed_in(TestClient(anon_client.app))
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(UserSession)) == 1


def test_a_cookie_without_a_session_id_is_not_signed_in(
    anon_client: TestClient, database: Database
) -> None:
    """A cookie signed before session rows existed names a user and a generation only."""
    user_id = make_user(database)
    _signed_in(anon_client)
    app = anon_client.app
    old_style = TestClient(app)

    payload = base64.b64encode(json.dumps({"user_id": user_id, "gen": 0}).encode())
    signer = TimestampSigner("test-secret-key-not-for-production")
    old_style.cookies.set("pi_session", signer.sign(payload).decode())
    assert old_style.get("/api/me").status_code == 401
    assert anon_client.get("/api/me").status_code == 200
