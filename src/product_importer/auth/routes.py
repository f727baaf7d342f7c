"""Sign-in and sign-out pages (cookie session), and who-am-I for the API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from product_importer.auth import auditing as audit
from product_importer.auth import service as auth_service
from product_importer.auth.dependencies import (
    DbSession,
    Guard,
    Viewer,
    client_address,
    csrf_is_valid,
    csrf_token,
)
from product_importer.auth.roles import Role
from product_importer.db import utcnow
from product_importer.templating import templates

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only follow same-site relative paths after sign-in (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target


def _login_page(
    request: Request,
    next_url: str,
    error: str | None,
    code: int,
    headers: dict[str, str] | None = None,
) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"csrf_token": csrf_token(request), "next": _safe_next(next_url), "error": error},
        status_code=code,
        headers=headers,
    )


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, next, None, status.HTTP_200_OK)


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
def login(
    request: Request,
    session: DbSession,
    guard: Guard,
    username: Annotated[str, Form(max_length=150)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(alias="csrf_token", max_length=200)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    if not csrf_is_valid(request, csrf):
        return _login_page(
            request,
            next_url,
            "Your sign-in form expired. Please try again.",
            status.HTTP_400_BAD_REQUEST,
        )
    address = client_address(request)
    blocked = guard.blocked(username, address)
    if blocked is not None:
        return _login_page(
            request,
            next_url,
            blocked.message,
            status.HTTP_429_TOO_MANY_REQUESTS,
            {"Retry-After": str(blocked.retry_after)},
        )
    user = auth_service.authenticate(session, username, password)
    if user is None:
        guard.failed(username, address)
        known = auth_service.find_user(session, username)
        audit.record(
            session,
            None,
            "auth.sign_in_failed",
            ip=address,
            # Only a real user name is kept: what was typed may be a password.
            actor_name=known.username if known else "unknown user",
        )
        return _login_page(
            request, next_url, "Wrong username or password.", status.HTTP_401_UNAUTHORIZED
        )
    # A fresh session on sign-in, so a token planted before sign-in is worthless after it.
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["gen"] = user.session_generation
    user.last_sign_in_at = utcnow()
    audit.record(
        session,
        auth_service.Principal(
            kind="user", name=user.username, role=Role(user.role), user_id=user.id
        ),
        "auth.sign_in",
        ip=address,
    )
    csrf_token(request)
    return RedirectResponse(_safe_next(next_url), status_code=status.HTTP_303_SEE_OTHER)


@router.post("/logout", include_in_schema=False)
def logout(
    request: Request,
    session: DbSession,
    csrf: Annotated[str, Form(alias="csrf_token", max_length=200)] = "",
) -> Response:
    user_id = request.session.get("user_id")
    if user_id is not None and not csrf_is_valid(request, csrf):
        return Response(
            "Sign-out form expired; reload the page.", status_code=status.HTTP_400_BAD_REQUEST
        )
    generation = request.session.get("gen", 0)
    if isinstance(user_id, int) and isinstance(generation, int):
        principal = auth_service.principal_for_session(session, user_id, generation)
        if principal is not None:
            audit.record(session, principal, "auth.sign_out", ip=client_address(request))
    request.session.clear()
    return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/api/me", tags=["auth"])
def me(principal: Viewer) -> dict[str, str | int | None]:
    """Who the request is authenticated as, and with which role."""
    return {
        "name": principal.name,
        "kind": principal.kind,
        "role": principal.role.value,
        "user_id": principal.user_id,
    }
