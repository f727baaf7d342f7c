"""Real databases for every test: SQLite files and a PostgreSQL database created per run.

Tests that take the `database` fixture run twice, once per dialect (ids `[sqlite]` and
`[postgresql]`). PostgreSQL is required in CI; elsewhere its tests are skipped, with a
reason, when no server answers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from product_importer import migrate, wiring
from product_importer.app import create_app
from product_importer.db import Base, Database
from product_importer.history import record_tables
from product_importer.models import import_all_models
from product_importer.settings import Settings
from tests.factories import sign_in

# Every domain registers its tasks, as the app and the CLI do at start-up.
wiring.connect()

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DIALECTS = ["sqlite", "postgresql"]


def _unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} not available here; these tests run in CI")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"pi_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        _unavailable(f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()}")
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'products.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Database]:
    """An empty database of each kind, not migrated: for testing a migration."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/old.db")
        yield database
        database.dispose()
        return
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) without PostgreSQL
    name = f"pi_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database(make_url(PG_ADMIN_URL).set(database=name).render_as_string(False))
    try:
        yield database
    finally:
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def clear_tables(database: Database) -> None:
    import_all_models()
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as connection:
        # Each custom field has an index of its own on products (catalog.field_sql), outside
        # the metadata: the next test's fields get the same ids again.
        # On SQLite a list field also has triggers that keep its elements' table.
        listing = (
            "SELECT 'index', indexname FROM pg_indexes WHERE tablename = 'products'"
            if database.dialect == "postgresql"
            else "SELECT type, name FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND tbl_name = 'products'"
        )
        for kind, name in connection.execute(text(listing)).all():
            if name.startswith("ix_products_field_"):
                connection.execute(text(f'DROP {kind.upper()} IF EXISTS "{name}"'))
        if database.dialect == "sqlite":
            connection.execute(text("DELETE FROM product_list_items"))
        # Large changes keep their records in tables of their own, outside the metadata.
        if database.dialect == "postgresql":
            listed = connection.execute(text(record_tables.LIST_STATEMENT))
            for change_id in record_tables.own_tables_from(listed.all()):
                connection.execute(text(record_tables.drop_statement(change_id)))
        if database.dialect == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
            # The search tables are not in the metadata; on PostgreSQL the TRUNCATE cascades
            # to them.
            connection.execute(text("DELETE FROM product_search"))
            connection.execute(text("DELETE FROM search_fresh"))


@pytest.fixture
def database(migrated_database: Database) -> Database:
    """A migrated, empty database of each dialect."""
    clear_tables(migrated_database)
    return migrated_database


@pytest.fixture
def settings(tmp_path: Path, database: Database) -> Settings:
    return make_settings(tmp_path, database.engine.url.render_as_string(hide_password=False))


def make_settings(home: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "database_url": database_url,
        "secret_key": "test-secret-key-not-for-production",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def anon_client(settings: Settings, database: Database) -> Iterator[TestClient]:
    """The real app, with its background workers running, and no credentials."""
    with TestClient(create_app(settings, database)) as client:
        yield client


@pytest.fixture
def client(anon_client: TestClient, database: Database) -> TestClient:
    """A client signed in through the real sign-in form, sending the CSRF header."""
    sign_in(anon_client, database)
    return anon_client


@pytest.fixture
def still_client(tmp_path: Path, database: Database) -> Iterator[TestClient]:
    """A signed-in client of an app whose search index never catches up by itself: what it
    finds right after a write, it finds through the fresh set (see catalog.search)."""
    url = database.engine.url.render_as_string(hide_password=False)
    with TestClient(create_app(make_settings(tmp_path, url, search_catchup=False), database)) as c:
        sign_in(c, database)
        yield c


pytest_plugins = ["tests.browser"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Carry the accessibility checks a test ran into its report (across xdist workers too)."""
    from tests import a11y

    report = yield
    if a11y.CHECKED:
        report.user_properties.append(("a11y_checked", list(a11y.CHECKED)))
        a11y.CHECKED.clear()
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests ran on each database, so a run shows it covered both."""
    counts = {dialect: {"passed": 0, "failed": 0, "skipped": 0} for dialect in DIALECTS}
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for dialect in DIALECTS:
                if f"[{dialect}" in nodeid or f"-{dialect}]" in nodeid or f"-{dialect}-" in nodeid:
                    counts[dialect][outcome] += 1
    lines = [
        f"{dialect}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
        for dialect, c in counts.items()
    ]
    terminalreporter.write_sep("-", "tests per database")
    for line in lines:
        terminalreporter.write_line(line)
    _accessibility_summary(terminalreporter)


def _accessibility_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many page states axe-core checked, at which widths, and what it found."""
    from tests.a11y import AXE_VERSION

    checks: list[tuple[str, int, int]] = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for key, value in getattr(report, "user_properties", []):
                if key == "a11y_checked":
                    checks += [tuple(check) for check in value]
    if not checks:
        return
    states = {label for label, _width, _count in checks}
    widths = sorted({width for _label, width, _count in checks}, reverse=True)
    offending = sum(count for _label, _width, count in checks)
    terminalreporter.write_sep("-", "accessibility")
    terminalreporter.write_line(
        f"axe-core {AXE_VERSION} (WCAG 2.1 A/AA and best practices): {len(states)} page "
        f"states checked at {' and '.join(f'{w} px' for w in widths)} ({len(checks)} checks); "
        f"offending elements: {offending}"
    )
