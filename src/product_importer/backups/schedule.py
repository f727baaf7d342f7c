"""When the daily backup is due: once a day at `backup_time` on the server's clock, and at
start-up when that time passed while the server was down (as anacron catches up)."""

from __future__ import annotations

from datetime import datetime, time, timedelta


def last_slot(now: datetime, at: time) -> datetime:
    """The latest moment at or before `now` whose clock time is `at`, in `now`'s time zone."""
    slot = datetime.combine(now.date(), at, tzinfo=now.tzinfo)
    if slot > now:
        slot = datetime.combine(now.date() - timedelta(days=1), at, tzinfo=now.tzinfo)
    return slot


def next_slot(now: datetime, at: time) -> datetime:
    return last_slot(now, at) + timedelta(days=1)


def is_due(now: datetime, at: time, since: datetime) -> bool:
    """True when a slot has come since `since` (the newest backup's start, or when the server
    started watching a folder that has none: a new installation waits for its first slot)."""
    return last_slot(now, at) > since
