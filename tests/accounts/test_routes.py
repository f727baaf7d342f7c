"""Users, tokens and the own-account API, over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from product_importer.accounts import service as accounts
from product_importer.auth.models import ApiToken
from product_importer.auth.roles import Role
from product_importer.auth.service import Principal
from product_importer.db import Database
from tests.factories import DEFAULT_PASSWORD, login_csrf, make_token, make_user, sign_in


def _browser(client: TestClient, database: Database, username: str, password: str) -> TestClient:
    """Another browser (its own cookies) signed in as `username`."""
    other = TestClient(client.app)
    response = other.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": login_csrf(other)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    page = other.get("/products")
    other.headers["X-CSRF-Token"] = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    return other


def test_admin_creates_a_user_who_signs_in_with_the_one_time_password(
    client: TestClient, database: Database
) -> None:
    created = client.post("/api/users", json={"username": " bob ", "role": "editor"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["username"] == "bob" and body["role"] == "editor" and body["active"] is True
    bob = _browser(client, database, "bob", body["password"])
    assert bob.get("/api/me").json()["role"] == "editor"
    listed = client.get("/api/users").json()
    assert [u["username"] for u in listed] == ["alice", "bob"]
    assert all("password" not in u and "password_hash" not in u for u in listed)
    again = client.post("/api/users", json={"username": "bob"})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": ""},
        {"username": "   "},
        {"username": "x" * 151},
        {"username": "eve", "role": "owner"},
        {"username": "eve", "password": "chosen"},
        {"username": "eve\x00"},
        ["eve"],
    ],
)
def test_bad_user_bodies_get_a_precise_4xx(
    client: TestClient, database: Database, body: object
) -> None:
    response = client.post("/api/users", json=body)
    assert response.status_code in (400, 422), response.text
    assert "detail" in response.json()
    assert [u["username"] for u in client.get("/api/users").json()] == ["alice"]


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(
    client: TestClient, database: Database
) -> None:
    alice = client.get("/api/users").json()[0]["id"]
    for change in ({"role": "editor"}, {"active": False}, {"role": "viewer", "active": False}):
        refused = client.patch(f"/api/users/{alice}", json=change)
        assert refused.status_code == 409, refused.text
        assert "last active admin" in refused.json()["detail"]
    bob = client.post("/api/users", json={"username": "bob", "role": "admin"}).json()["id"]
    # An inactive admin does not count as the other admin.
    assert client.patch(f"/api/users/{bob}", json={"active": False}).status_code == 200
    assert client.patch(f"/api/users/{alice}", json={"role": "editor"}).status_code == 409
    assert client.patch(f"/api/users/{bob}", json={"active": True}).status_code == 200
    demoted = client.patch(f"/api/users/{alice}", json={"role": "editor"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "editor"
    # Her role changed, so her own session ended with it.
    assert client.get("/api/me").status_code == 401


def test_role_change_and_deactivation_end_that_users_sessions(
    client: TestClient, database: Database
) -> None:
    make_user(database, "bob", role=Role.editor)
    bob = _browser(client, database, "bob", DEFAULT_PASSWORD)
    bob_id = bob.get("/api/me").json()["user_id"]
    assert client.patch(f"/api/users/{bob_id}", json={"role": "viewer"}).status_code == 200
    assert bob.get("/api/me").status_code == 401
    bob = _browser(client, database, "bob", DEFAULT_PASSWORD)
    assert bob.get("/api/me").json()["role"] == "viewer"
    assert client.patch(f"/api/users/{bob_id}", json={"active": False}).status_code == 200
    assert bob.get("/api/me").status_code == 401
    refused = bob.post(
        "/login",
        data={"username": "bob", "password": DEFAULT_PASSWORD, "csrf_token": login_csrf(bob)},
    )
    assert refused.status_code == 401 and "Wrong username or password." in refused.text
    assert client.get("/api/me").status_code == 200  # the admin's own session is untouched


def test_reset_password_ends_sessions_and_shows_the_new_password_once(
    client: TestClient, database: Database
) -> None:
    make_user(database, "bob", role=Role.viewer)
    bob = _browser(client, database, "bob", DEFAULT_PASSWORD)
    bob_id = bob.get("/api/me").json()["user_id"]
    reset = client.post(f"/api/users/{bob_id}/reset-password")
    assert reset.status_code == 200
    password = reset.json()["password"]
    assert len(password) >= 16
    assert bob.get("/api/me").status_code == 401
    _browser(client, database, "bob", password)
    assert client.post("/api/users/99999/reset-password").status_code == 404
    assert client.patch("/api/users/0", json={}).status_code == 422


def test_a_changed_password_ends_another_browsers_session(
    client: TestClient, database: Database
) -> None:
    other = _browser(client, database, "alice", DEFAULT_PASSWORD)
    assert other.get("/api/me").status_code == 200
    wrong = client.post(
        "/api/me/password",
        json={"current_password": "not it", "new_password": "a new long password"},
    )
    assert wrong.status_code == 403 and "current password is wrong" in wrong.json()["detail"]
    short = client.post(
        "/api/me/password", json={"current_password": DEFAULT_PASSWORD, "new_password": "short"}
    )
    assert short.status_code == 422
    changed = client.post(
        "/api/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a new long password"},
    )
    assert changed.status_code == 200, changed.text
    assert other.get("/api/me").status_code == 401  # the other browser is signed out
    assert client.get("/api/me").status_code == 200  # this one goes on
    _browser(client, database, "alice", "a new long password")


def test_sign_out_everywhere_ends_every_session(client: TestClient, database: Database) -> None:
    other = _browser(client, database, "alice", DEFAULT_PASSWORD)
    assert client.post("/api/me/sign-out-everywhere").status_code == 200
    assert client.get("/api/me").status_code == 401
    assert other.get("/api/me").status_code == 401


def test_a_token_read_never_waits_for_the_write_lock(
    client: TestClient, database: Database
) -> None:
    """On SQLite an import's merge holds the write lock for as long as it runs; recording a
    token's last use must not make a read queue behind it (or fail after the busy timeout)."""
    token = make_token(database, "reader", Role.viewer)
    bearer = TestClient(client.app, headers={"Authorization": f"Bearer {token}"})
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL locks rows: a merge never holds the tokens table")
    with database.engine.connect() as holder:
        holder.exec_driver_sql("BEGIN IMMEDIATE")  # what a merge holds
        started = time.monotonic()
        response = bearer.get("/api/products")
        waited = time.monotonic() - started
        holder.exec_driver_sql("ROLLBACK")
    assert response.status_code == 200, response.text
    assert waited < 5, waited
    with database.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == "reader")).one()
        assert row.last_used_at is None  # not recorded while locked...
    assert bearer.get("/api/products").status_code == 200
    with database.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == "reader")).one()
        assert row.last_used_at is not None  # ...but by the next request


def test_tokens_carry_their_role_and_stop_when_revoked_or_expired(
    client: TestClient, database: Database
) -> None:
    created = client.post("/api/tokens", json={"name": "reports", "role": "viewer"})
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["token"].startswith("pi_") and token["created_by"] == "alice"
    bearer = TestClient(client.app, headers={"Authorization": f"Bearer {token['token']}"})
    assert bearer.get("/api/products").status_code == 200
    refused = bearer.post("/api/products", json={"sku": "A", "name": "A"})
    assert refused.status_code == 403 and "needs the editor role" in refused.json()["detail"]
    listed = client.get("/api/tokens").json()
    assert listed[0]["name"] == "reports" and listed[0]["status"] == "active"
    assert "token" not in listed[0] and listed[0]["last_used_at"] is not None
    revoked = client.delete(f"/api/tokens/{token['id']}")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert bearer.get("/api/products").status_code == 401

    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    expiring = client.post("/api/tokens", json={"name": "ci", "role": "editor", "expires_at": soon})
    assert expiring.status_code == 201
    bearer.headers["Authorization"] = f"Bearer {expiring.json()['token']}"
    assert bearer.get("/api/products").status_code == 200
    with database.session() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == expiring.json()["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    gone = bearer.get("/api/products")
    assert gone.status_code == 401 and "Invalid" in gone.json()["detail"]
    assert client.get("/api/tokens").json()[0]["status"] == "expired"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 151},
        {"name": "ci", "role": "root"},
        {"name": "ci", "expires_at": "2030-01-01T00:00:00"},  # no time zone
        {"name": "ci", "expires_at": "2001-01-01T00:00:00Z"},  # in the past
        {"name": "ci", "expires_at": "soon"},
        {"name": "ci", "token": "pi_chosen"},
    ],
)
def test_bad_token_bodies_get_a_precise_4xx(
    client: TestClient, database: Database, body: object
) -> None:
    response = client.post("/api/tokens", json=body)
    assert response.status_code in (400, 422), response.text
    assert client.get("/api/tokens").json() == []


def test_a_tokens_role_is_at_most_its_creators(database: Database) -> None:
    editor_id = make_user(database, "ed", role=Role.editor)
    editor = Principal(kind="user", name="ed", role=Role.editor, user_id=editor_id)
    with database.session() as session:
        with pytest.raises(accounts.Forbidden, match="at most yours"):
            accounts.create_token(session, editor, "too much", Role.admin, None)
        token, _clear = accounts.create_token(session, editor, "fine", Role.editor, None)
        assert token.role == "editor"


def test_a_token_never_outranks_its_owner_and_stops_with_them(
    client: TestClient, database: Database
) -> None:
    bob_id = client.post("/api/users", json={"username": "bob", "role": "admin"}).json()["id"]
    bob = Principal(kind="user", name="bob", role=Role.admin, user_id=bob_id)
    with database.session() as session:
        _token, clear = accounts.create_token(session, bob, "bob's", Role.admin, None)
    bearer = TestClient(client.app, headers={"Authorization": f"Bearer {clear}"})
    assert bearer.get("/api/me").json()["role"] == "admin"
    client.patch(f"/api/users/{bob_id}", json={"role": "viewer"})
    assert bearer.get("/api/me").json()["role"] == "viewer"
    client.patch(f"/api/users/{bob_id}", json={"active": False})
    assert bearer.get("/api/me").status_code == 401


def test_own_account_routes_for_tokens(client: TestClient, database: Database) -> None:
    token = client.post("/api/tokens", json={"name": "cli", "role": "viewer"}).json()["token"]
    bearer = TestClient(client.app, headers={"Authorization": f"Bearer {token}"})
    # A token made by a user acts for that user's account.
    assert bearer.post("/api/me/sign-out-everywhere").status_code == 200
    assert client.get("/api/me").status_code == 401
    assert bearer.get("/api/me").status_code == 200  # tokens are not sessions
    # A token from the command line belongs to nobody: there is no own password to change.
    bearer.headers["Authorization"] = f"Bearer {make_token(database, 'ops')}"
    body = {"current_password": DEFAULT_PASSWORD, "new_password": "a new long password"}
    refused = bearer.post("/api/me/password", json=body)
    assert refused.status_code == 400 and "belongs to no user" in refused.json()["detail"]
    assert bearer.post("/api/me/sign-out-everywhere").status_code == 400


def test_sign_in_after_a_fresh_sign_in_helper(anon_client: TestClient, database: Database) -> None:
    sign_in(anon_client, database, "viewer-v", Role.viewer)
    assert anon_client.get("/api/me").json()["role"] == "viewer"


def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    if database.dialect != "postgresql":
        pytest.skip("SQLite runs one writer at a time; the race needs concurrent writers")
    first = make_user(database, "ann", role=Role.admin)
    second = make_user(database, "ben", role=Role.admin)
    barrier = threading.Barrier(2)
    after_check = threading.Barrier(2)
    outcomes: list[str] = []
    check = accounts._other_active_admins

    def check_then_wait(session: object, user: object) -> int:
        # Hold each transaction after its check until the other has checked too (or 2 s):
        # without the row locks both would see one other admin and both demote.
        others = check(session, user)  # type: ignore[arg-type]
        with contextlib.suppress(threading.BrokenBarrierError):
            after_check.wait(timeout=2)
        return others

    monkeypatch.setattr(accounts, "_other_active_admins", check_then_wait)

    def demote(user_id: int) -> None:
        try:
            with database.session() as session:
                barrier.wait(timeout=10)
                accounts.update_user(session, user_id, Role.viewer, None)
            outcomes.append("demoted")
        except accounts.Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=demote, args=(uid,)) for uid in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["demoted", "refused"]
    with database.session() as session:
        assert accounts.count_active_admins(session) == 1
