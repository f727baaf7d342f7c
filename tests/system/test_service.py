"""Heartbeat rows, who counts as alive, pruning and warnings, on real databases."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from product_importer.db import Database, utcnow
from product_importer.settings import Settings
from product_importer.system import service
from product_importer.tasks.heartbeat import (
    Heartbeat,
    WorkerIdentity,
    celery_identity,
    embedded_identity,
    record_heartbeat,
    record_stopped,
)
from product_importer.tasks.models import WorkerHeartbeat
from product_importer.tasks.registry import TaskContext, all_periodic


def _worker(name: str = "w1@host", queues: tuple[str, ...] = ("imports",)) -> WorkerIdentity:
    return WorkerIdentity(
        name=name, kind="celery", hostname="host", pid=42, queues=queues, concurrency=4
    )


def _beat(database: Database, worker: WorkerIdentity, seconds_ago: float = 0, **kw: object) -> None:
    with database.session() as session:
        record_heartbeat(
            session,
            worker,
            interval_seconds=10,
            leader=bool(kw.get("leader", False)),
            running_tasks=2,
            now=utcnow() - timedelta(seconds=seconds_ago),
        )


def test_heartbeat_inserts_then_refreshes_one_row(database: Database) -> None:
    worker = _worker()
    _beat(database, worker, seconds_ago=60)
    _beat(database, worker, leader=True)
    with database.session() as session:
        [row] = session.scalars(select(WorkerHeartbeat)).all()
        assert row.name == "w1@host" and row.queues == ["imports"] and row.leader
        assert row.running_tasks == 2 and row.concurrency == 4
        # started_at is kept from the first beat; last_seen_at moves on.
        assert (row.last_seen_at - row.started_at).total_seconds() >= 59


def test_alive_within_three_intervals_then_stale(database: Database) -> None:
    _beat(database, _worker("fresh@h"), seconds_ago=29)
    _beat(database, _worker("stale@h"), seconds_ago=31)
    with database.session() as session:
        states = {state.row.name: state for state in service.list_workers(session)}
    assert states["fresh@h"].alive
    assert not states["stale@h"].alive
    assert states["stale@h"].age_seconds >= 31


def test_a_stopped_worker_is_not_alive_and_beats_again_after_restart(database: Database) -> None:
    worker = _worker()
    _beat(database, worker)
    with database.session() as session:
        record_stopped(session, worker.name)
    with database.session() as session:
        [state] = service.list_workers(session)
        assert not state.alive and state.row.stopped_at is not None
    _beat(database, worker)
    with database.session() as session:
        [state] = service.list_workers(session)
        assert state.alive and state.row.stopped_at is None


def test_prune_forgets_workers_not_seen_for_a_day(database: Database, settings: Settings) -> None:
    _beat(database, _worker("old@h"), seconds_ago=24 * 3600 + 5)
    _beat(database, _worker("recent@h"), seconds_ago=23 * 3600)
    [prune] = [spec for spec in all_periodic() if spec.name == "system.prune_workers"]
    prune.func(TaskContext(database=database, settings=settings))
    with database.session() as session:
        assert [row.name for row in session.scalars(select(WorkerHeartbeat))] == ["recent@h"]


def test_warnings_in_each_situation(database: Database) -> None:
    with database.session() as session:
        assert service.warnings(True, service.list_workers(session)) == [
            "No worker is alive: imports and webhook deliveries wait until one starts. "
            "Start one with `product-importer worker`."
        ]
        assert service.warnings(False, service.list_workers(session)) == []
    _beat(database, _worker("imports@h", ("imports",)))
    _beat(database, _worker("dead@h", ("webhooks", "default")), seconds_ago=600)
    with database.session() as session:
        workers = service.list_workers(session)
        found = service.warnings(True, workers)
        assert len(found) == 2
        assert found[0].startswith("No alive worker consumes the webhooks queue")
        assert found[1].startswith("No alive worker consumes the default queue")
        assert service.alive_consumers(workers, "imports") == 1
        assert service.alive_consumers(workers, "webhooks") == 0
        assert service.warnings(True, workers, broker_answers=False)[0].startswith(
            "The broker does not answer"
        )
    _beat(database, _worker("all@h", ("imports", "webhooks", "default")))
    with database.session() as session:
        assert service.warnings(True, service.list_workers(session)) == []


def test_heartbeat_thread_beats_and_marks_stopped(database: Database) -> None:
    running = [0]
    heartbeat = Heartbeat(
        database,
        celery_identity("t@h", ("imports", "webhooks"), 3),
        0.2,
        leading=lambda: True,
        running_tasks=lambda: running[0],
    )
    heartbeat.start()
    try:
        running[0] = 5
        deadline = utcnow() + timedelta(seconds=10)
        while True:
            with database.session() as session:
                row = session.get(WorkerHeartbeat, "t@h")
                if row is not None and row.running_tasks == 5:
                    break
            assert utcnow() < deadline, "the heartbeat did not refresh the row"
    finally:
        heartbeat.stop()
    with database.session() as session:
        [state] = service.list_workers(session)
    assert state.row.leader is False and state.row.stopped_at is not None and not state.alive
    assert state.row.queues == ["imports", "webhooks"] and state.row.kind == "celery"


def test_heartbeat_survives_a_database_that_does_not_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A PostgreSQL server that is not there: every beat fails, the thread keeps going.
    broken = Database("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    heartbeat = Heartbeat(broken, embedded_identity(("imports",), 1), 0.2)
    with caplog.at_level(logging.WARNING, logger="product_importer.tasks.heartbeat"):
        assert heartbeat.beat() is False
        assert heartbeat.beat() is False
        heartbeat.start()
        heartbeat._stop.wait(0.6)
        assert heartbeat._thread.is_alive()
        heartbeat.stop()
    warnings = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage, not one per beat"
    broken.dispose()
