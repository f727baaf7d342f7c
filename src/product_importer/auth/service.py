"""Users, passwords and API tokens. Never logs or stores a secret in clear."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from product_importer.auth import usernames
from product_importer.auth.models import ApiToken, User, UserSession
from product_importer.auth.roles import Role, lowest
from product_importer.db import SQLITE_BUSY_TIMEOUT_MS, utcnow

_hasher = PasswordHasher()
TOKEN_PREFIX = "pi_"  # noqa: S105 (a label, not a secret)
USERNAME_MAX_LENGTH = 150
PASSWORD_MIN_LENGTH = 8


class AuthError(Exception):
    """A rule about users or tokens was broken; the message is safe to show."""


class NameTaken(AuthError):
    """The user name, or one a reader could take for it, belongs to another user."""


@dataclass(frozen=True)
class Principal:
    """Who is making a request: a signed-in user or an API token."""

    kind: str  # "user" | "token" | "env-token"
    name: str
    role: Role
    user_id: int | None = None
    token_id: int | None = None
    # A browser session whose user holds a one-time password (never a token).
    must_change_password: bool = False


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def has_users(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(User)) != 0


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AuthError(f"Password must be at least {PASSWORD_MIN_LENGTH} characters.")


def create_user(session: Session, username: str, password: str, role: Role = Role.viewer) -> User:
    username = username.strip()
    if not username or len(username) > USERNAME_MAX_LENGTH:
        raise AuthError(f"Username must be 1 to {USERNAME_MAX_LENGTH} characters.")
    if any(not c.isprintable() for c in username):
        raise AuthError("Username must not contain control characters.")
    check_password(password)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise NameTaken(f"User '{username}' already exists.")
    key = usernames.key(username)
    alike = session.scalar(select(User.username).where(User.username_key == key))
    if alike is not None:
        raise NameTaken(_too_alike(username, alike))
    user = User(
        username=username,
        username_key=key,
        password_hash=hash_password(password),
        role=role.value,
    )
    try:
        # Two at once: the unique key refuses the second, whose user leaves the session with
        # the savepoint, so the rest of its transaction can still commit.
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        raise NameTaken(f"User '{username}' already exists, or one too like it.") from None
    return user


def _too_alike(username: str, existing: str) -> str:
    return (
        f"User name '{username}' is too like the existing user '{existing}' "
        "(names are compared ignoring case and look-alike letters)."
    )


def set_password(session: Session, username: str, password: str) -> None:
    user = find_user(session, username)
    if user is None:
        raise AuthError(f"No user named '{username}'.")
    change_password(user, password)


def change_password(user: User, password: str) -> None:
    """Set a new password and end every session signed in with the old one. The password
    is the user's own from then on (a reset marks it one-time again afterwards)."""
    check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.must_change_password = False
    end_sessions(user)


def end_sessions(user: User) -> None:
    user.session_generation += 1


def verify_password(user: User, password: str) -> bool:
    return verify_password_hash(user.password_hash, password)


def find_user(session: Session, username: str) -> User | None:
    username = username.strip()
    if not username.isprintable():
        return None  # no user has such a name (and PostgreSQL refuses NUL in text)
    return session.scalar(select(User).where(User.username == username))


# A real hash to verify against when the user name is unknown, so that a wrong user name
# costs exactly what a wrong password costs (a verify, not a hash, with the same parameters).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, or None (and the same time spent)."""
    user = find_user(session, username)
    if not password_matches(user, password) or user is None:
        return None
    rehash_if_needed(user, password)
    return user


def password_matches(user: User | None, password: str) -> bool:
    """Whether an active user's password is this one. Reads only loaded attributes, so a caller
    can hand its database connection back while the hash is checked (argon2 is slow)."""
    if user is None or not user.active:
        verify_password_hash(_DUMMY_HASH if user is None else user.password_hash, password)
        return False
    return verify_password(user, password)


def rehash_if_needed(user: User, password: str) -> None:
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)


def verify_password_hash(password_hash: str, password: str) -> bool:
    try:
        _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return True


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    name: str,
    user_id: int | None = None,
    role: Role = Role.admin,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its clear text, which is never stored."""
    name = name.strip()
    if not name or len(name) > 150:
        raise AuthError("Token name must be 1 to 150 characters.")
    if any(not c.isprintable() for c in name):
        raise AuthError("Token name must not contain control characters.")
    if expires_at is not None and expires_at <= utcnow():
        raise AuthError("The expiry must be in the future.")
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_hash=_digest(clear),
        prefix=clear[:10],
        user_id=user_id,
        role=role.value,
        expires_at=expires_at,
    )
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
        return Principal(kind="env-token", name="PRODUCT_IMPORTER_API_TOKEN", role=Role.admin)
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        return None
    role = Role(row.role)
    if row.user_id is not None:
        owner = session.get(User, row.user_id)
        if owner is None or not owner.active:
            return None  # a deactivated user's tokens stop with them
        role = lowest(role, Role(owner.role))
    # Record use at most once a minute, so reads do not each cost a write.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        _record_use(session, row.id, now)
    return Principal(kind="token", name=row.name, role=role, user_id=row.user_id, token_id=row.id)


def _record_use(session: Session, token_id: int, now: datetime) -> None:
    """Record a token's use in a transaction of its own that never waits for a lock. On SQLite
    an import's merge holds the write lock for as long as it runs (a minute for 2,000,000 rows,
    search index included); a read must neither queue behind it nor fail. A use that cannot be
    recorded now is recorded by a later request."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            connection.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            )
            connection.commit()
        except OperationalError:
            connection.rollback()
        finally:
            if sqlite:
                connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def start_session(session: Session, user: User, max_age_seconds: int) -> str:
    """Record a new signed-in session of the user; returns the id the cookie carries."""
    now = utcnow()
    # Pruned here, not by a periodic task: a sign-in is when rows are added.
    session.execute(delete(UserSession).where(UserSession.expires_at <= now))
    clear = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            id=_digest(clear),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(seconds=max_age_seconds),
        )
    )
    return clear


def end_session(session: Session, session_id: str) -> None:
    """Sign one session out: its cookie no longer authenticates, even if a copy was kept."""
    session.execute(delete(UserSession).where(UserSession.id == _digest(session_id)))


def principal_for_session(
    session: Session, user_id: int, generation: int, session_id: str
) -> Principal | None:
    """The user of a session cookie, unless it was signed out or expired, the user was
    deactivated, or all their sessions were ended. One indexed lookup per request."""
    user = session.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.id == _digest(session_id),
            UserSession.expires_at > utcnow(),
            User.id == user_id,
        )
    )
    if user is None or not user.active or user.session_generation != generation:
        return None
    return Principal(
        kind="user",
        name=user.username,
        role=Role(user.role),
        user_id=user.id,
        must_change_password=user.must_change_password,
    )


def bootstrap_admin(session: Session) -> str | None:
    """On an installation with no users, create `admin` and return its one-time password."""
    if has_users(session):
        return None
    password = generate_password()
    try:
        create_user(session, "admin", password, Role.admin)
    except NameTaken:
        return None  # another process of the fleet, starting at the same moment, made it
    return password
