"""Walk every registered route and check that none but the public ones answer without sign-in."""

from fastapi.testclient import TestClient

from tests.routes_walk import PUBLIC, api_routes, concrete


def test_every_route_needs_credentials(anon_client: TestClient) -> None:
    checked = 0
    for method, path, route in api_routes(anon_client.app):  # type: ignore[arg-type]
        if (method, path) in PUBLIC:
            continue
        response = anon_client.request(method, concrete(path), follow_redirects=False)
        if route.include_in_schema and path.startswith("/api"):
            assert response.status_code == 401, (method, path, response.status_code)
            assert "detail" in response.json()
        elif response.status_code == 303:
            assert response.headers["location"].startswith("/login?next=")
        else:
            assert response.status_code == 401, (method, path, response.status_code)
        checked += 1
    assert checked >= 6  # pages, docs, openapi and the API are all walked


def test_static_assets_are_public_and_local(anon_client: TestClient) -> None:
    assert anon_client.get("/static/app.css").status_code == 200
    assert anon_client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    page = anon_client.get("/login").text
    assert "http://" not in page and "https://" not in page


def test_api_docs_work_offline_for_a_signed_in_user(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Product Importer"
    assert "/healthz" in spec["paths"]
