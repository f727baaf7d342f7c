"""Request dependencies shared by every domain's routes: the unit of work and who is asking."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, status
from sqlalchemy.orm import Session

from product_importer.auth import auditing as audit_service
from product_importer.auth import service as auth_service
from product_importer.auth.ratelimit import SignInGuard
from product_importer.auth.roles import Role, at_least
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
    with database.session(request=True) as session:
        yield session


DbSession = Annotated[Session, Depends(get_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings)]


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


# On answers that carry a secret shown once (a token, a password, a signing secret): no cache
# on the way, nor the browser's, keeps a copy. HTML pages get it from SecurityHeadersMiddleware.
NoStore = Depends(_no_store)


def client_address(request: Request) -> str:
    """The client's address (the proxy's forwarded one when the server trusts the proxy)."""
    return request.client.host if request.client else "unknown"


def get_signin_guard(request: Request) -> SignInGuard:
    guard: SignInGuard = request.app.state.signin_guard
    return guard


Guard = Annotated[SignInGuard, Depends(get_signin_guard)]


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
    generation = request.session.get("gen", 0)
    session_id = request.session.get("sid")
    principal = (
        auth_service.principal_for_session(session, user_id, generation, session_id)
        if isinstance(user_id, int) and isinstance(generation, int) and isinstance(session_id, str)
        else None
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
    """Authentication only. Routes declare a role instead (`Viewer`, `Editor`, `Admin`); the
    route-role test fails for a route that depends on this alone."""
    return _resolve(request, session, settings)


class PageForbidden(Exception):
    """A signed-in user asked for a page their role cannot use; answered with an HTML page."""

    def __init__(self, needed: Role, principal: auth_service.Principal) -> None:
        super().__init__(forbidden_message(needed, principal.role))
        self.needed = needed
        self.principal = principal  # the page keeps the navigation of their role


class PasswordChangeRequired(Exception):
    """A signed-in user with a one-time password asked for a page; sent to set their own."""


# Not a secret: what a session holding a one-time password is told.
OWN_PASSWORD_FIRST = (
    "Set your own password first: this account has a one-time password from an admin. "  # noqa: S105
    "Change it on the account page (/account) or with POST /api/me/password."
)


def forbidden_message(needed: Role, have: Role) -> str:
    return f"This needs the {needed.value} role; your role is {have.value}."


def _check_role(principal: auth_service.Principal, needed: Role) -> None:
    if not at_least(principal.role, needed):
        raise HTTPException(status.HTTP_403_FORBIDDEN, forbidden_message(needed, principal.role))


RoleDependency = Callable[[Request, Session, Settings], auth_service.Principal]
# By (role, whether a session with a one-time password may use it).
_api_roles: dict[tuple[Role, bool], RoleDependency] = {}
_page_roles: dict[tuple[Role, bool], RoleDependency] = {}


def require_role(role: Role, *, password_due_ok: bool = False) -> RoleDependency:
    """The one place roles are enforced: a dependency that authenticates the request and
    answers 403 naming the role needed. Its `required_role` is what the route-role test reads.
    A session whose password is one-time gets 403 too, but where `password_due_ok` (setting
    one's own password, signing out)."""
    if (role, password_due_ok) not in _api_roles:

        def dependency(
            request: Request, session: DbSession, settings: AppSettings
        ) -> auth_service.Principal:
            principal = _resolve(request, session, settings)
            if principal.must_change_password and not password_due_ok:
                raise HTTPException(status.HTTP_403_FORBIDDEN, OWN_PASSWORD_FIRST)
            _check_role(principal, role)
            request.state.principal = principal
            return principal

        dependency.required_role = role  # type: ignore[attr-defined]
        _api_roles[(role, password_due_ok)] = dependency
    return _api_roles[(role, password_due_ok)]


def require_page_role(role: Role, *, password_due_ok: bool = False) -> RoleDependency:
    """As `require_role`, for HTML pages: no session redirects to sign-in, a lesser role
    gets a page that says which role is needed, a one-time password the account page."""
    if (role, password_due_ok) not in _page_roles:

        def dependency(
            request: Request, session: DbSession, settings: AppSettings
        ) -> auth_service.Principal:
            try:
                principal = _resolve(request, session, settings)
            except HTTPException as exc:
                if exc.status_code == status.HTTP_401_UNAUTHORIZED:
                    raise LoginRequired from None
                raise
            if principal.must_change_password and not password_due_ok:
                raise PasswordChangeRequired
            if not at_least(principal.role, role):
                raise PageForbidden(role, principal)
            request.state.principal = principal
            return principal

        dependency.required_role = role  # type: ignore[attr-defined]
        _page_roles[(role, password_due_ok)] = dependency
    return _page_roles[(role, password_due_ok)]


CurrentPrincipal = Annotated[auth_service.Principal, Depends(require_principal)]
Viewer = Annotated[auth_service.Principal, Depends(require_role(Role.viewer))]
Editor = Annotated[auth_service.Principal, Depends(require_role(Role.editor))]
Admin = Annotated[auth_service.Principal, Depends(require_role(Role.admin))]
ViewerPage = Annotated[auth_service.Principal, Depends(require_page_role(Role.viewer))]
# Open to a session that must still set its own password (the account page, sign-out, /api/me).
ViewerOwingPassword = Annotated[
    auth_service.Principal, Depends(require_role(Role.viewer, password_due_ok=True))
]
AccountPage = Annotated[
    auth_service.Principal, Depends(require_page_role(Role.viewer, password_due_ok=True))
]
AdminPage = Annotated[auth_service.Principal, Depends(require_page_role(Role.admin))]


class Auditor:
    """Records audit entries for the request: its principal (set by the role dependency),
    its client address, in the request's unit of work."""

    def __init__(self, request: Request, session: Session) -> None:
        self.request = request
        self.session = session

    def __call__(
        self, action: str, target: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        principal = getattr(self.request.state, "principal", None)
        audit_service.record(
            self.session,
            principal,
            action,
            target=target,
            ip=client_address(self.request),
            details=details,
        )


def get_auditor(request: Request, session: DbSession) -> Auditor:
    return Auditor(request, session)


AuditLog = Annotated[Auditor, Depends(get_auditor)]
