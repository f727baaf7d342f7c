"""The embedded dispatcher runs registered tasks on threads, after their transaction commits."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from product_importer.db import Database
from product_importer.tasks import registry
from product_importer.tasks.dispatch import enqueue
from product_importer.tasks.embedded import EmbeddedDispatcher
from product_importer.tasks.registry import TaskContext
from tests.conftest import make_settings

ran: list[dict[str, object]] = []
ran_event = threading.Event()


@registry.task("tests.record", queue="default")
def record(_context: TaskContext, **kwargs: object) -> None:
    ran.append(kwargs)
    ran_event.set()


@pytest.fixture
def dispatcher(database: Database, tmp_path: Path) -> Iterator[EmbeddedDispatcher]:
    ran.clear()
    ran_event.clear()
    running = EmbeddedDispatcher()
    url = database.engine.url.render_as_string(hide_password=False)
    running.start(TaskContext(database=database, settings=make_settings(tmp_path, url)))
    database.dispatcher = running
    yield running
    running.stop()
    database.dispatcher = None


def test_task_runs_after_commit(database: Database, dispatcher: EmbeddedDispatcher) -> None:
    with database.session() as session:
        enqueue(session, "tests.record", job_id=7)
        assert not ran_event.wait(0.2), "ran before the transaction committed"
    assert ran_event.wait(5)
    assert ran == [{"job_id": 7}]


def test_rolled_back_work_is_never_sent(database: Database, dispatcher: EmbeddedDispatcher) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        enqueue(session, "tests.record", job_id=8)
        raise RuntimeError("change failed")
    assert not ran_event.wait(0.5)


def test_unknown_tasks_and_unserialisable_arguments_fail_at_once(database: Database) -> None:
    with database.session() as session:
        with pytest.raises(LookupError):
            enqueue(session, "tests.no-such-task")
        with pytest.raises(TypeError):
            enqueue(session, "tests.record", when=object())


def test_periodic_tasks_run_on_start_and_stop_with_the_dispatcher(
    database: Database, tmp_path: Path
) -> None:
    ticks = threading.Event()

    @registry.periodic("tests.tick", every_seconds=3600)
    def tick(context: TaskContext) -> None:
        ticks.set()

    try:
        running = EmbeddedDispatcher()
        context = TaskContext(
            database=database,
            settings=make_settings(tmp_path, database.engine.url.render_as_string()),
        )
        running.start(context)
        assert ticks.wait(5)
        running.stop()
        assert context.stopping.is_set()
    finally:
        registry._periodic.pop("tests.tick", None)


def test_a_periodic_run_carries_its_name_in_the_log_context_and_survives_a_failure(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from product_importer.observability import logs
    from product_importer.tasks.registry import PeriodicSpec, run_periodic

    seen: list[dict[str, object]] = []

    def sweep(_context: TaskContext) -> None:
        seen.append(logs.current_context())
        raise RuntimeError("database went away")

    database = Database(f"sqlite:///{tmp_path / 'p.db'}")
    context = TaskContext(database=database, settings=make_settings(tmp_path, "sqlite://"))
    with caplog.at_level(logging.ERROR):
        run_periodic(context, PeriodicSpec(name="demo.sweep", func=sweep, every_seconds=1))
    assert seen == [{"task": "demo.sweep", "queue": "periodic"}]
    assert logs.current_context() == {}
    (record,) = caplog.records
    assert record.getMessage() == "periodic task demo.sweep failed"
    assert record.exc_info is not None
    database.dispose()
