"""Users and API tokens (admins), and each signed-in user's own account."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status

from product_importer.accounts import schemas
from product_importer.accounts import service as accounts
from product_importer.audit import service as audit
from product_importer.auth.dependencies import (
    Admin,
    DbSession,
    Guard,
    NoStore,
    ViewerOwingPassword,
    client_address,
)
from product_importer.auth.models import ApiToken, User
from product_importer.auth.ratelimit import BUSY_MESSAGE, TooManyAttempts

router = APIRouter(tags=["accounts"])

MAX_ID = 2**31 - 1
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.")]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="The token's id.")]


def _http(exc: accounts.AccountError) -> HTTPException:
    code = status.HTTP_400_BAD_REQUEST
    if isinstance(exc, accounts.NotFound):
        code = status.HTTP_404_NOT_FOUND
    elif isinstance(exc, accounts.Conflict):
        code = status.HTTP_409_CONFLICT
    elif isinstance(exc, accounts.Forbidden):
        code = status.HTTP_403_FORBIDDEN
    return HTTPException(code, str(exc))


def _user(user: User) -> schemas.UserRead:
    return schemas.UserRead.model_validate(user)


def _token(token: ApiToken, created_by: str | None) -> schemas.TokenRead:
    return schemas.TokenRead(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        role=token.role,
        created_by=created_by,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
        status=accounts.token_status(token),
    )


@router.get("/api/users", summary="List users")
def list_users(session: DbSession, _principal: Admin) -> list[schemas.UserRead]:
    return [_user(user) for user in accounts.list_users(session)]


@router.post(
    "/api/users",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user",
    dependencies=[NoStore],
    responses={409: {"description": "The user name is taken."}},
)
def create_user(
    body: schemas.UserCreate, request: Request, session: DbSession, principal: Admin
) -> schemas.UserWithPassword:
    """Answers the new user's one-time password: this is the only time it is shown."""
    try:
        user, password = accounts.create_user(session, body.username, body.role)
    except accounts.AccountError as exc:
        raise _http(exc) from None
    audit.record(
        session,
        principal,
        "user.create",
        target=f"user:{user.username}",
        ip=client_address(request),
        details={"role": user.role},
    )
    return schemas.UserWithPassword(**_user(user).model_dump(), password=password)


@router.patch(
    "/api/users/{user_id}",
    summary="Change a user's role, or deactivate or reactivate them",
    responses={409: {"description": "The last active admin cannot lose the role."}},
)
def update_user(
    user_id: UserId,
    body: schemas.UserUpdate,
    request: Request,
    session: DbSession,
    principal: Admin,
) -> schemas.UserRead:
    """A change of role or a deactivation ends the user's sessions at once."""
    try:
        before = accounts.get_user(session, user_id)
        old = {"role": before.role, "active": before.active}
        user = accounts.update_user(session, user_id, body.role, body.active)
    except accounts.AccountError as exc:
        raise _http(exc) from None
    changes: dict[str, Any] = {
        key: {"from": old[key], "to": getattr(user, key)}
        for key in old
        if old[key] != getattr(user, key)
    }
    if changes:
        audit.record(
            session,
            principal,
            "user.update",
            target=f"user:{user.username}",
            ip=client_address(request),
            details=changes,
        )
    return _user(user)


@router.post(
    "/api/users/{user_id}/reset-password",
    summary="Reset a user's password",
    dependencies=[NoStore],
)
def reset_password(
    user_id: UserId, request: Request, session: DbSession, principal: Admin
) -> schemas.PasswordReset:
    """Sets a new one-time password, shown only in this answer, and ends the user's sessions."""
    try:
        user, password = accounts.reset_password(session, user_id)
    except accounts.AccountError as exc:
        raise _http(exc) from None
    audit.record(
        session,
        principal,
        "user.reset_password",
        target=f"user:{user.username}",
        ip=client_address(request),
    )
    return schemas.PasswordReset(password=password)


@router.get("/api/tokens", summary="List API tokens (never their values)")
def list_tokens(session: DbSession, _principal: Admin) -> list[schemas.TokenRead]:
    return [_token(token, by) for token, by in accounts.list_tokens(session)]


@router.post(
    "/api/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API token",
    dependencies=[NoStore],
    responses={403: {"description": "The role asked for is above the creator's."}},
)
def create_token(
    body: schemas.TokenCreate, request: Request, session: DbSession, principal: Admin
) -> schemas.TokenWithSecret:
    """Answers the token in `token`: this is the only time it is shown."""
    try:
        token, clear = accounts.create_token(
            session, principal, body.name, body.role, body.expires_at
        )
    except accounts.AccountError as exc:
        raise _http(exc) from None
    audit.record(
        session,
        principal,
        "token.create",
        target=f"token:{token.id} {token.name}",
        ip=client_address(request),
        details={"role": token.role, "expires_at": body.expires_at and body.expires_at.isoformat()},
    )
    by = principal.name if principal.kind == "user" else None
    return schemas.TokenWithSecret(**_token(token, by).model_dump(), token=clear)


@router.delete("/api/tokens/{token_id}", summary="Revoke an API token")
def revoke_token(
    token_id: TokenId, request: Request, session: DbSession, principal: Admin
) -> schemas.TokenRead:
    try:
        token = accounts.revoke_token(session, token_id)
    except accounts.AccountError as exc:
        raise _http(exc) from None
    audit.record(
        session,
        principal,
        "token.revoke",
        target=f"token:{token.id} {token.name}",
        ip=client_address(request),
    )
    return _token(token, None)


def _own_user_id(principal: Any) -> int:
    if principal.user_id is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "This credential belongs to no user (the environment token or a command-line token).",
        )
    user_id: int = principal.user_id
    return user_id


@router.post("/api/me/password", summary="Change your own password")
def change_own_password(
    body: schemas.PasswordChange,
    request: Request,
    session: DbSession,
    guard: Guard,
    principal: ViewerOwingPassword,
) -> dict[str, str]:
    """Needs the current password (counted by the sign-in limits); ends your other sessions."""
    user_id = _own_user_id(principal)
    address = client_address(request)
    try:
        # Counted against the account's name, as on the sign-in form (a token's name is not it).
        username = accounts.get_user(session, user_id).username
    except accounts.AccountError as exc:
        raise _http(exc) from None
    with guard.slot() as admitted:
        if not admitted:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS, BUSY_MESSAGE, headers={"Retry-After": "1"}
            )
        attempt = guard.attempt(username, address)  # counted before the password is checked
        if isinstance(attempt, TooManyAttempts):
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                attempt.message,
                headers={"Retry-After": str(attempt.retry_after)},
            )
        try:
            user = accounts.change_own_password(
                session, user_id, body.current_password, body.new_password
            )
        except accounts.Forbidden as exc:
            raise _http(exc) from None
        except accounts.AccountError as exc:
            guard.succeeded(attempt)  # the current password was right
            raise _http(exc) from None
        guard.succeeded(attempt)
    if principal.kind == "user":
        request.session["gen"] = user.session_generation  # this session goes on
    audit.record(
        session, principal, "user.change_password", target=f"user:{user.username}", ip=address
    )
    return {"detail": "Password changed. Your other sessions have ended."}


@router.post("/api/me/sign-out-everywhere", summary="End every session of your account")
def sign_out_everywhere(
    request: Request, session: DbSession, principal: ViewerOwingPassword
) -> dict[str, str]:
    """Ends every browser session of your account, this one included (API tokens stay)."""
    user = accounts.sign_out_everywhere(session, _own_user_id(principal))
    audit.record(
        session,
        principal,
        "auth.sign_out_everywhere",
        target=f"user:{user.username}",
        ip=client_address(request),
    )
    if principal.kind == "user":
        request.session.clear()
    return {"detail": "Signed out everywhere."}
