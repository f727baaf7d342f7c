"""Cron schedules in a time zone: checked when saved, next due times, and words for the UI."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from product_importer.feeds import schedule


def test_next_due_time_is_read_in_the_feeds_time_zone() -> None:
    after = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    # 02:00 in Berlin is 00:00 UTC in summer (CEST, UTC+2).
    assert schedule.next_after("0 2 * * *", "Europe/Berlin", after) == datetime(
        2026, 7, 2, 0, 0, tzinfo=UTC
    )
    assert schedule.next_after("0 2 * * *", "UTC", after) == datetime(2026, 7, 2, 2, tzinfo=UTC)


def test_the_next_due_time_is_strictly_after() -> None:
    at = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)
    assert schedule.next_after("0 2 * * *", "UTC", at) == datetime(2026, 7, 2, 2, tzinfo=UTC)


def test_schedule_in_words() -> None:
    assert schedule.describe("0 2 * * *", "Europe/Berlin") == "At 02:00, every day (Europe/Berlin)"
    assert "Monday through Friday" in schedule.describe("30 6 * * 1-5", "UTC")


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "must have 5 fields"),
        ("* * *", "not 3"),
        ("* * * * * *", "not 6"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 25 * * *", "not a valid cron expression"),
        ("a b c d e", "not a valid cron expression"),
        ("0 0 30 2 *", "never comes round"),
        ("* " * 60 + "*", "longer than"),
    ],
)
def test_bad_cron_expressions_are_refused_with_the_reason(expression: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        schedule.check_expression(expression)


def test_extra_spaces_are_tidied() -> None:
    assert schedule.check_expression("  0   2 * *  * ") == "0 2 * * *"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "europe/berlin"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(ValueError, match="not a known time zone"):
        schedule.check_timezone(zone)
