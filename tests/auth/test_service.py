import pytest
from sqlalchemy import select

from product_importer.auth import service as auth_service
from product_importer.auth.models import ApiToken, User
from product_importer.db import Database
from tests.factories import DEFAULT_PASSWORD, make_user


def test_passwords_are_stored_as_argon2_hashes(database: Database) -> None:
    make_user(database, "alice")
    with database.session() as session:
        user = session.scalars(select(User)).one()
        assert user.password_hash.startswith("$argon2id$")
        assert DEFAULT_PASSWORD not in user.password_hash
        assert auth_service.authenticate(session, "alice", DEFAULT_PASSWORD) is not None
        assert auth_service.authenticate(session, "alice", "wrong password") is None
        assert auth_service.authenticate(session, "nobody", DEFAULT_PASSWORD) is None


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("", "long enough pw", "Username must be"),
        ("x" * 151, "long enough pw", "Username must be"),
        ("bob", "short", "at least 8"),
    ],
)
def test_bad_users_are_refused(
    database: Database, username: str, password: str, message: str
) -> None:
    with pytest.raises(auth_service.AuthError, match=message), database.session() as session:
        auth_service.create_user(session, username, password)


def test_duplicate_username_is_refused(database: Database) -> None:
    make_user(database, "alice")
    with pytest.raises(auth_service.AuthError, match="already exists"), database.session() as s:
        auth_service.create_user(s, "alice", DEFAULT_PASSWORD)


def test_tokens_are_stored_hashed_and_can_be_revoked(database: Database) -> None:
    with database.session() as session:
        token, clear = auth_service.create_token(session, "deploy")
        token_id = token.id
    with database.session() as session:
        stored = session.scalars(select(ApiToken)).one()
        assert clear not in (stored.token_hash, stored.prefix)
        principal = auth_service.principal_for_token(session, clear, None)
        assert principal is not None and principal.name == "deploy"
        assert auth_service.principal_for_token(session, clear + "x", None) is None
    with database.session() as session:
        auth_service.revoke_token(session, token_id)
    with database.session() as session:
        assert auth_service.principal_for_token(session, clear, None) is None


def test_environment_token_is_accepted(database: Database) -> None:
    with database.session() as session:
        principal = auth_service.principal_for_token(session, "env-secret", "env-secret")
        assert principal is not None and principal.kind == "env-token"
        assert auth_service.principal_for_token(session, "env-secreT", "env-secret") is None


def test_bootstrap_creates_admin_only_on_an_empty_installation(database: Database) -> None:
    with database.session() as session:
        password = auth_service.bootstrap_admin(session)
    assert password is not None and len(password) >= 20
    with database.session() as session:
        assert auth_service.authenticate(session, "admin", password) is not None
        assert auth_service.bootstrap_admin(session) is None


def test_two_processes_starting_at_once_make_one_admin_and_neither_fails(
    database: Database,
) -> None:
    """A fleet's web processes start together on a new database: both find no user; the one
    that writes second gets no password (the first prints it) instead of dying."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite's single writer: the second start waits for the first's commit")
    import threading

    first_made = threading.Event()
    release = threading.Event()
    passwords: dict[str, str | None] = {}

    def first() -> None:
        with database.session() as session:
            passwords["first"] = auth_service.bootstrap_admin(session)
            first_made.set()
            release.wait(10)  # commits only after the second has looked

    thread = threading.Thread(target=first)
    thread.start()
    assert first_made.wait(10)
    with database.session() as session:
        assert not auth_service.has_users(session)  # the first has not committed yet
    second = threading.Thread(target=lambda: passwords.__setitem__("second", _bootstrap(database)))
    second.start()
    threading.Timer(0.5, release.set).start()  # the second now waits on the unique key
    thread.join(15)
    second.join(15)
    assert passwords["first"] is not None and passwords["second"] is None
    with database.session() as session:
        assert session.scalars(select(User)).all()[0].username == "admin"


def _bootstrap(database: Database) -> str | None:
    with database.session() as session:
        return auth_service.bootstrap_admin(session)
