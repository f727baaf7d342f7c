"""The HTML pages: shells that the static JavaScript fills from the JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from product_importer.dependencies import PagePrincipal, csrf_token
from product_importer.web.templating import templates

router = APIRouter(include_in_schema=False)

PAGES = {
    "import": "Import",
    "products": "Products",
    "webhooks": "Webhooks",
    "system": "System",
}


def _render(request: Request, principal: PagePrincipal, page: str, **extra: object) -> Response:
    return templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "page": page,
            "title": PAGES[page],
            "pages": PAGES,
            "user": principal.name,
            "csrf_token": csrf_token(request),
            **extra,
        },
    )


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
def home(_principal: PagePrincipal) -> RedirectResponse:
    return RedirectResponse("/import", status_code=303)


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, principal: PagePrincipal) -> Response:
    limit = request.app.state.settings.max_upload_bytes
    return _render(request, principal, "import", max_upload=_human_bytes(limit))


@router.get("/products", response_class=HTMLResponse)
def products_page(request: Request, principal: PagePrincipal) -> Response:
    days = request.app.state.settings.history_retention_days
    return _render(request, principal, "products", retention_days=f"{days:g}")


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, principal: PagePrincipal) -> Response:
    return _render(request, principal, "webhooks")


@router.get("/system", response_class=HTMLResponse)
def system_page(request: Request, principal: PagePrincipal) -> Response:
    return _render(request, principal, "system")
