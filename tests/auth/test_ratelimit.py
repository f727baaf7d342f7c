"""Sign-in rate limits: per account and per address, shared by every web process, answered
429 with Retry-After, and the same for a user name that does not exist."""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from product_importer.app import create_app
from product_importer.auth import service as auth_service
from product_importer.db import Database
from product_importer.settings import Settings
from tests.conftest import make_settings
from tests.factories import DEFAULT_PASSWORD, login_csrf, make_user
from tests.fleet import Fleet, pg_fixture, redis_url_fixture  # noqa: F401 (fixtures)
from tests.processes import cli_env, free_port, start_server


def _limited(settings: Settings, database: Database, account: str, address: str) -> TestClient:
    limited = settings.model_copy(
        update={"signin_limit_per_account": account, "signin_limit_per_address": address}
    )
    return TestClient(create_app(limited, database))


def _attempt(client: TestClient, username: str, password: str) -> httpx.Response:
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": login_csrf(client)},
        follow_redirects=False,
    )


def test_failed_attempts_per_account_end_in_429_even_with_the_right_password(
    settings: Settings, database: Database
) -> None:
    make_user(database)
    with _limited(settings, database, "3/15 minutes", "100/15 minutes") as client:
        for _ in range(3):
            assert _attempt(client, "alice", "wrong password").status_code == 401
        blocked = _attempt(client, "alice", DEFAULT_PASSWORD)
        assert blocked.status_code == 429
        retry_after = int(blocked.headers["retry-after"])
        assert 800 < retry_after <= 900
        assert "Too many failed sign-in attempts. Try again in 15 minutes." in blocked.text
        # Another account from the same address is not held back by alice's count.
        make_user(database, "bob")
        assert _attempt(client, "bob", DEFAULT_PASSWORD).status_code == 303


def test_an_unknown_user_name_is_answered_exactly_like_a_known_one(
    settings: Settings, database: Database
) -> None:
    make_user(database)
    with _limited(settings, database, "2/15 minutes", "100/15 minutes") as client:
        answers = {}
        for name in ("alice", "nobody-by-this-name"):
            first = [_attempt(client, name, "wrong password") for _ in range(2)]
            third = _attempt(client, name, "wrong password")
            answers[name] = (
                [r.status_code for r in first],
                third.status_code,
                re.sub(r'value="[^"]+"', "", third.text),
            )
        assert answers["alice"] == answers["nobody-by-this-name"]
        assert answers["alice"][1] == 429


def test_failed_attempts_per_address_are_limited_across_account_names(
    settings: Settings, database: Database
) -> None:
    make_user(database)
    with _limited(settings, database, "100/15 minutes", "4/15 minutes") as client:
        for number in range(4):
            assert _attempt(client, f"guess{number}", "x").status_code == 401
        blocked = _attempt(client, "alice", DEFAULT_PASSWORD)
        assert blocked.status_code == 429 and "retry-after" in blocked.headers


def test_the_current_password_check_counts_too(settings: Settings, database: Database) -> None:
    make_user(database)
    with _limited(settings, database, "2/15 minutes", "100/15 minutes") as client:
        assert _attempt(client, "alice", DEFAULT_PASSWORD).status_code == 303
        client.headers["X-CSRF-Token"] = re.findall(
            r'name="csrf-token" content="([^"]+)"', client.get("/products").text
        )[0]
        body = {"current_password": "wrong one", "new_password": "a new long password"}
        assert client.post("/api/me/password", json=body).status_code == 403
        assert client.post("/api/me/password", json=body).status_code == 403
        body["current_password"] = DEFAULT_PASSWORD
        blocked = client.post("/api/me/password", json=body)
        assert blocked.status_code == 429
        assert "Too many failed" in blocked.json()["detail"] and blocked.headers["retry-after"]
        # The same account count holds on the sign-in form.
        assert _attempt(TestClient(client.app), "alice", DEFAULT_PASSWORD).status_code == 429


def test_hostile_sign_in_input_is_refused_without_a_500(
    settings: Settings, database: Database
) -> None:
    make_user(database)
    with TestClient(create_app(settings, database)) as client:
        for name in ("alice\x00", "\x00", "a" * 150, "ä\u202e", " "):
            assert _attempt(client, name, DEFAULT_PASSWORD).status_code == 401, repr(name)
        too_long = _attempt(client, "a" * 151, DEFAULT_PASSWORD)
        assert too_long.status_code == 422


def test_a_wrong_user_name_costs_what_a_wrong_password_costs(database: Database) -> None:
    make_user(database)
    times: dict[str, list[float]] = {"alice": [], "nobody": []}
    with database.session() as session:
        for _ in range(9):  # interleaved, so a busy machine slows both alike
            for username, spent in times.items():
                started = time.perf_counter()
                assert auth_service.authenticate(session, username, "wrong password") is None
                spent.append(time.perf_counter() - started)
    known, unknown = statistics.median(times["alice"]), statistics.median(times["nobody"])
    assert 0.6 < unknown / known < 1.6, (known, unknown)


def _form_attempt(base: str, username: str, password: str) -> int:
    with httpx.Client(base_url=base, timeout=30) as browser:
        page = browser.get("/login")
        token = re.findall(r'name="csrf_token" value="([^"]+)"', page.text)[0]
        response = browser.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )
        return response.status_code


@pytest.fixture
def two_web_processes(tmp_path: Path, database: Database) -> Iterator[tuple[str, str]]:
    url = database.engine.url.render_as_string(hide_password=False)
    make_user(database)
    env = cli_env(tmp_path, url)
    env.update(
        PRODUCT_IMPORTER_SECRET_KEY="test-secret-key-not-for-production",
        PRODUCT_IMPORTER_SIGNIN_LIMIT_PER_ACCOUNT="3/15 minutes",
    )
    ports = [free_port(), free_port()]
    processes: list[subprocess.Popen[str]] = []
    try:
        for port in ports:
            processes.append(start_server(env, port))
        yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_limits_hold_across_two_web_processes_on_the_database(
    two_web_processes: tuple[str, str],
) -> None:
    first, second = two_web_processes
    assert _form_attempt(first, "alice", "wrong") == 401
    assert _form_attempt(second, "alice", "wrong") == 401
    assert _form_attempt(first, "alice", "wrong") == 401
    assert _form_attempt(second, "alice", DEFAULT_PASSWORD) == 429
    assert _form_attempt(first, "alice", DEFAULT_PASSWORD) == 429


def test_limits_hold_across_two_web_processes_on_redis(
    tmp_path: Path, pg: Database, redis_url: str
) -> None:
    fleet = Fleet(tmp_path, pg, redis_url)
    try:
        first, second = fleet.web(name="web-a"), fleet.web(name="web-b")
        account = f"alice-{fleet.prefix}"  # Redis outlives the test: a name of this run only
        make_user(pg, account)
        for base in (first, second, first, second, first):
            assert _form_attempt(base, account, "wrong") == 401
        assert _form_attempt(second, account, DEFAULT_PASSWORD) == 429
        # Nothing went to the database: the counters are in Redis.
        with pg.engine.connect() as connection:
            from sqlalchemy import text

            rows = connection.execute(text("SELECT count(*) FROM rate_limit_counters")).scalar()
        assert rows == 0
    finally:
        fleet.stop()


def test_a_malformed_limit_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a rate limit"):
        make_settings(tmp_path, "sqlite://", signin_limit_per_account="five a minute")
    with pytest.raises(ValueError, match="is not a rate limit"):
        make_settings(tmp_path, "sqlite://", signin_limit_per_address="0/1 minute")
