"""Each due time of a feed starts one run, however many schedulers look at once; a fleet that
was down over several due times runs once when it comes back."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from product_importer.db import Database, utcnow
from product_importer.feeds import runs, service
from product_importer.feeds.models import Feed, FeedRun


def add_feed(database: Database, schedule: str = "* * * * *", **fields: object) -> int:
    now = utcnow()
    values: dict[str, object] = {
        "name": "Feed",
        "url": "https://erp.example.com/products.csv",
        "schedule": schedule,
        "timezone": "UTC",
        "missing": "keep",
        "max_missing_percent": 10.0,
        "failure_alert_after": 3,
        "enabled": True,
        "consecutive_failures": 0,
        "created_at": now,
        "updated_at": now,
    }
    with database.session() as session:
        feed = Feed(**(values | fields))
        session.add(feed)
        session.flush()
        return feed.id


def runs_of(database: Database, feed_id: int) -> list[FeedRun]:
    with database.session() as session:
        found = session.scalars(select(FeedRun).where(FeedRun.feed_id == feed_id))
        return list(found)


def test_schedulers_racing_for_one_due_time_record_one_run(database: Database) -> None:
    due = utcnow() - timedelta(seconds=1)
    feed_id = add_feed(database, next_run_at=due)
    start = threading.Barrier(6)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            start.wait(10)
            with database.session() as session:
                claimed.extend(service.claim_due(session, utcnow()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # SQLite may make a racing scheduler wait and give up on the lock; that is fine, as long
    # as it never records a second run.
    assert all("locked" in str(error) for error in errors), errors
    assert len(claimed) == 1
    [run] = runs_of(database, feed_id)
    assert run.trigger == "schedule" and run.due_at == due
    with database.session() as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None and feed.next_run_at is not None
        assert feed.next_run_at > utcnow() - timedelta(seconds=5)


def test_a_fleet_down_over_several_due_times_runs_once(database: Database) -> None:
    missed = utcnow() - timedelta(days=3)
    feed_id = add_feed(database, schedule="0 2 * * *", next_run_at=missed)
    with database.session() as session:
        assert len(service.claim_due(session, utcnow())) == 1
    with database.session() as session:
        assert service.claim_due(session, utcnow()) == []
        feed = session.get(Feed, feed_id)
        assert feed is not None and feed.next_run_at is not None
        assert utcnow() < feed.next_run_at <= utcnow() + timedelta(days=1)
    [run] = runs_of(database, feed_id)
    assert run.due_at == missed


def test_a_due_time_is_never_run_twice(database: Database) -> None:
    due = utcnow() - timedelta(minutes=1)
    feed_id = add_feed(database, next_run_at=due)
    with database.session() as session:
        session.add(FeedRun(feed_id=feed_id, trigger="schedule", due_at=due, status="imported"))
    with database.session() as session:
        assert service.claim_due(session, utcnow()) == []
    assert len(runs_of(database, feed_id)) == 1


def test_disabled_and_future_feeds_are_not_due(database: Database) -> None:
    add_feed(database, name="off", next_run_at=utcnow() - timedelta(hours=1), enabled=False)
    add_feed(database, name="later", next_run_at=utcnow() + timedelta(hours=1))
    with database.session() as session:
        assert service.claim_due(session, utcnow()) == []


def test_a_due_time_while_the_last_run_goes_on_is_skipped_and_says_so(
    database: Database,
) -> None:
    feed_id = add_feed(database, next_run_at=utcnow() - timedelta(seconds=1))
    with database.session() as session:
        session.add(FeedRun(feed_id=feed_id, trigger="manual", status="importing"))
    with database.session() as session:
        assert service.claim_due(session, utcnow()) == []
    skipped = [run for run in runs_of(database, feed_id) if run.trigger == "schedule"]
    assert [run.status for run in skipped] == ["failed"]
    assert "had not finished" in (skipped[0].reason or "")


def test_a_lost_queued_run_is_sent_again_once_per_interval(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_id = add_feed(database)
    with database.session() as session:
        run = FeedRun(feed_id=feed_id, trigger="manual", status="queued")
        run.created_at = utcnow() - timedelta(minutes=5)
        session.add(run)
    sent: list[dict[str, object]] = []
    monkeypatch.setattr(runs, "_resent_at", {})
    monkeypatch.setattr(runs, "enqueue", lambda _session, _name, **kwargs: sent.append(kwargs))
    runs.settle(database)
    runs.settle(database)
    assert len(sent) == 1
