"""User names that a reader could take for one another are one name: refused on create,
counted together by the sign-in limits. Users that collided before the rule keep working."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from product_importer import migrate
from product_importer.app import create_app
from product_importer.auth import service as auth_service
from product_importer.auth import usernames
from product_importer.auth.roles import Role
from product_importer.db import Database
from product_importer.settings import Settings
from tests.factories import DEFAULT_PASSWORD, login_csrf, make_user


@pytest.mark.parametrize(
    "alike",
    [
        "Admin",
        "ADMIN",
        " admin ",
        "\u0430dmin",  # Cyrillic a
        "\uff41\uff44\uff4d\uff49\uff4e",  # fullwidth
        "adrnin",  # r n for m
        "\U0001d41a\U0001d41d\U0001d426\U0001d422\U0001d427",  # mathematical bold
    ],
)
def test_a_name_like_an_existing_one_is_refused_with_409(
    client: TestClient, database: Database, alike: str
) -> None:
    make_user(database, "admin")
    response = client.post("/api/users", json={"username": alike, "role": "admin"})
    assert response.status_code == 409, response.text
    assert "admin" in response.json()["detail"]
    names = [user["username"] for user in client.get("/api/users").json()]
    assert sorted(names) == ["admin", "alice"]


def test_names_that_only_look_different_to_a_machine_are_allowed(
    client: TestClient, database: Database
) -> None:
    for name in ("admin2", "adm", "bob", "\u65e5\u672c"):
        assert client.post("/api/users", json={"username": name}).status_code == 201, name


def test_the_skeleton_folds_case_width_and_look_alikes() -> None:
    assert usernames.skeleton("Stra\u00dfe") == usernames.skeleton("STRASSE")
    assert usernames.skeleton("paypal") == usernames.skeleton("p\u0430yp\u0430l")
    assert usernames.skeleton("alice") != usernames.skeleton("alicia")
    assert len(usernames.key("x" * 150)) == 64


def test_sign_in_matches_the_exact_name_only(anon_client: TestClient, database: Database) -> None:
    make_user(database, "Alice")
    for typed, expected in (("Alice", 303), ("alice", 401), ("\u0410lice", 401)):
        fresh = TestClient(anon_client.app)
        response = fresh.post(
            "/login",
            data={"username": typed, "password": DEFAULT_PASSWORD, "csrf_token": login_csrf(fresh)},
            follow_redirects=False,
        )
        assert response.status_code == expected, typed


def test_look_alike_names_share_one_sign_in_count(settings: Settings, database: Database) -> None:
    make_user(database, "alice")
    limited = settings.model_copy(update={"signin_limit_per_account": "2/15 minutes"})
    with TestClient(create_app(limited, database)) as client:
        for typed in ("Alice", "\u0430lice"):
            response = client.post(
                "/login",
                data={"username": typed, "password": "wrong", "csrf_token": login_csrf(client)},
                follow_redirects=False,
            )
            assert response.status_code == 401
        right = client.post(
            "/login",
            data={
                "username": "alice",
                "password": DEFAULT_PASSWORD,
                "csrf_token": login_csrf(client),
            },
            follow_redirects=False,
        )
        assert right.status_code == 429


def test_users_that_collided_before_the_rule_keep_working(fresh_database: Database) -> None:
    migrate.upgrade(fresh_database, "0012")
    with fresh_database.engine.begin() as connection:
        for name in ("admin", "Admin", "\u0430dmin"):
            connection.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, created_at) "
                    "VALUES (:name, :hash, 'admin', CURRENT_TIMESTAMP)"
                ),
                {"name": name, "hash": auth_service.hash_password(DEFAULT_PASSWORD)},
            )
    migrate.upgrade(fresh_database)
    with fresh_database.engine.connect() as connection:
        keys = dict(connection.execute(text("SELECT username, username_key FROM users")).all())
    assert keys == {"admin": usernames.key("admin"), "Admin": None, "\u0430dmin": None}
    with fresh_database.session() as session:
        for name in ("admin", "Admin", "\u0430dmin"):
            user = auth_service.authenticate(session, name, DEFAULT_PASSWORD)
            assert user is not None and user.username == name
        with pytest.raises(auth_service.NameTaken):
            auth_service.create_user(session, "ADMIN", DEFAULT_PASSWORD, Role.viewer)
        assert auth_service.create_user(session, "bob", DEFAULT_PASSWORD).username_key
