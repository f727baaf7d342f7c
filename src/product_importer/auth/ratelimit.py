"""Sign-in rate limits: failed password proofs are counted per account and per client address
with the `limits` library's fixed-window strategy.

The counters must be shared by every web process, so they live in Redis when the broker is
Redis, and otherwise in the database (a small `limits` storage over the `rate_limit_counters`
table: one upsert per failed attempt, in its own short transaction, so a failure counts even
though the request's own unit of work is rolled back).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

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


class SignInGuard:
    """Counts failed password proofs; says when the next attempt must wait."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.limiter = FixedWindowRateLimiter(storage_for(settings, database))
        self.per_account: RateLimitItem = parse(settings.signin_limit_per_account)
        self.per_address: RateLimitItem = parse(settings.signin_limit_per_address)

    def _keys(self, username: str, address: str) -> list[tuple[RateLimitItem, str]]:
        # Hashed: the key never holds what was typed (a password typed in the wrong field).
        account = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:40]
        return [
            (self.per_account, f"account:{account}"),
            (self.per_address, f"address:{address}"),
        ]

    def blocked(self, username: str, address: str) -> TooManyAttempts | None:
        for item, key in self._keys(username, address):
            if not self.limiter.test(item, "signin", key):
                reset = self.limiter.get_window_stats(item, "signin", key).reset_time
                return TooManyAttempts(max(1, math.ceil(reset - time.time())))
        return None

    def failed(self, username: str, address: str) -> None:
        for item, key in self._keys(username, address):
            self.limiter.hit(item, "signin", key)
