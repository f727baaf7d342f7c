"""schemathesis over the whole OpenAPI schema, on SQLite: no input may give a 500.

Each operation gets a few dozen generated requests (ids beyond 64 bits, odd strings, missing
and extra parameters), with an API token. `SCHEMATHESIS_EXAMPLES` raises the count for a longer
hunt (e.g. 500 before a release)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from product_importer import migrate
from product_importer.app import create_app
from product_importer.auth import service as auth_service
from product_importer.db import Database
from tests.conftest import make_settings

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "40"))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    home = tmp_path_factory.mktemp("fuzz")
    database = Database(f"sqlite:///{home / 'fuzz.db'}")
    migrate.upgrade(database)
    with database.session() as session:
        _token, secret = auth_service.create_token(session, "fuzz")
    app = create_app(make_settings(Path(home), database.engine.url.render_as_string()), database)
    with TestClient(app):  # starts the app's background workers, as in production
        yield app, secret
    database.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzz_app: tuple[FastAPI, str]) -> schemathesis.BaseSchema:
    app, secret = fuzz_app
    return schemathesis.openapi.from_asgi(
        "/openapi.json", app, headers={"Authorization": f"Bearer {secret}"}
    )


def test_no_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema, fuzz_app: tuple[FastAPI, str]
) -> None:
    _app, secret = fuzz_app
    headers = {"Authorization": f"Bearer {secret}"}
    failures: list[str] = []
    seen: list[tuple[str, str, int]] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # Valid requests and invalid ones (wrong types, out-of-range ids, missing fields).
        strategy = operation.as_strategy(
            generation_mode=schemathesis.GenerationMode.POSITIVE
        ) | operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            response = case.call(headers=headers)
            seen.append((case.method, case.path, response.status_code))
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} query={case.query} "
                    f"-> {response.status_code}: {response.text[:300]}"
                )

        call()
    if os.environ.get("SCHEMATHESIS_REPORT"):
        print(f"{len(seen)} requests over {operations} operations")
    assert operations > 20
    assert not failures, "\n".join(failures[:20])
