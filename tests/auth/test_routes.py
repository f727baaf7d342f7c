from typing import Annotated

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from pydantic import SecretStr

from product_importer.app import create_app
from product_importer.auth.dependencies import require_principal
from product_importer.db import Database
from product_importer.settings import Settings
from tests.factories import DEFAULT_PASSWORD, login_csrf, make_token, make_user


def _post_login(client: TestClient, **fields: str) -> object:
    data = {"username": "alice", "password": DEFAULT_PASSWORD, "csrf_token": login_csrf(client)}
    data.update(fields)
    return client.post("/login", data=data, follow_redirects=False)


def test_sign_in_sets_a_safe_session_cookie_and_shows_the_shell(
    anon_client: TestClient, database: Database
) -> None:
    make_user(database)
    response = _post_login(anon_client, next="/webhooks")
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/webhooks"  # type: ignore[attr-defined]
    cookie = response.headers["set-cookie"].lower()  # type: ignore[attr-defined]
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    page = anon_client.get("/webhooks")
    assert page.status_code == 200
    assert 'aria-current="page">Webhooks' in page.text
    assert "alice" in page.text


def test_wrong_password_is_refused_with_a_message(
    anon_client: TestClient, database: Database
) -> None:
    make_user(database)
    response = _post_login(anon_client, password="not the password")
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert "Wrong username or password." in response.text  # type: ignore[attr-defined]
    assert anon_client.get("/api/me").status_code == 401


def test_sign_in_without_csrf_token_is_refused(anon_client: TestClient, database: Database) -> None:
    make_user(database)
    anon_client.get("/login")
    response = anon_client.post(
        "/login",
        data={"username": "alice", "password": DEFAULT_PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "expired" in response.text


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"],
)
def test_sign_in_never_redirects_off_site(
    anon_client: TestClient, database: Database, target: str
) -> None:
    make_user(database)
    response = _post_login(anon_client, next=target)
    assert response.headers["location"] == "/"  # type: ignore[attr-defined]


def test_oversized_sign_in_fields_get_a_422_not_a_500(
    anon_client: TestClient, database: Database
) -> None:
    response = anon_client.post(
        "/login", data={"username": "a" * 10_000, "password": "x", "csrf_token": "x"}
    )
    assert response.status_code == 422


def test_sign_out_ends_the_session(client: TestClient) -> None:
    assert client.get("/api/me").json()["kind"] == "user"
    csrf = client.headers["X-CSRF-Token"]
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/api/me").status_code == 401
    assert (
        client.get("/import", follow_redirects=False).headers["location"] == "/login?next=/import"
    )


def test_bearer_tokens_authenticate_api_requests(
    anon_client: TestClient, database: Database
) -> None:
    token = make_token(database, "automation")
    response = anon_client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {
        "name": "automation",
        "kind": "token",
        "role": "admin",
        "user_id": None,
        "must_change_password": False,
    }
    for header in (f"Bearer {token}x", "Basic abc", "Bearer ", token):
        bad = anon_client.get("/api/me", headers={"Authorization": header})
        assert bad.status_code == 401, header
        assert bad.headers["www-authenticate"] == "Bearer"


def test_environment_token_authenticates(database: Database, settings: Settings) -> None:
    configured = settings.model_copy(update={"api_token": SecretStr("from-the-environment")})
    with TestClient(create_app(configured, database)) as client:
        ok = client.get("/api/me", headers={"Authorization": "Bearer from-the-environment"})
        assert ok.json()["kind"] == "env-token"
        assert ok.json()["role"] == "admin"  # the environment token acts as admin


def _app_with_a_write_route(settings: Settings, database: Database) -> TestClient:
    app = create_app(settings, database)
    router = APIRouter()

    @router.post("/api/_probe")
    def probe(_principal: Annotated[object, Depends(require_principal)]) -> dict[str, bool]:
        return {"ok": True}

    app.include_router(router)
    return TestClient(app)


def test_cookie_requests_that_change_state_need_the_csrf_header(
    settings: Settings, database: Database
) -> None:
    from tests.factories import sign_in

    with _app_with_a_write_route(settings, database) as client:
        sign_in(client, database)
        assert client.post("/api/_probe").json() == {"ok": True}
        csrf = client.headers.pop("X-CSRF-Token")
        refused = client.post("/api/_probe")
        assert refused.status_code == 403
        assert "X-CSRF-Token" in refused.json()["detail"]
        assert client.post("/api/_probe", headers={"X-CSRF-Token": csrf + "x"}).status_code == 403
        token = make_token(database)
        bearer = client.post("/api/_probe", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 200


def test_no_secret_reaches_the_logs(
    anon_client: TestClient, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token(database)
    make_user(database)
    _post_login(anon_client)
    anon_client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert token not in caplog.text
    assert DEFAULT_PASSWORD not in caplog.text
