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
}


def _render(request: Request, principal: PagePrincipal, page: str) -> Response:
    return templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "page": page,
            "title": PAGES[page],
            "pages": PAGES,
            "user": principal.name,
            "csrf_token": csrf_token(request),
        },
    )


@router.get("/")
def home(_principal: PagePrincipal) -> RedirectResponse:
    return RedirectResponse("/import", status_code=303)


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, principal: PagePrincipal) -> Response:
    return _render(request, principal, "import")


@router.get("/products", response_class=HTMLResponse)
def products_page(request: Request, principal: PagePrincipal) -> Response:
    return _render(request, principal, "products")


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, principal: PagePrincipal) -> Response:
    return _render(request, principal, "webhooks")
