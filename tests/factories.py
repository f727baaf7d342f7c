"""Small typed factories for test data."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from product_importer.auth import service as auth_service
from product_importer.auth.roles import Role
from product_importer.catalog.models import Product, sku_key
from product_importer.catalog.search import catchup, documents, writing
from product_importer.db import Database

DEFAULT_PASSWORD = "correct horse battery"


def make_user(
    database: Database,
    username: str = "alice",
    password: str = DEFAULT_PASSWORD,
    role: Role = Role.admin,
) -> int:
    with database.session() as session:
        return auth_service.create_user(session, username, password, role).id


def make_token(database: Database, name: str = "ci", role: Role = Role.admin) -> str:
    with database.session() as session:
        _token, clear = auth_service.create_token(session, name, role=role)
    return clear


def make_product(
    database: Database, sku: str, name: str = "A product", description: str = ""
) -> int:
    with database.session() as session:
        product = Product(sku=sku, sku_key=sku_key(sku), name=name, description=description)
        session.add(product)
        session.flush()
        writing.note_product(session, product.id)
        return product.id


def login_csrf(client: TestClient) -> str:
    page = client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "sign-in form has no CSRF token"
    return match.group(1)


def sign_in(
    client: TestClient,
    database: Database,
    username: str = "alice",
    role: Role = Role.admin,
    *,
    create: bool = True,
) -> None:
    """Sign in through the real form; afterwards the client sends the session's CSRF header."""
    if create:
        make_user(database, username, role=role)
    response = client.post(
        "/login",
        data={"username": username, "password": DEFAULT_PASSWORD, "csrf_token": login_csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    shell = client.get("/products")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', shell.text)
    assert match
    client.headers["X-CSRF-Token"] = match.group(1)


def make_webhook(
    database: Database,
    url: str,
    events: list[str] | None = None,
    *,
    enabled: bool = True,
) -> tuple[int, str]:
    """A webhook endpoint, through the service (private targets allowed); (id, secret)."""
    from product_importer.settings import Settings
    from product_importer.webhooks import schemas
    from product_importer.webhooks import service as webhook_service

    data = schemas.WebhookCreate.model_validate(
        {"url": url, "events": events or ["product.created"], "enabled": enabled}
    )
    settings = Settings(_env_file=None, webhook_allow_private=True)  # type: ignore[call-arg]
    with database.session() as session:
        endpoint = webhook_service.create(session, data, settings)
        return endpoint.id, endpoint.secret


def index_everything(session: Session) -> None:
    """Tests that write products directly: put them all in the fresh set, then run the catch-up
    until the index holds them, as the background would."""
    document = (
        documents.SQLITE_DOCUMENT
        if session.get_bind().dialect.name == "sqlite"
        else documents.PG_DOCUMENT
    )
    session.execute(text("DELETE FROM search_fresh"))
    session.execute(
        text(f"INSERT INTO search_fresh (product_id, document) SELECT id, {document} FROM products")
    )
    while catchup.catch_up_batch(session):
        pass
