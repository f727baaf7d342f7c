"""Walk every registered route of the app (included routers too), for the route tests."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

from product_importer.auth.roles import Role

PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout")}
PUBLIC_MOUNTS = {"/static", "/static/swagger"}


def concrete(path: str, value: str = "1") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def _flatten(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flatten(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        else:
            yield prefix, route


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, full path, route) for every route that is not a static mount."""
    for prefix, route in _flatten(app.routes):
        if isinstance(route, Mount):
            assert route.path in PUBLIC_MOUNTS, f"unexpected mount {route.path}"
            continue
        assert isinstance(route, APIRoute), f"unexpected route type {route!r}"
        for method in sorted(route.methods):
            yield method, prefix + route.path, route


def declared_roles(dependant: Dependant) -> set[Role]:
    """Roles declared by the route's dependencies (`Viewer`, `Editor`, `Admin`, pages too)."""
    found: set[Role] = set()
    for sub in dependant.dependencies:
        role = getattr(sub.call, "required_role", None)
        if role is not None:
            found.add(role)
        found |= declared_roles(sub)
    return found
