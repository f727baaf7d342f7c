"""Feeds in a distributed installation of real processes: two web processes and two Celery
workers over PostgreSQL and Redis record one run per due time, and a fleet that was stopped
over several due times runs once when it comes back."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import httpx

from product_importer.db import Database, utcnow
from product_importer.feeds.models import Feed, FeedRun
from tests.changes.helpers import csv_of
from tests.factories import make_token
from tests.feeds.file_server import FileServer
from tests.fleet import (  # noqa: F401 (fixtures)
    Fleet,
    fleet_fixture,
    pg_fixture,
    redis_url_fixture,
)

FINAL = ("imported", "unchanged", "failed", "refused")


def set_due(database: Database, feed_id: int, due: datetime, schedule: str) -> None:
    with database.session() as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        feed.next_run_at, feed.schedule = due, schedule


def scheduled_runs(database: Database, feed_id: int) -> list[FeedRun]:
    with database.session() as session:
        return list(
            session.query(FeedRun)
            .filter(FeedRun.feed_id == feed_id, FeedRun.trigger == "schedule")
            .order_by(FeedRun.id)
        )


def wait_for_runs(
    database: Database, feed_id: int, count: int, fleet: Fleet, timeout: float = 90
) -> list[FeedRun]:
    deadline = time.monotonic() + timeout
    while True:
        found = scheduled_runs(database, feed_id)
        if len(found) >= count and all(run.status in FINAL for run in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"runs {[(r.id, r.status) for r in found]}\n{fleet.log_text()}")
        time.sleep(0.2)


def test_one_run_per_due_time_across_the_fleet_and_one_catch_up(
    fleet: Fleet, pg: Database, files: FileServer
) -> None:
    token = make_token(pg)
    headers = {"Authorization": f"Bearer {token}"}
    webs = [fleet.web(name="web1"), fleet.web(name="web2")]
    fleet.worker("worker1")
    fleet.worker("worker2")
    url = files.serve("/products.csv", csv_of([("F-1", "One", ""), ("F-2", "Two", "")]))
    created = httpx.post(
        f"{webs[0]}/api/feeds",
        headers=headers,
        json={"name": "ERP", "url": url, "schedule": "0 0 1 1 *"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    feed: dict[str, Any] = created.json()

    # Two due times, one after the other: each is run once, whoever looks.
    first_due = utcnow() - timedelta(seconds=1)
    set_due(pg, feed["id"], first_due, "0 0 1 1 *")
    [first] = wait_for_runs(pg, feed["id"], 1, fleet)
    assert first.due_at == first_due and first.status == "imported", first.reason
    second_due = utcnow() - timedelta(seconds=1)
    set_due(pg, feed["id"], second_due, "0 0 1 1 *")
    runs = wait_for_runs(pg, feed["id"], 2, fleet)
    time.sleep(12)  # several scheduler turns of every process: nothing more may appear
    runs = scheduled_runs(pg, feed["id"])
    assert [run.due_at for run in runs] == [first_due, second_due]
    assert runs[1].status == "unchanged"
    listed = httpx.get(f"{webs[1]}/api/feeds/{feed['id']}/runs", headers=headers).json()
    assert [run["status"] for run in listed] == ["unchanged", "imported"]

    # The workers stop; three due times of an every-minute schedule pass; one catch-up run.
    for process in fleet.processes[2:]:
        process.terminate()
        process.wait(30)
    missed = utcnow() - timedelta(minutes=3)
    set_due(pg, feed["id"], missed, "* * * * *")
    back = utcnow()
    fleet.worker("worker3")
    catch_up = [
        run
        for run in wait_for_runs(pg, feed["id"], 3, fleet)
        if run.due_at is not None and run.due_at < back
    ]
    assert [run.due_at for run in catch_up] == [first_due, second_due, missed]
    with pg.session() as session:
        moved = session.get(Feed, feed["id"])
        assert moved is not None and moved.next_run_at is not None
        assert moved.next_run_at > back
