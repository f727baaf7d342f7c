"""The role matrix: every registered route declares the least role that may use it, and every
route answers each role as declared, for signed-in sessions and for API tokens.

A route added without a role (one that depends on `CurrentPrincipal` alone, or on nothing)
fails `test_every_route_declares_a_role`: tag it with `Viewer`, `Editor` or `Admin` from
`product_importer.auth.dependencies` (`ViewerPage`/`AdminPage` for HTML pages).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from product_importer.app import create_app
from product_importer.auth.roles import Role, at_least
from product_importer.db import Database
from product_importer.settings import Settings
from tests.factories import make_token, sign_in
from tests.routes_walk import PUBLIC, api_routes, concrete, declared_roles

# The routes whose role matters most, pinned so a slip in tagging them fails here too.
PINNED = {
    ("DELETE", "/api/products"): Role.admin,
    ("POST", "/api/webhooks"): Role.admin,
    ("GET", "/api/webhooks"): Role.admin,
    ("PATCH", "/api/webhooks/{endpoint_id}"): Role.admin,
    ("POST", "/api/imports"): Role.editor,
    ("POST", "/api/products"): Role.editor,
    ("PATCH", "/api/products/{product_id}"): Role.editor,
    ("DELETE", "/api/products/{product_id}"): Role.editor,
    ("GET", "/api/products"): Role.viewer,
    ("GET", "/api/products/export"): Role.viewer,
    ("GET", "/api/me"): Role.viewer,
    ("GET", "/api/fields"): Role.viewer,
    ("POST", "/api/fields"): Role.admin,
    ("PATCH", "/api/fields/{field_id}"): Role.admin,
    ("DELETE", "/api/fields/{field_id}"): Role.admin,
    ("POST", "/api/backups"): Role.admin,
    ("GET", "/api/backups"): Role.admin,
    ("GET", "/api/backups/{backup_id}/download"): Role.admin,
}
# Run last: they end the session that asks (when the role allows them). Path ids are 99999,
# which names nothing, so no request below changes another client's user or token.
LAST = ("/api/me/sign-out-everywhere",)


def _roles_by_route(app: FastAPI) -> dict[tuple[str, str], Role]:
    found: dict[tuple[str, str], Role] = {}
    for method, path, route in api_routes(app):
        if (method, path) in PUBLIC:
            continue
        roles = declared_roles(route.dependant)
        assert len(roles) == 1, f"{method} {path} declares roles {sorted(roles)}; it needs one"
        found[(method, path)] = roles.pop()
    return found


def test_every_route_declares_a_role(settings: Settings, database: Database) -> None:
    roles = _roles_by_route(create_app(settings, database))
    for key, role in PINNED.items():
        assert roles.get(key) == role, (key, roles.get(key))
    assert len(roles) >= 30


def test_a_route_without_a_role_is_caught(settings: Settings, database: Database) -> None:
    """The walk above would fail for a route that only authenticates."""
    from product_importer.auth.dependencies import CurrentPrincipal

    app = create_app(settings, database)

    @app.get("/api/untagged")
    def untagged(_principal: CurrentPrincipal) -> dict[str, str]:
        return {}

    with pytest.raises(AssertionError, match="GET /api/untagged declares roles"):
        _roles_by_route(app)


@pytest.fixture
def app(settings: Settings, database: Database) -> Iterator[FastAPI]:
    application = create_app(settings, database)
    with TestClient(application):  # runs the lifespan once for every client below
        yield application


def _clients(app: FastAPI, database: Database, kind: str) -> dict[Role, TestClient]:
    clients: dict[Role, TestClient] = {}
    for role in Role:
        client = TestClient(app)
        if kind == "session":
            sign_in(client, database, f"{role.value}-user", role)
        else:
            client.headers["Authorization"] = f"Bearer {make_token(database, role.value, role)}"
        clients[role] = client
    return clients


@pytest.mark.parametrize("kind", ["session", "token"])
def test_each_role_gets_what_the_route_declares(
    app: FastAPI, database: Database, kind: str
) -> None:
    routes = sorted(_roles_by_route(app).items(), key=lambda item: item[0][1] in LAST)
    clients = _clients(app, database, kind)
    checked = 0
    for (method, path), needed in routes:
        for role, client in clients.items():
            response = client.request(method, concrete(path, "99999"), follow_redirects=False)
            where = (kind, role.value, method, path, response.status_code)
            if at_least(role, needed):
                assert response.status_code not in (401, 403), where
            else:
                assert response.status_code == 403, where
                if response.headers["content-type"].startswith("application/json"):
                    assert f"needs the {needed.value} role" in response.json()["detail"], where
                else:
                    assert f"needs the {needed.value} role" in response.text, where
            checked += 1
    assert checked == len(routes) * 3
