"""The HTML pages: shells that the static JavaScript fills from the JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from product_importer.auth.dependencies import (
    AccountPage,
    AdminPage,
    PageForbidden,
    ViewerPage,
    csrf_token,
)
from product_importer.auth.roles import Role, at_least
from product_importer.auth.service import Principal
from product_importer.templating import templates

router = APIRouter(include_in_schema=False)

# Page, its title in the navigation, and the least role that sees it there (and may open it,
# but for Fields: every role may read the fields; only admins, who change them, find it listed).
PAGES: dict[str, tuple[str, Role]] = {
    "import": ("Import", Role.viewer),
    "feeds": ("Feeds", Role.viewer),
    "products": ("Products", Role.viewer),
    "changes": ("Changes", Role.viewer),
    "fields": ("Fields", Role.admin),
    "webhooks": ("Webhooks", Role.admin),
    "system": ("System", Role.viewer),
    "users": ("Users", Role.admin),
    "tokens": ("API tokens", Role.admin),
    "audit": ("Audit", Role.admin),
}
# Pages reached from elsewhere than the navigation (the user name links to the account page).
OTHER_PAGES: dict[str, tuple[str, Role]] = {
    "account": ("Account", Role.viewer),
    "forbidden": ("Not allowed", Role.viewer),
}


def _render(request: Request, principal: Principal, page: str, **extra: object) -> Response:
    """A page shell; the navigation lists only the pages the user's role can open."""
    role = principal.role
    return templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "page": page,
            "title": (PAGES | OTHER_PAGES)[page][0],
            "pages": {key: label for key, (label, need) in PAGES.items() if at_least(role, need)},
            "user": principal.name,
            "role": role.value,
            "can_edit": at_least(role, Role.editor),
            "is_admin": at_least(role, Role.admin),
            "csrf_token": csrf_token(request),
            "must_change_password": principal.must_change_password,
            **extra,
        },
    )


def forbidden_page(request: Request, exc: PageForbidden) -> Response:
    """The Not-allowed page, with the navigation and Sign out of the user's role."""
    response = _render(request, exc.principal, "forbidden", message=str(exc))
    response.status_code = 403
    return response


def _human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.3g} {unit}"


@router.get("/")
def home(_principal: ViewerPage) -> RedirectResponse:
    return RedirectResponse("/import", status_code=303)


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, principal: ViewerPage) -> Response:
    limit = request.app.state.settings.max_upload_bytes
    return _render(request, principal, "import", max_upload=_human_bytes(limit))


@router.get("/feeds", response_class=HTMLResponse)
def feeds_page(request: Request, principal: ViewerPage) -> Response:
    return _render(request, principal, "feeds")


@router.get("/products", response_class=HTMLResponse)
def products_page(request: Request, principal: ViewerPage) -> Response:
    days = request.app.state.settings.history_retention_days
    return _render(request, principal, "products", retention_days=f"{days:g}")


@router.get("/changes", response_class=HTMLResponse)
def changes_page(request: Request, principal: ViewerPage) -> Response:
    days = request.app.state.settings.history_retention_days
    return _render(request, principal, "changes", retention_days=f"{days:g}")


@router.get("/fields", response_class=HTMLResponse)
def fields_page(request: Request, principal: ViewerPage) -> Response:
    days = request.app.state.settings.history_retention_days
    return _render(request, principal, "fields", retention_days=f"{days:g}")


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, principal: AdminPage) -> Response:
    return _render(request, principal, "webhooks")


@router.get("/system", response_class=HTMLResponse)
def system_page(request: Request, principal: ViewerPage) -> Response:
    return _render(request, principal, "system")


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, principal: AdminPage) -> Response:
    return _render(request, principal, "users")


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, principal: AdminPage) -> Response:
    return _render(request, principal, "tokens")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, principal: AdminPage) -> Response:
    return _render(request, principal, "audit")


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, principal: AccountPage) -> Response:
    return _render(request, principal, "account")
