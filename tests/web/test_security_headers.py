"""Security headers on every answer: every page and API route, static files, errors."""

from __future__ import annotations

from fastapi.testclient import TestClient

from product_importer.app import create_app
from product_importer.db import Database
from product_importer.settings import Settings
from tests.routes_walk import api_routes, concrete

EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def _check(response: object, where: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, (where, name)
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy, where
    assert (
        "script-src 'self'" in policy
        and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    )
    assert "strict-transport-security" not in headers, where


def test_every_get_route_and_error_carries_the_headers(client: TestClient) -> None:
    checked = 0
    for method, path, _route in api_routes(client.app):  # type: ignore[arg-type]
        if method != "GET" or path.endswith("/events"):
            continue
        response = client.get(concrete(path), follow_redirects=False)
        _check(response, path)
        checked += 1
    assert checked >= 15
    for path in ("/static/app.css", "/static/swagger/swagger-ui.css", "/nowhere", "/login"):
        _check(client.get(path), path)
    _check(client.post("/api/products", json={}), "422")
    anonymous = TestClient(client.app)
    _check(anonymous.get("/api/products"), "401")
    _check(anonymous.get("/products", follow_redirects=False), "303")


def test_pages_have_no_inline_script(client: TestClient) -> None:
    for path in ("/import", "/products", "/webhooks", "/system", "/docs", "/login"):
        page = client.get(path).text
        for chunk in page.split("<script")[1:]:
            assert chunk.lstrip().startswith("src="), (path, chunk[:80])
        assert " onclick=" not in page and " onload=" not in page and "javascript:" not in page


def test_hsts_only_when_the_cookie_is_secure(settings: Settings, database: Database) -> None:
    secure = settings.model_copy(update={"cookie_secure": True})
    with TestClient(create_app(secure, database)) as client:
        hsts = client.get("/healthz").headers["strict-transport-security"]
        assert hsts.startswith("max-age=31536000")
