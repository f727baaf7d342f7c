"""What a database holds and which schema it has, read in the snapshot a backup is made from
or in the database a restore would replace.

Tables are named here as text rather than through the domains' models: a backup copies whatever
the schema holds, and an old schema (a backup being restored, a database not yet migrated) may
lack tables and columns the models describe.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from product_importer.backups.archive import Contents

# Runs one SQL statement and answers the first column of its first row.
Scalar = Callable[[str], Any]

SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"
POSTGRES_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
# As system.service.ALIVE_INTERVALS: a worker is alive while seen within 3 of its intervals.
ALIVE_INTERVALS = 3


def contents(scalar: Scalar, tables: Collection[str]) -> Contents:
    def count(table: str) -> int | None:
        if table not in tables:
            return None
        return int(scalar(f"SELECT count(*) FROM {table}"))  # noqa: S608 (names above)

    return Contents(
        products=count("products") or 0,
        change_sets=count("change_sets"),
        users=count("users"),
        webhooks=count("webhook_endpoints"),
    )


def revision(scalar: Scalar, tables: Collection[str]) -> str | None:
    """The Alembic revision the schema is at; None for a database never migrated."""
    if "alembic_version" not in tables:
        return None
    value = scalar("SELECT version_num FROM alembic_version")
    return None if value is None else str(value)


def is_empty(found: Contents) -> bool:
    return not any((found.products, found.change_sets, found.users, found.webhooks))


def table_names(connection: Connection) -> set[str]:
    listing = POSTGRES_TABLES if connection.dialect.name == "postgresql" else SQLITE_TABLES
    return set(connection.execute(text(listing)).scalars())


def scalar_of(connection: Connection) -> Scalar:
    return lambda sql: connection.execute(text(sql)).scalar()


@dataclass(frozen=True)
class Target:
    """The database a restore would write into."""

    tables: set[str]
    contents: Contents
    revision: str | None
    alive_workers: list[str]

    @property
    def empty(self) -> bool:
        return not self.tables or is_empty(self.contents)


def inspect_target(connection: Connection, now: datetime) -> Target:
    tables = table_names(connection)
    scalar = scalar_of(connection)
    return Target(
        tables=tables,
        contents=contents(scalar, tables),
        revision=revision(scalar, tables),
        alive_workers=_alive_workers(connection, tables, now),
    )


def _alive_workers(connection: Connection, tables: set[str], now: datetime) -> list[str]:
    """Servers and workers whose heartbeat says they use this database right now."""
    if "worker_heartbeats" not in tables:
        return []
    rows = connection.execute(
        text(
            "SELECT name, last_seen_at, heartbeat_seconds FROM worker_heartbeats "
            "WHERE stopped_at IS NULL"
        )
    ).all()
    alive = []
    for name, seen, interval in rows:
        if isinstance(seen, str):  # SQLite keeps naive UTC text
            seen = datetime.fromisoformat(seen)
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        if (now - seen).total_seconds() <= ALIVE_INTERVALS * float(interval):
            alive.append(str(name))
    return alive
