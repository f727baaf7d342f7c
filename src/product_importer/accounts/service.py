"""Managing users and API tokens, and each user's own account. Nothing here commits.

Rules kept here: a token's role is at most its creator's; the last active admin can be
neither demoted nor deactivated; a role change, a deactivation, a password change or reset
ends the user's sessions (their session generation goes up); a password an admin hands out
(a new user's, a reset) is one-time: the user must set their own at the next sign-in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from product_importer.auth import service as auth_service
from product_importer.auth.models import ApiToken, User
from product_importer.auth.roles import Role, at_least
from product_importer.auth.service import Principal
from product_importer.db import utcnow


class AccountError(Exception):
    """A rule was broken; the message is safe to show."""


class NotFound(AccountError):
    pass


class Conflict(AccountError):
    """The request contradicts the current state (a taken name, the last admin)."""


class Forbidden(AccountError):
    """The request asks for more than the asker has."""


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def create_user(session: Session, username: str, role: Role) -> tuple[User, str]:
    """A new user with a generated one-time password, returned to show once."""
    if auth_service.find_user(session, username) is not None:
        raise Conflict(f"User '{username.strip()}' already exists.")
    password = auth_service.generate_password()
    try:
        user = auth_service.create_user(session, username, password, role)
    except auth_service.NameTaken as exc:
        raise Conflict(str(exc)) from None
    except auth_service.AuthError as exc:
        raise AccountError(str(exc)) from None
    user.must_change_password = True
    return user, password


def _other_active_admins(session: Session, user: User) -> int:
    # On PostgreSQL every active admin's row stays locked, in id order, until the end of the
    # transaction: of two admins demoting each other at once, the second waits, then sees the
    # first change and is refused (no deadlock, no two demotions).
    ids = session.scalars(
        select(User.id)
        .where(User.role == Role.admin.value, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    )
    return len([admin_id for admin_id in ids if admin_id != user.id])


def update_user(session: Session, user_id: int, role: Role | None, active: bool | None) -> User:
    user = get_user(session, user_id)
    loses_admin = (
        user.role == Role.admin.value
        and user.active
        and ((role is not None and role != Role.admin) or active is False)
    )
    if loses_admin and _other_active_admins(session, user) == 0:
        raise Conflict(
            f"'{user.username}' is the last active admin: make another user admin first."
        )
    changed = False
    if role is not None and role.value != user.role:
        user.role = role.value
        changed = True
    if active is not None and active != user.active:
        user.active = active
        changed = True
    if changed:
        auth_service.end_sessions(user)
    return user


def reset_password(session: Session, user_id: int) -> tuple[User, str]:
    user = get_user(session, user_id)
    password = auth_service.generate_password()
    auth_service.change_password(user, password)
    user.must_change_password = True  # the admin knows it: the user sets their own
    return user, password


def change_own_password(session: Session, user_id: int, current: str, new: str) -> User:
    user = get_user(session, user_id)
    if not auth_service.verify_password(user, current):
        raise Forbidden("The current password is wrong.")
    if current == new:
        raise AccountError("The new password must differ from the current one.")
    try:
        auth_service.change_password(user, new)
    except auth_service.AuthError as exc:
        raise AccountError(str(exc)) from None
    return user


def sign_out_everywhere(session: Session, user_id: int) -> User:
    user = get_user(session, user_id)
    auth_service.end_sessions(user)
    return user


def list_tokens(session: Session) -> list[tuple[ApiToken, str | None]]:
    """Tokens, newest first, with the name of the user who created each."""
    rows = session.execute(
        select(ApiToken, User.username)
        .outerjoin(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id.desc())
    )
    return [(token, username) for token, username in rows]


def create_token(
    session: Session,
    creator: Principal,
    name: str,
    role: Role,
    expires_at: datetime | None,
) -> tuple[ApiToken, str]:
    if not at_least(creator.role, role):
        raise Forbidden(
            f"A token's role can be at most yours ({creator.role.value}), not {role.value}."
        )
    try:
        return auth_service.create_token(session, name, creator.user_id, role, expires_at)
    except auth_service.AuthError as exc:
        raise AccountError(str(exc)) from None


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No API token with id {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def token_status(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= utcnow():
        return "expired"
    return "active"


def count_active_admins(session: Session) -> int:
    query = select(func.count()).where(User.role == Role.admin.value, User.active.is_(True))
    return session.scalar(query) or 0
