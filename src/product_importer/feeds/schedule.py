"""When a feed is due: a 5-field cron expression read in the feed's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, available_timezones

from cron_descriptor import Options, get_description
from croniter import CroniterError, croniter

MAX_EXPRESSION = 100


def check_timezone(name: str) -> str:
    """The IANA time zone name, or ValueError."""
    name = name.strip()
    if not name or len(name) > 64 or name not in _zones():
        raise ValueError(
            f"{name[:64]!r} is not a known time zone; use an IANA name such as "
            "'Europe/Berlin' or 'UTC'."
        )
    return name


def check_expression(expression: str) -> str:
    """A 5-field cron expression (minute hour day-of-month month day-of-week), or ValueError."""
    expression = " ".join(expression.split())
    if len(expression) > MAX_EXPRESSION:
        raise ValueError(f"The schedule is longer than {MAX_EXPRESSION} characters.")
    fields = expression.split(" ") if expression else []
    if len(fields) != 5:
        raise ValueError(
            f"The schedule must have 5 fields (minute hour day month weekday), not {len(fields)}:"
            " for example '0 2 * * *' for every day at 02:00."
        )
    try:
        valid = croniter.is_valid(expression)
    except (CroniterError, ValueError, TypeError, OverflowError):
        valid = False
    if not valid:
        raise ValueError(f"{expression!r} is not a valid cron expression.")
    try:  # an expression that never matches (30 February) is valid to croniter's parser
        next_after(expression, "UTC", datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError, OverflowError):
        raise ValueError(f"{expression!r} never comes round (no such date).") from None
    return expression


def next_after(expression: str, timezone: str, after: datetime) -> datetime:
    """The first due time strictly after `after`, in UTC."""
    local = after.astimezone(ZoneInfo(timezone))
    due: datetime = croniter(expression, local, max_years_between_matches=8).get_next(datetime)
    return due.astimezone(UTC)


def describe(expression: str, timezone: str) -> str:
    """'At 02:00 (Europe/Berlin)': the schedule in words, as the UI shows it."""
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = True
    try:
        words = get_description(expression, options)
    except Exception:  # the description is a courtesy; the expression itself was checked
        words = expression
    return f"{words} ({timezone})"


_zone_names: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _zone_names
    if _zone_names is None:
        _zone_names = frozenset(available_timezones())
    return _zone_names
