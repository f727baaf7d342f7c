"""Sign-in rate limits: password proofs are counted per account and per client address with
the `limits` library's fixed-window strategy.

An attempt is counted *before* its password is checked, in one atomic increment that also
answers whether the attempt is within the limit; a right password gives its count back. So
however many attempts arrive at once, no more than the limit are ever checked (a separate
"test, then count the failure" let 12 parallel attempts through a limit of 5).

The counters must be shared by every web process, so they live in Redis when the broker is
Redis, and otherwise in the database (a small `limits` storage over the `rate_limit_counters`
table: one upsert per attempt, in its own short transaction, so it counts at once for every
other request and even though the request's own unit of work is rolled back).

Password hashing is slow and memory-hungry (argon2: 64 MiB each), so each web process also
checks at most `signin_concurrency` passwords at once; an attempt beyond that is answered 429
at once instead of queueing for a thread and a database connection.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from product_importer.auth import usernames
from product_importer.db import Database
from product_importer.settings import Settings

_INCR = text(
    """
    INSERT INTO rate_limit_counters (key, count, expires_at) VALUES (:key, :amount, :expires)
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN rate_limit_counters.expires_at <= :now THEN :amount
                   ELSE rate_limit_counters.count + :amount END,
      expires_at = CASE WHEN rate_limit_counters.expires_at <= :now THEN :expires
                        ELSE rate_limit_counters.expires_at END
    RETURNING count
    """
)


class DatabaseStorage(Storage):
    """Fixed-window counters in the application's database (SQLite or PostgreSQL)."""

    STORAGE_SCHEME = None

    def __init__(self, database: Database) -> None:
        super().__init__()
        self.database = database

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self.database.engine.begin() as connection:
            count = connection.execute(
                _INCR, {"key": key, "amount": amount, "expires": now + expiry, "now": now}
            ).scalar_one()
        return int(count)

    def give_back(self, key: str) -> None:
        """Undo one increment of a window that is still open."""
        with self.database.engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE rate_limit_counters SET count = count - 1"
                    " WHERE key = :key AND expires_at > :now AND count > 0"
                ),
                {"key": key, "now": time.time()},
            )

    def get(self, key: str) -> int:
        with self.database.engine.connect() as connection:
            count = connection.execute(
                text(
                    "SELECT count FROM rate_limit_counters WHERE key = :key AND expires_at > :now"
                ),
                {"key": key, "now": time.time()},
            ).scalar()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        with self.database.engine.connect() as connection:
            expires = connection.execute(
                text("SELECT expires_at FROM rate_limit_counters WHERE key = :key"), {"key": key}
            ).scalar()
        return float(expires) if expires is not None else time.time()

    def check(self) -> bool:
        try:
            self.database.ping()
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.database.engine.begin() as connection:
            result = connection.execute(text("DELETE FROM rate_limit_counters"))
        return int(result.rowcount)

    def clear(self, key: str) -> None:
        with self.database.engine.begin() as connection:
            connection.execute(
                text("DELETE FROM rate_limit_counters WHERE key = :key"), {"key": key}
            )


def prune_expired(database: Database) -> int:
    with database.engine.begin() as connection:
        result = connection.execute(
            text("DELETE FROM rate_limit_counters WHERE expires_at <= :now"), {"now": time.time()}
        )
    return int(result.rowcount)


# Atomic in Redis: a key that expired meanwhile is not brought back as -1.
_REDIS_GIVE_BACK = b"""
if tonumber(redis.call('get', KEYS[1]) or '0') > 0 then
    return redis.call('decr', KEYS[1])
end
return 0
"""


def _give_back(storage: Storage, key: str) -> None:
    if isinstance(storage, DatabaseStorage):
        storage.give_back(key)
    elif isinstance(storage, RedisStorage):
        script = storage.get_connection().register_script(_REDIS_GIVE_BACK)
        script([storage.prefixed_key(key)])


def storage_for(settings: Settings, database: Database) -> Storage:
    broker = settings.broker_url or ""
    if broker.startswith(("redis://", "rediss://")):
        return RedisStorage(broker)
    return DatabaseStorage(database)


@dataclass(frozen=True)
class TooManyAttempts:
    retry_after: int  # seconds

    @property
    def message(self) -> str:
        minutes = math.ceil(self.retry_after / 60)
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
        return f"Too many failed sign-in attempts. Try again in {wait}."


BUSY = TooManyAttempts(retry_after=1)
BUSY_MESSAGE = "Too many sign-ins at this moment. Try again in a second."


@dataclass(frozen=True)
class Attempt:
    """An attempt counted against each limit, to give back if the password is right."""

    counted: tuple[tuple[RateLimitItem, str], ...]


class SignInGuard:
    """Counts password proofs before they are checked; says when the next attempt must wait."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.storage = storage_for(settings, database)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.per_account: RateLimitItem = parse(settings.signin_limit_per_account)
        self.per_address: RateLimitItem = parse(settings.signin_limit_per_address)
        self._checking = threading.BoundedSemaphore(settings.signin_concurrency)

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """True while this request may check a password; False at once when all are taken."""
        acquired = self._checking.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                self._checking.release()

    def _keys(self, username: str, address: str) -> list[tuple[RateLimitItem, str]]:
        # Hashed: the key never holds what was typed (a password typed in the wrong field).
        # By skeleton: `Alice` and `alice` (or a look-alike of it) share one count.
        account = usernames.key(username)[:40]
        return [
            (self.per_account, f"account:{account}"),
            (self.per_address, f"address:{address}"),
        ]

    def attempt(self, username: str, address: str) -> Attempt | TooManyAttempts:
        """Count an attempt against both limits, or say how long to wait if either is spent."""
        counted: list[tuple[RateLimitItem, str]] = []
        for item, key in self._keys(username, address):
            if not self.limiter.hit(item, "signin", key):
                # Left counted: the window is spent either way, and its end does not move.
                self._give_back(counted)
                reset = self.limiter.get_window_stats(item, "signin", key).reset_time
                return TooManyAttempts(max(1, math.ceil(reset - time.time())))
            counted.append((item, key))
        return Attempt(tuple(counted))

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the limits count failures only."""
        self._give_back(attempt.counted)

    def _give_back(self, counted: Sequence[tuple[RateLimitItem, str]]) -> None:
        for item, key in counted:
            _give_back(self.storage, item.key_for("signin", key))
