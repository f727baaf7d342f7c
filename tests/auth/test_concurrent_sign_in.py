"""Sign-ins sent all at once to a real server: the per-account limit holds however many
arrive together, and a burst is answered 429 (never 500) without starving the API."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from product_importer.db import Database
from tests.factories import DEFAULT_PASSWORD, make_token, make_user
from tests.processes import cli_env, free_port, start_server


def _serve(tmp_path: Path, database: Database, **settings: str) -> Iterator[str]:
    env = cli_env(tmp_path, database.engine.url.render_as_string(hide_password=False))
    env["PRODUCT_IMPORTER_SECRET_KEY"] = "test-secret-key-not-for-production"
    env.update({f"PRODUCT_IMPORTER_{name.upper()}": value for name, value in settings.items()})
    port = free_port()
    process = start_server(env, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _all_at_once(base: str, attempts: list[tuple[str, str]]) -> list[int]:
    """Each attempt from its own browser: the form is fetched first, then every POST is sent
    the moment all are ready."""
    ready = threading.Barrier(len(attempts))

    def attempt(username: str, password: str) -> int:
        with httpx.Client(base_url=base, timeout=60) as browser:
            page = browser.get("/login")
            token = re.findall(r'name="csrf_token" value="([^"]+)"', page.text)[0]
            ready.wait(timeout=60)
            form = {"username": username, "password": password, "csrf_token": token}
            return browser.post("/login", data=form).status_code

    with ThreadPoolExecutor(len(attempts)) as pool:
        futures = [pool.submit(attempt, name, password) for name, password in attempts]
        return [future.result() for future in futures]


@pytest.fixture
def limited_server(tmp_path: Path, database: Database) -> Iterator[str]:
    make_user(database)
    # Every attempt reaches the limiter: the concurrency bound is not what is tested here.
    yield from _serve(
        tmp_path,
        database,
        signin_limit_per_account="5/15 minutes",
        signin_limit_per_address="100/15 minutes",
        signin_concurrency="64",
    )


def test_parallel_wrong_passwords_never_pass_the_per_account_limit(limited_server: str) -> None:
    statuses = _all_at_once(limited_server, [("alice", "wrong password")] * 12)
    assert sorted(statuses) == [401] * 5 + [429] * 7, statuses
    right = _all_at_once(limited_server, [("alice", DEFAULT_PASSWORD)])
    assert right == [429]


def test_the_right_password_among_parallel_wrong_ones_is_checked_within_the_limit(
    limited_server: str,
) -> None:
    statuses = _all_at_once(
        limited_server, [("alice", "wrong password")] * 19 + [("alice", DEFAULT_PASSWORD)]
    )
    # 423: on SQLite an attempt may wait past the request's lock wait behind the other
    # writers (counters, audit rows) and be told to try again; seen on quiet and loaded runs
    # alike, one attempt in twenty, about one suite run in three. Its password was checked or
    # not, so it only loosens the lower bound below, never the limit.
    assert set(statuses) <= {303, 401, 423, 429}, statuses
    assert statuses.count(423) <= 2, statuses
    assert statuses.count(303) <= 1
    # Never more than 5 failures checked; the right one, if checked, gave its count back, so
    # one more wrong one may have been checked after it.
    assert statuses.count(401) <= 5, statuses
    checked = statuses.count(401) + statuses.count(303)
    assert 5 - statuses.count(423) <= checked <= 6, statuses


@pytest.fixture
def default_server(tmp_path: Path, database: Database) -> Iterator[str]:
    make_user(database)
    yield from _serve(tmp_path, database)


def test_a_burst_of_sign_ins_gets_429_not_500_and_the_api_still_answers(
    default_server: str, database: Database
) -> None:
    token = make_token(database)
    timings: list[float] = []
    stop = threading.Event()

    def use_the_api() -> None:
        with httpx.Client(base_url=default_server, timeout=60) as api:
            headers = {"Authorization": f"Bearer {token}"}
            while not stop.is_set():
                started = time.perf_counter()
                assert api.get("/api/me", headers=headers).status_code == 200
                timings.append(time.perf_counter() - started)

    reader = threading.Thread(target=use_the_api)
    reader.start()
    try:
        attempts = [("alice", DEFAULT_PASSWORD)] * 20 + [("alice", "wrong password")] * 20
        statuses = _all_at_once(default_server, attempts)
    finally:
        stop.set()
        reader.join(timeout=60)
    assert set(statuses) <= {303, 401, 429}, statuses
    # Which two of the forty take the slots is up to the scheduler (all may be wrong
    # passwords), so the right one is asked again once the burst is over.
    assert 429 in statuses, statuses
    assert _all_at_once(default_server, [("alice", DEFAULT_PASSWORD)]) == [303]
    # Before the fix a request stalled 30 s waiting for a pooled connection; what is left is
    # CPU shared with the hashing (and with whatever else this machine runs).
    assert timings and max(timings) < 5.0, sorted(timings)[-5:]
    print(f"API during the burst: {len(timings)} requests, slowest {max(timings):.2f} s")
