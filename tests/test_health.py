from pathlib import Path

from fastapi.testclient import TestClient

from product_importer.app import create_app
from product_importer.db import Database
from tests.conftest import make_settings


def test_healthz_needs_no_credentials(anon_client: TestClient) -> None:
    response = anon_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    database = Database(url)
    with TestClient(create_app(make_settings(tmp_path, url), database)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}
