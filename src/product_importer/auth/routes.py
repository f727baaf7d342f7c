"""Sign-in and sign-out pages (cookie session), and who-am-I for the API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from product_importer.auth import service as auth_service
from product_importer.db import utcnow
from product_importer.dependencies import (
    DbSession,
    Viewer,
    csrf_is_valid,
    csrf_token,
)
from product_importer.web.templating import templates

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


def _login_page(request: Request, next_url: str, error: str | None, code: int) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"csrf_token": csrf_token(request), "next": _safe_next(next_url), "error": error},
        status_code=code,
    )


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, next, None, status.HTTP_200_OK)


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
def login(
    request: Request,
    session: DbSession,
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
    user = auth_service.authenticate(session, username, password)
    if user is None:
        return _login_page(
            request, next_url, "Wrong username or password.", status.HTTP_401_UNAUTHORIZED
        )
    # A fresh session on sign-in, so a token planted before sign-in is worthless after it.
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["gen"] = user.session_generation
    user.last_sign_in_at = utcnow()
    csrf_token(request)
    return RedirectResponse(_safe_next(next_url), status_code=status.HTTP_303_SEE_OTHER)


@router.post("/logout", include_in_schema=False)
def logout(
    request: Request,
    csrf: Annotated[str, Form(alias="csrf_token", max_length=200)] = "",
) -> Response:
    if request.session.get("user_id") is not None and not csrf_is_valid(request, csrf):
        return Response(
            "Sign-out form expired; reload the page.", status_code=status.HTTP_400_BAD_REQUEST
        )
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
