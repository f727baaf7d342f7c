"""The daily backup in embedded mode: when it is due, that it runs from the scheduler, and how the
folder keeps the last N and records failures."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from product_importer.backups import schedule, service, store
from product_importer.backups import tasks as backup_tasks
from product_importer.backups.errors import BackupFailed
from product_importer.db import Database, utcnow
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext, all_periodic
from tests.conftest import make_settings

PARIS_WINTER = timezone(timedelta(hours=1))


def test_the_slot_is_the_last_time_of_day_passed() -> None:
    at = time(3, 0)
    before = datetime(2025, 1, 10, 2, 59, tzinfo=PARIS_WINTER)
    after = datetime(2025, 1, 10, 3, 0, tzinfo=PARIS_WINTER)
    assert schedule.last_slot(before, at) == datetime(2025, 1, 9, 3, 0, tzinfo=PARIS_WINTER)
    assert schedule.last_slot(after, at) == after
    assert schedule.next_slot(after, at) == datetime(2025, 1, 11, 3, 0, tzinfo=PARIS_WINTER)
    yesterday_backup = datetime(2025, 1, 9, 2, 0, tzinfo=UTC)  # 03:00 in Paris
    assert not schedule.is_due(before, at, yesterday_backup)
    assert schedule.is_due(after, at, yesterday_backup)
    # Down at 03:00, started at 09:00: caught up at once; then not again that day.
    nine = datetime(2025, 1, 10, 9, 0, tzinfo=PARIS_WINTER)
    assert schedule.is_due(nine, at, yesterday_backup)
    assert not schedule.is_due(nine, at, nine)


def test_the_backup_time_setting(tmp_path: Path) -> None:
    assert make_settings(tmp_path, "sqlite://", backup_time="3:30").backup_time == time(3, 30)
    assert make_settings(tmp_path, "sqlite://", backup_time=" 23:05 ").backup_time == time(23, 5)
    for wrong in ("24:00", "noon", "3", "03:00:00"):
        with pytest.raises(ValidationError, match="not a time of day"):
            make_settings(tmp_path, "sqlite://", backup_time=wrong)
    with pytest.raises(ValidationError):
        make_settings(tmp_path, "sqlite://", backup_keep=0)


def _context(settings: Settings, database: Database) -> TaskContext:
    return TaskContext(database=database, settings=settings)


def _run_daily(context: TaskContext) -> None:
    """The periodic task, and the backup thread it may start."""
    backup_tasks.running = None
    backup_tasks.daily_backup(context)
    if backup_tasks.running is not None:
        backup_tasks.running.join(timeout=60)


def _zips(settings: Settings) -> list[str]:
    return sorted(path.name for path in service.folder(settings).path.glob("*.zip"))


def test_the_daily_backup_waits_for_its_time_then_runs_once(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "backups.daily" in [spec.name for spec in all_periodic()]
    context = _context(settings, database)
    _run_daily(context)  # a new installation waits for the first slot
    assert _zips(settings) == []

    # The server has been watching since before yesterday's slot: one backup, then no more.
    watched = str(service.folder(settings).path)
    monkeypatch.setitem(backup_tasks._watching_since, watched, utcnow() - timedelta(days=2))
    _run_daily(context)
    [made] = service.records(settings)
    assert made.status == "completed" and made.trigger == "scheduled"
    _run_daily(context)
    assert len(_zips(settings)) == 1


def test_a_day_missed_while_down_is_caught_up(database: Database, settings: Settings) -> None:
    folder = service.folder(settings)
    folder.path.mkdir(mode=0o700, parents=True)
    old = folder.path / f"{store.PREFIX}20200101-030000-000000.failed.json"
    old.write_text('{"error": "The disk was full.", "trigger": "scheduled"}')
    _run_daily(_context(settings, database))
    assert len(_zips(settings)) == 1
    assert not old.exists()  # a later success drops older failures


@pytest.mark.parametrize("overrides", [{"backup_enabled": False}, {"broker_url": "redis://x"}])
def test_no_daily_backup_when_off_or_distributed(
    database: Database,
    tmp_path: Path,
    overrides: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path, url, **overrides)
    watched = str(service.folder(settings).path)
    monkeypatch.setitem(backup_tasks._watching_since, watched, datetime(2020, 1, 1, tzinfo=UTC))
    _run_daily(_context(settings, database))
    assert _zips(settings) == []
    assert service.status(settings, utcnow()).scheduled is False


def test_the_folder_keeps_the_last_n(database: Database, tmp_path: Path) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path, url, backup_keep=3)
    folder = service.folder(settings)
    made = [service.back_up(settings, database, "manual").id for _ in range(5)]
    stale = folder.path / f"{store.PREFIX}20200101-000000-000000.zip.partial"
    stale.write_bytes(b"cut off")
    service.back_up(settings, database, "manual")
    kept = [record.id for record in folder.records()]
    assert kept[1:] == made[::-1][:2] and len(kept) == 3
    assert not stale.exists()
    for path in folder.path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name


def test_a_failed_backup_is_recorded_and_leaves_no_file(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise BackupFailed("pg_dump failed: out of disk space")

    monkeypatch.setattr(service, "write_backup", broken)
    record = service.back_up(settings, database, "scheduled")
    assert record.status == "failed" and record.error == "pg_dump failed: out of disk space"
    assert [r.status for r in service.records(settings)] == ["failed"]
    assert list(service.folder(settings).path.glob("*.zip*")) == []
    assert not service.folder(settings).writing()  # the lock was let go
    warning = service.status(settings, utcnow()).warning
    assert warning is not None and "failed: pg_dump failed: out of disk space" in warning
