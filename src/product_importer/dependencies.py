"""Request dependencies shared by every domain's routes: the unit of work and who is asking."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from product_importer.auth import service as auth_service
from product_importer.db import Database
from product_importer.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_session(database: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    """The request's unit of work: committed before the response is sent, or rolled back."""
    with database.session() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings)]


class LoginRequired(Exception):
    """A page was asked for without a signed-in session; answered with a redirect."""


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_is_valid(request: Request, supplied: str | None) -> bool:
    expected = request.session.get("csrf")
    return (
        isinstance(expected, str)
        and supplied is not None
        and hmac.compare_digest(expected.encode(), supplied.encode())
    )


def _resolve(request: Request, session: Session, settings: Settings) -> auth_service.Principal:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "Authorization header must be 'Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        env_token = settings.api_token.get_secret_value() if settings.api_token else None
        principal = auth_service.principal_for_token(session, token.strip(), env_token)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "Invalid or revoked API token.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal  # bearer requests carry no ambient credentials, so no CSRF check
    user_id = request.session.get("user_id")
    principal = (
        auth_service.principal_for_user_id(session, user_id) if isinstance(user_id, int) else None
    )
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Not signed in: sign in at /login or send 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method not in SAFE_METHODS and not csrf_is_valid(
        request, request.headers.get(CSRF_HEADER)
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"Missing or wrong {CSRF_HEADER} header for a signed-in browser request.",
        )
    return principal


def require_principal(
    request: Request, session: DbSession, settings: AppSettings
) -> auth_service.Principal:
    return _resolve(request, session, settings)


def require_page_principal(
    request: Request, session: DbSession, settings: AppSettings
) -> auth_service.Principal:
    try:
        return _resolve(request, session, settings)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            raise LoginRequired from None
        raise


CurrentPrincipal = Annotated[auth_service.Principal, Depends(require_principal)]
PagePrincipal = Annotated[auth_service.Principal, Depends(require_page_principal)]
