"""The CLI as a user runs it: a subprocess of the installed `product-importer` command."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from product_importer.db import Database
from tests.processes import cli_env, free_port, run_cli, start_server


def test_migrate_creates_the_embedded_database(tmp_path: Path) -> None:
    result = run_cli("migrate", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert (tmp_path / "products.db").exists()
    again = run_cli("migrate", env=cli_env(tmp_path))
    assert "Applied 0 migration(s)" in again.stdout


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("mysql://root@localhost/x", 2, "only sqlite and postgresql"),
        ("::not a url::", 2, "not a valid database URL"),
        ("postgresql://nobody:hunter2@127.0.0.1:1/x", 3, "cannot use the database at"),
        ("postgresql://nobody@127.0.0.1:1/x?password=hunter2", 3, "cannot use the database at"),
    ],
)
def test_bad_database_url_gives_a_clear_error(
    tmp_path: Path, url: str, code: int, message: str
) -> None:
    result = run_cli("migrate", env=cli_env(tmp_path, url))
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "hunter2" not in result.stderr + result.stdout


def test_users_and_tokens_from_the_command_line(database: Database, tmp_path: Path) -> None:
    env = cli_env(tmp_path, database.engine.url.render_as_string(hide_password=False))
    created = run_cli("user", "create", "carol", "--password", "a long password", env=env)
    assert created.returncode == 0, created.stderr
    duplicate = run_cli("user", "create", "carol", "--password", "a long password", env=env)
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    short = run_cli("user", "create", "dave", "--password", "short", env=env)
    assert short.returncode == 2 and "at least 8" in short.stderr

    token_run = run_cli("token", "create", "deploy", env=env)
    assert token_run.returncode == 0, token_run.stderr
    token = token_run.stdout.strip()
    assert token.startswith("pi_")
    listing = run_cli("token", "list", env=env)
    assert "deploy" in listing.stdout and token not in listing.stdout
    token_id = listing.stdout.split()[0]
    assert run_cli("token", "revoke", token_id, env=env).returncode == 0
    assert "revoked" in run_cli("token", "list", env=env).stdout
    missing = run_cli("token", "revoke", "99999", env=env)
    assert missing.returncode == 2 and "No API token" in missing.stderr
    not_a_number = run_cli("token", "revoke", "abc", env=env)
    assert not_a_number.returncode == 2 and "Traceback" not in not_a_number.stderr


def test_serve_prints_how_to_sign_in_and_serves(tmp_path: Path) -> None:
    port = free_port()
    process = start_server(cli_env(tmp_path), port)
    try:
        login = httpx.get(f"http://127.0.0.1:{port}/import", follow_redirects=False)
        assert login.headers["location"] == "/login?next=/import"

        # While the first server holds the port, a second one refuses clearly.
        clash = run_cli("serve", "--port", str(port), env=cli_env(tmp_path))
        assert clash.returncode == 4
        assert f"port {port} on 127.0.0.1 is already in use" in clash.stderr
        assert "Traceback" not in clash.stderr
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert "username: admin" in output
    password = output.split("password: ")[1].split()[0]
    assert len(password) >= 20
    # The password appears once, never in the server's log lines.
    assert output.count(password) == 1


def test_second_start_does_not_print_a_new_password(tmp_path: Path) -> None:
    assert run_cli("migrate", env=cli_env(tmp_path)).returncode == 0
    database = Database(f"sqlite:///{tmp_path / 'products.db'}")
    from product_importer.auth import service as auth_service

    with database.session() as session:
        auth_service.create_user(session, "someone", "a long password")
    process = start_server(cli_env(tmp_path), free_port())
    process.terminate()
    output, _ = process.communicate(timeout=20)
    assert "password:" not in output


@pytest.mark.parametrize("args", [["serve", "--port", "0"], ["serve", "--port", "70000"], ["nope"]])
def test_bad_arguments_are_refused_without_traceback(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*args, env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_token_and_user_roles_and_expiry_from_the_command_line(
    database: Database, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, database.engine.url.render_as_string(hide_password=False))
    viewer = run_cli(
        "user", "create", "vera", "--password", "a long password", "--role", "viewer", env=env
    )
    assert viewer.returncode == 0 and "(viewer)" in viewer.stdout, viewer.stderr
    made = run_cli("token", "create", "reports", "--role", "viewer", "--expires-in", "30d", env=env)
    assert made.returncode == 0, made.stderr
    assert "(viewer, expires 20" in made.stderr
    listing = run_cli("token", "list", env=env).stdout
    assert "viewer" in listing and "reports" in listing
    with database.session() as session:
        from product_importer.auth import service as auth_service

        principal = auth_service.principal_for_token(session, made.stdout.strip(), None)
        assert principal is not None and principal.role == "viewer"
        assert principal_expiry_days(session, "reports") in (29, 30)
    for bad in (["--expires-in", "30"], ["--expires-in", "0d"], ["--expires-in", "99999w"]):
        refused = run_cli("token", "create", "x", *bad, env=env)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    wrong_role = run_cli("token", "create", "x", "--role", "owner", env=env)
    assert wrong_role.returncode == 2 and "owner" in wrong_role.stderr


def principal_expiry_days(session: object, name: str) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from product_importer.auth.models import ApiToken
    from product_importer.db import utcnow

    assert isinstance(session, Session)
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    assert token is not None and token.expires_at is not None
    return (token.expires_at - utcnow()).days
