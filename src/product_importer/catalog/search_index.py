"""Keeping `product_search` in step with `products`, per database.

On SQLite an FTS5 trigram table (rowid = product id), on PostgreSQL a table of lowercased
documents with a pg_trgm GIN index; `catalog.repository` reads it. Single-product writes index at
once (`index_product`, `unindex_product`); an import's merge indexes in its own transaction
(`PG_INDEX_MERGED`, `sqlite_index_merged`) or, on PostgreSQL, rebuilds the whole table and swaps
it in when it writes most of the catalogue; an undo indexes what it restores
(`index_stamped`), or leaves a large one to the `search_backlog` (`index_changed`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    exists,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from product_importer.catalog.models import Product, SearchBacklog
from product_importer.db import UTCDateTime

# PostgreSQL's search document: the searched columns, lowercased and without accents once when
# written, so a search is a case-sensitive LIKE of the term folded the same way ("senor" finds
# "Señor"). Lowercasing once is ILIKE (which lowercases both sides on every test) at a third of
# the cost a row. SQLite's search table holds each column folded by `pi_fold()` (db.fold_text).
PG_FOLD = "lower(unaccent({}))"
PG_DOCUMENT = PG_FOLD.format("sku || ' ' || name || ' ' || description")
# Writes a product's document, leaving an unchanged one (and its index entries) alone.
_PG_UPSERT_DOCUMENT = (
    "ON CONFLICT (product_id) DO UPDATE SET document = excluded.document "
    "WHERE product_search.document IS DISTINCT FROM excluded.document"
)


def index_product(session: Session, product: Product) -> None:
    """Make one (flushed) product findable by its current text, in the caller's transaction."""
    values = {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
    }
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DELETE FROM product_search WHERE rowid = :id"), values)
        session.execute(
            text(
                "INSERT INTO product_search (rowid, sku, name, description) "
                "VALUES (:id, pi_fold(:sku), pi_fold(:name), pi_fold(:description))"
            ),
            values,
        )
    else:
        session.execute(
            text(
                "INSERT INTO product_search (product_id, document) "
                "VALUES (:id, lower(unaccent(:sku || ' ' || :name || ' ' || :description))) "
                "ON CONFLICT (product_id) DO UPDATE SET document = excluded.document"
            ),
            values,
        )


def unindex_product(session: Session, product_id: int) -> None:
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DELETE FROM product_search WHERE rowid = :id"), {"id": product_id})
    else:
        session.execute(
            text("DELETE FROM product_search WHERE product_id = :id"), {"id": product_id}
        )


# SQLite: `+updated_at` keeps the planner on the id range (the primary key) rather than the
# (updated_at, id) index, which would visit every changed row for every chunk. The rowid range
# lets FTS5 find the rows to replace without scanning the table.
_SQLITE_UNINDEX_CHANGED = (
    "DELETE FROM product_search WHERE rowid BETWEEN :low AND :high AND rowid IN "
    "(SELECT id FROM products WHERE id BETWEEN :low AND :high AND +updated_at >= :since)"
)
SQLITE_FOLDED_COLUMNS = "id, pi_fold(sku), pi_fold(name), pi_fold(description)"
_SQLITE_INDEX_CHANGED = (
    "INSERT INTO product_search (rowid, sku, name, description) "  # noqa: S608 (fixed text)
    f"SELECT {SQLITE_FOLDED_COLUMNS} FROM products "
    "WHERE id BETWEEN :low AND :high AND +updated_at >= :since"
)
# PostgreSQL: the rows are read under FOR SHARE, so an edit committed meanwhile is seen (an
# older text never overwrites the newer one the edit wrote) and a deleted row is skipped.
# NOWAIT: a chunk that meets a row being written fails at once (LockNotAvailable) instead of
# waiting while holding locks, so it can never deadlock with an import's merge; the caller
# retries it.
_PG_INDEX_CHANGED = (
    "INSERT INTO product_search (product_id, document) "  # noqa: S608 (fixed text)
    f"SELECT id, {PG_DOCUMENT} FROM products "
    "WHERE id BETWEEN :low AND :high AND updated_at >= :since "
    f"ORDER BY id FOR SHARE NOWAIT {_PG_UPSERT_DOCUMENT}"
)


# An import's merge indexes what it wrote in the same transaction, batch by batch.
# PostgreSQL: a part of the merge's batch statement, reading `r`, the upserts' RETURNING rows.
PG_INDEX_MERGED = (
    "indexed AS (INSERT INTO product_search (product_id, document) "  # noqa: S608 (fixed text)
    f"SELECT id, {PG_DOCUMENT} FROM r {_PG_UPSERT_DOCUMENT})"
)


# A merge that writes most of the catalogue rebuilds the PostgreSQL search table instead: one
# sorted GIN build costs about 40 us a product, row-by-row upkeep about 62 us a written row
# (measured on 500,000 products). Readers keep searching the old table until the commit.
PG_REBUILD_MIN_ROWS = 50_000
PG_REBUILD_SHARE = 0.65  # written rows / products after the merge

PG_BUILD_SEARCH = [
    "CREATE TABLE product_search_next (product_id bigint NOT NULL, document text NOT NULL)",
    "INSERT INTO product_search_next (product_id, document) "  # noqa: S608 (fixed text)
    f"SELECT id, {PG_DOCUMENT} FROM products",
    "ALTER TABLE product_search_next ADD CONSTRAINT product_search_next_pkey "
    "PRIMARY KEY (product_id)",
    "CREATE INDEX ix_product_search_next_trgm ON product_search_next "
    "USING gin (document gin_trgm_ops)",
    # Needs SHARE ROW EXCLUSIVE on products, which the merge holds already.
    "ALTER TABLE product_search_next ADD CONSTRAINT product_search_next_product_id_fkey "
    "FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE",
]
PG_SWAP_LOCK = "LOCK TABLE product_search IN ACCESS EXCLUSIVE MODE"
RETIRED_SEARCH_PREFIX = "product_search_old_"


def pg_swap_search(suffix: str) -> list[str]:
    """Statements that put the built table in place, after `PG_SWAP_LOCK`. The old table is
    renamed, not dropped: dropping it drops its foreign key, which needs an exclusive lock on
    `products`, and taking that while holding the merge's lock can deadlock with a writer
    queued behind the merge. `drop_retired_search_tables` drops it after the commit."""
    old = f"{RETIRED_SEARCH_PREFIX}{int(suffix)}"
    return [
        f"ALTER TABLE product_search RENAME TO {old}",
        f"ALTER INDEX product_search_pkey RENAME TO {old}_pkey",
        f"ALTER INDEX ix_product_search_trgm RENAME TO ix_{old}_trgm",
        "ALTER TABLE product_search_next RENAME TO product_search",
        "ALTER INDEX product_search_next_pkey RENAME TO product_search_pkey",
        "ALTER INDEX ix_product_search_next_trgm RENAME TO ix_product_search_trgm",
        "ALTER TABLE product_search RENAME CONSTRAINT product_search_next_product_id_fkey "
        "TO product_search_product_id_fkey",
    ]


LIST_RETIRED_SEARCH = (
    "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'product\\_search\\_old\\_%'"
)


# Dropping a replaced table waits this long for its locks: searches queue behind the wait.
RETIRED_DROP_LOCK_TIMEOUT_MS = 200


def drop_retired_search_tables(
    connection: Connection, lock_timeout_ms: int | None = RETIRED_DROP_LOCK_TIMEOUT_MS
) -> int:
    """Drop the search tables rebuilds have replaced; how many went. With a lock timeout, a
    table whose locks are not granted in time stays for the next call (each drop commits on
    its own, so a wait never holds up other work for long); None waits as long as it takes."""
    dropped = 0
    for name in connection.execute(text(LIST_RETIRED_SEARCH)).scalars().all():
        if lock_timeout_ms is not None:
            connection.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
        try:
            connection.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
            connection.commit()
            dropped += 1
        except OperationalError:
            connection.rollback()
    return dropped


# FTS5 merges segments 16 at a time instead of 4 (set by migration 0011): a quarter less work
# when an import indexes 500,000 rows (14 s against 20 s), the same search speed.
SQLITE_SEARCH_AUTOMERGE = (
    "INSERT INTO product_search (product_search, rank) VALUES ('automerge', 16)"
)


def sqlite_index_merged(where: str) -> str:
    """After a merge batch: (re)index the products it wrote, stamped with the merge's
    `updated_at` (the first parameter). `where` is the batch's key range on `s`, whose
    positional parameters follow. OR REPLACE drops an id's old search row first: an updated
    product's, or one left by a product removed since (SQLite hands out freed ids again)."""
    # `where` is SQL text the merger builds from fixed fragments; values are parameters.
    return (
        "INSERT OR REPLACE INTO product_search (rowid, sku, name, description) "  # noqa: S608
        f"SELECT {SQLITE_FOLDED_COLUMNS} FROM products WHERE id IN (SELECT p.id "
        "FROM temp.import_last AS s JOIN products AS p ON p.sku_key = s.sku_key "
        f"WHERE p.updated_at = ? AND {where})"
    )


def index_changed(session: Session, low: int, high: int, since: datetime) -> None:
    """(Re)index the products with ids in [low, high] changed at or after `since`. Idempotent."""
    params = {"low": low, "high": high, "since": since}
    if session.get_bind().dialect.name == "sqlite":
        statements = [_SQLITE_UNINDEX_CHANGED, _SQLITE_INDEX_CHANGED]
    else:
        statements = [_PG_INDEX_CHANGED]
    for sql in statements:
        session.execute(text(sql).bindparams(bindparam("since", type_=UTCDateTime())), params)


_SQLITE_INDEX_STAMPED = (
    "INSERT OR REPLACE INTO product_search (rowid, sku, name, description) "  # noqa: S608
    f"SELECT {SQLITE_FOLDED_COLUMNS} FROM products WHERE updated_at = :stamp"
)
_PG_INDEX_STAMPED = (
    "INSERT INTO product_search (product_id, document) "  # noqa: S608 (fixed text)
    f"SELECT id, {PG_DOCUMENT} FROM products WHERE updated_at = :stamp {_PG_UPSERT_DOCUMENT}"
)


def index_stamped(session: Session, stamp: datetime) -> None:
    """(Re)index the products last written at `stamp`, in the caller's transaction: an undo's
    restored products, which all carry its time. Found through the `updated_at` index."""
    sql = (
        _SQLITE_INDEX_STAMPED if session.get_bind().dialect.name == "sqlite" else _PG_INDEX_STAMPED
    )
    session.execute(text(sql).bindparams(bindparam("stamp", type_=UTCDateTime())), {"stamp": stamp})


def changed_id_bounds(session: Session, since: datetime) -> tuple[int, int] | None:
    """The lowest id changed at or after `since`, and the highest id: the range to index."""
    low = session.scalar(select(func.min(Product.id)).where(Product.updated_at >= since))
    high = session.scalar(select(func.max(Product.id)))
    if low is None or high is None:
        return None
    return int(low), int(high)


def search_pending(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(SearchBacklog.id.isnot(None)))))


def backlog_statement(dialect: str, changed_since: datetime) -> tuple[str, dict[str, Any]]:
    """SQL (with :named parameters, for a raw driver connection) that records a backlog entry."""
    since: Any = changed_since
    if dialect == "sqlite":
        # As SQLAlchemy stores UTCDateTime on SQLite, so the text comparison holds.
        since = changed_since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (
        "INSERT INTO search_backlog (changed_since, created_at) VALUES (:since, :since)",
        {"since": since},
    )
