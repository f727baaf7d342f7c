"""Engine, sessions and the few places where SQLite and PostgreSQL differ."""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, DateTime, Engine, Integer, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from product_importer.tasks.dispatch import Dispatcher


class DatabaseConfigError(Exception):
    """The database URL is malformed or names a database we do not support."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        if value is not None and dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


# SQLite only aliases the rowid (fast, auto-assigned) for a column typed exactly INTEGER.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


def normalise_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and route them to psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseConfigError(f"DATABASE_URL is not a valid database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise DatabaseConfigError(
            f"DATABASE_URL uses '{backend}', but only sqlite and postgresql are supported."
        )
    elif parsed.get_driver_name() not in ("pysqlite", ""):
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


SQLITE_BUSY_TIMEOUT_MS = 30_000


# Letters without a Unicode decomposition that search folds anyway, as PostgreSQL's unaccent does.
_FOLDED_LETTERS = str.maketrans(
    {
        "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "đ": "d", "Đ": "D",
        "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D", "ß": "ss",
    }
)  # fmt: skip


def fold_text(value: str | None) -> str | None:
    """Text as search compares it: lowercased, accents removed ("Señor" reads "senor"). SQLite's
    search table holds it (as `pi_fold()`); PostgreSQL's documents are `lower(unaccent(...))`.

    Fast for the usual text, mostly ASCII: only the runs of other characters are folded (each
    run once, then remembered), the rest is lowered as it is. That equals folding the whole
    text (decomposition works character by character, and so does lowercasing) except for a
    capital sigma, whose lowercase depends on the letters around it (a Greek final sigma): text
    holding one takes the whole way. SQLite calls this for rows a search tests, thousands per
    search, each holding the interpreter's lock: it must stay cheap."""
    if value is None or value.isascii():
        return None if value is None else value.lower()
    if _CAPITAL_SIGMA in value:
        return _fold_slowly(value)
    return _NOT_ASCII.sub(lambda run: _fold_run(run.group()), value).lower()


_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")
_CAPITAL_SIGMA = "\u03a3"


@functools.lru_cache(maxsize=4096)
def _fold_run(run: str) -> str:
    """A run of non-ASCII characters folded."""
    return _fold_slowly(run)


def _fold_slowly(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value.translate(_FOLDED_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def register_sqlite_functions(dbapi_connection: Any) -> None:
    dbapi_connection.create_function("pi_fold", 1, fold_text, deterministic=True)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    register_sqlite_functions(dbapi_connection)
    # WAL lets readers run while an import writes; the busy timeout makes writers queue
    # instead of failing; SQLite leaves foreign keys off unless asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only, before SQLite would create it with
    the umask's mode: it holds user password and API token hashes and webhook signing secrets.
    SQLite gives the -wal and -shm files it creates the database file's mode. An existing file
    is left as it is."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def compact_json(value: Any) -> str:
    """JSON as SQLite's own functions write it (json(), json_patch()), so stored field values
    compare equal to what SQL computes from them."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        pool: dict[str, Any] = {}
        # Not for ":memory:" nor a "file:" URI (SQLite's own syntax, options and all).
        if database and database != ":memory:" and not database.startswith("file:"):
            create_private_file(Path(database))
            # A connection to a SQLite file is only a file handle: the pool is as large as
            # PostgreSQL's, so requests reading while an import writes need not wait for one.
            pool = {"pool_size": 10, "max_overflow": 20}
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=False,
            json_serializer=compact_json,
            **pool,
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=compact_json
    )


# How long a request's statement waits for a lock another writer holds (an import's merge, a
# delete-all) before it gives up (`is_lock_wait`; the app answers 423), instead of holding its
# pooled connection until the client's own timeout: an import may hold the catalogue a minute.
REQUEST_LOCK_WAIT_MS = 5_000
# Connections of the pool kept for background work (an import's progress, heartbeats, the
# periodic tasks) when requests are many: see `request_slots`.
POOL_RESERVE = 5


def _bounded_lock_wait(session: Session, _transaction: Any, connection: Any) -> None:
    """At the start of each transaction: a request's waits are bounded; other work waits as
    long as the engine's default (the same pooled connection serves both)."""
    request = session.info.get("request", False)
    if connection.dialect.name == "postgresql":
        if request:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {REQUEST_LOCK_WAIT_MS}")
    else:
        wait = REQUEST_LOCK_WAIT_MS if request else SQLITE_BUSY_TIMEOUT_MS
        connection.exec_driver_sql(f"PRAGMA busy_timeout={wait}")


def is_lock_wait(exc: BaseException) -> bool:
    """Whether a database error is a lock wait given up: PostgreSQL's lock_timeout
    (SQLSTATE 55P03) or SQLite's busy timeout ("database is locked")."""
    original = getattr(exc, "orig", exc)
    if getattr(original, "sqlstate", None) == "55P03":
        return True
    return "database is locked" in str(original)


class Database:
    """The engine and a session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        # The session knows its Database so work enqueued on it reaches this dispatcher.
        self.session_factory = sessionmaker(
            self.engine, expire_on_commit=False, info={"database": self}
        )
        event.listen(self.session_factory, "after_begin", _bounded_lock_wait)
        self.dispatcher: Dispatcher | None = None

    def request_slots(self) -> int:
        """How many requests may use the database at once in a web process: the pool's
        connections less the reserve, so requests wait their turn rather than time out waiting
        for a connection, and background work always finds one (`web.request_limit`)."""
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):  # in-memory SQLite: one connection per thread
            return 20
        return max(4, pool.size() + max(0, pool._max_overflow) - POOL_RESERVE)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, request: bool = False) -> Iterator[Session]:
        """A unit of work: commits when the block ends cleanly, rolls back otherwise. A
        `request`'s lock waits are bounded (REQUEST_LOCK_WAIT_MS)."""
        session = self.session_factory()
        session.info["request"] = request
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
