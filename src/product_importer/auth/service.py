"""Users, passwords and API tokens. Never logs or stores a secret in clear."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from product_importer.auth.models import ApiToken, User
from product_importer.db import utcnow

_hasher = PasswordHasher()
TOKEN_PREFIX = "pi_"  # noqa: S105 (a label, not a secret)
USERNAME_MAX_LENGTH = 150
PASSWORD_MIN_LENGTH = 8


class AuthError(Exception):
    """A rule about users or tokens was broken; the message is safe to show."""


@dataclass(frozen=True)
class Principal:
    """Who is making a request: a signed-in user or an API token."""

    kind: str  # "user" | "token" | "env-token"
    name: str
    user_id: int | None = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def has_users(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(User)) != 0


def create_user(session: Session, username: str, password: str) -> User:
    username = username.strip()
    if not username or len(username) > USERNAME_MAX_LENGTH:
        raise AuthError(f"Username must be 1 to {USERNAME_MAX_LENGTH} characters.")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AuthError(f"Password must be at least {PASSWORD_MIN_LENGTH} characters.")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise AuthError(f"User '{username}' already exists.")
    user = User(username=username, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> None:
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise AuthError(f"No user named '{username}'.")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AuthError(f"Password must be at least {PASSWORD_MIN_LENGTH} characters.")
    user.password_hash = hash_password(password)


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        # Spend the same time as a real check so usernames cannot be probed by timing.
        _hasher.hash(password)
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, user_id: int | None = None) -> tuple[ApiToken, str]:
    """Create a token and return it with its clear text, which is never stored."""
    name = name.strip()
    if not name or len(name) > 150:
        raise AuthError("Token name must be 1 to 150 characters.")
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=_digest(clear), prefix=clear[:10], user_id=user_id)
    session.add(token)
    session.flush()
    return token, clear


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise AuthError(f"No API token with id {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def principal_for_token(session: Session, token: str, env_token: str | None) -> Principal | None:
    if env_token and hmac.compare_digest(token.encode(), env_token.encode()):
        return Principal(kind="env-token", name="PRODUCT_IMPORTER_API_TOKEN")
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    # Record use at most once a minute, so reads do not each cost a write.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return Principal(kind="token", name=row.name, user_id=row.user_id)


def principal_for_user_id(session: Session, user_id: int) -> Principal | None:
    user = session.get(User, user_id)
    if user is None:
        return None
    return Principal(kind="user", name=user.username, user_id=user.id)


def bootstrap_admin(session: Session) -> str | None:
    """On an installation with no users, create `admin` and return its one-time password."""
    if has_users(session):
        return None
    password = generate_password()
    create_user(session, "admin", password)
    return password
