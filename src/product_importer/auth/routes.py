"""Sign-in and sign-out pages (cookie session), and who-am-I for the API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from product_importer.auth import auditing as audit
from product_importer.auth import service as auth_service
from product_importer.auth.dependencies import (
    AppSettings,
    DbSession,
    Guard,
    ViewerOwingPassword,
    client_address,
    csrf_is_valid,
    csrf_token,
)
from product_importer.auth.ratelimit import BUSY_MESSAGE, SignInGuard, TooManyAttempts
from product_importer.auth.roles import Role
from product_importer.db import utcnow
from product_importer.settings import Settings
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
    settings: AppSettings,
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
    with guard.slot() as admitted:
        if not admitted:  # a burst: answered at once, holding no thread or connection
            return _login_page(
                request,
                next_url,
                BUSY_MESSAGE,
                status.HTTP_429_TOO_MANY_REQUESTS,
                {"Retry-After": "1"},
            )
        return _sign_in(request, session, guard, settings, username, password, next_url)


def _sign_in(
    request: Request,
    session: Session,
    guard: SignInGuard,
    settings: Settings,
    username: str,
    password: str,
    next_url: str,
) -> Response:
    address = client_address(request)
    attempt = guard.attempt(username, address)  # counted before the password is checked
    if isinstance(attempt, TooManyAttempts):
        return _login_page(
            request,
            next_url,
            attempt.message,
            status.HTTP_429_TOO_MANY_REQUESTS,
            {"Retry-After": str(attempt.retry_after)},
        )
    user = auth_service.find_user(session, username)
    seen_hash = user.password_hash if user else None
    # The connection goes back to the pool while argon2 runs (a tenth of a second of CPU):
    # sign-ins must not hold connections that API requests are waiting for.
    session.commit()
    matches = auth_service.password_matches(user, password)
    if matches and user is not None:
        session.refresh(user)  # deactivated, or the password changed, while it was checked?
        matches = user.active and user.password_hash == seen_hash
    if not matches or user is None:
        audit.record(
            session,
            None,
            "auth.sign_in_failed",
            ip=address,
            # Only a real user name is kept: what was typed may be a password.
            actor_name=user.username if user else "unknown user",
        )
        return _login_page(
            request, next_url, "Wrong username or password.", status.HTTP_401_UNAUTHORIZED
        )
    guard.succeeded(attempt)
    auth_service.rehash_if_needed(user, password)
    # A fresh session on sign-in, so a token planted before sign-in is worthless after it.
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["gen"] = user.session_generation
    request.session["sid"] = auth_service.start_session(
        session, user, settings.session_max_age_seconds
    )
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
    session_id = request.session.get("sid")
    if isinstance(user_id, int) and isinstance(generation, int) and isinstance(session_id, str):
        principal = auth_service.principal_for_session(session, user_id, generation, session_id)
        if principal is not None:
            audit.record(session, principal, "auth.sign_out", ip=client_address(request))
        # Ended on the server, not only forgotten by this browser: a copy of the cookie
        # (a shared computer, a stolen backup) signs in no more.
        auth_service.end_session(session, session_id)
    request.session.clear()
    return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/api/me", tags=["auth"])
def me(principal: ViewerOwingPassword) -> dict[str, str | int | bool | None]:
    """Who the request is authenticated as, with which role, and whether the session must
    set its own password before anything else (a one-time password from an admin)."""
    return {
        "name": principal.name,
        "kind": principal.kind,
        "role": principal.role.value,
        "user_id": principal.user_id,
        "must_change_password": principal.must_change_password,
    }
