"""The catch-up: moving the fresh set into the index in the background, in small batches.

Each batch is one transaction that writes the index rows of up to `BATCH_ROWS` fresh products
(the lowest ids first, so the index is written in key order) and removes them from the fresh
set: a crash loses nothing (a batch either happened or did not) and the next turn goes on where
it stopped. It yields to imports: it does not start a batch while one runs (see `yields_to`),
waits only briefly for a lock, and a turn lasts at most `TURN_SECONDS`, so periodic work that
shares its scheduler is not held up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import column, select, table, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from product_importer.catalog.search.documents import SQLITE_FOLDED_COLUMNS
from product_importer.db import Database, is_lock_wait

log = logging.getLogger(__name__)

BATCH_ROWS = 5_000
TURN_SECONDS = 2.0
# A batch waits this long for a lock (an import's merge holds the products table for its whole
# transaction): past it, the turn ends and the next one tries again.
LOCK_WAIT_MS = 200

_fresh = table("search_fresh", column("product_id"))

# FTS5 merges segments 16 at a time instead of 4 (set by migration 0011): a quarter less work
# when 500,000 rows are indexed (14 s against 20 s), the same search speed.
SQLITE_SEARCH_AUTOMERGE = (
    "INSERT INTO product_search (product_search, rank) VALUES ('automerge', 16)"
)

_SQLITE_BATCH = [
    # The batch's rows are an id range of the fresh set; a fresh row whose product is gone
    # (removed without `writing.sqlite_forget`) is dropped with the others.
    "INSERT OR REPLACE INTO product_search (rowid, sku, name, description) "  # noqa: S608
    f"SELECT {SQLITE_FOLDED_COLUMNS} FROM products WHERE id IN "
    "(SELECT product_id FROM search_fresh WHERE product_id BETWEEN :low AND :high)",
    "DELETE FROM search_fresh WHERE product_id BETWEEN :low AND :high",
]
# PostgreSQL: the fresh rows are locked (SKIP LOCKED: a row a writer holds stays for a later
# batch, with the text that writer gives it) and so are their products (KEY SHARE, which an
# edit does not block but a removal does), so the catch-up never waits on a writer and a
# writer waits for at most one short batch. The document is the fresh row's: every writer keeps
# it current in the transaction that changes the product.
_PG_BATCH = (
    "WITH batch AS (SELECT f.product_id, f.document FROM search_fresh AS f "
    "JOIN products AS p ON p.id = f.product_id ORDER BY f.product_id LIMIT :rows "
    "FOR UPDATE OF f SKIP LOCKED FOR KEY SHARE OF p SKIP LOCKED), "
    "indexed AS (INSERT INTO product_search (product_id, document) "
    "SELECT product_id, document FROM batch ORDER BY product_id "
    "ON CONFLICT (product_id) DO UPDATE SET document = excluded.document "
    "WHERE product_search.document IS DISTINCT FROM excluded.document) "
    "DELETE FROM search_fresh AS f USING batch AS b WHERE f.product_id = b.product_id"
)

YieldCheck = Callable[[Session], bool]
_yield_checks: list[YieldCheck] = []


def yields_to(check: YieldCheck) -> YieldCheck:
    """Register a test, in a session, of work the catch-up must not compete with (an import:
    see imports.tasks). Domains above the catalogue register theirs; this one cannot see them."""
    _yield_checks.append(check)
    return check


def catching_up(session: Session) -> bool:
    """Whether the index is behind: some products are found through the fresh set. Asked of
    the primary key, not the table: on PostgreSQL a drained fresh set holds dead rows until it
    is vacuumed, and every list request asks this."""
    first = select(_fresh.c.product_id).order_by(_fresh.c.product_id).limit(1)
    return session.scalar(first) is not None


def fresh_rows(session: Session) -> int:
    return int(session.scalar(text("SELECT count(*) FROM search_fresh")) or 0)


def catch_up_batch(session: Session, rows: int = BATCH_ROWS) -> int:
    """Move up to `rows` fresh products into the index, in the caller's transaction; how many."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}"))
        result = session.execute(text(_PG_BATCH), {"rows": rows})
        return int(result.rowcount)  # type: ignore[attr-defined]
    # Waits briefly for the write lock; the next transaction on this pooled connection starts
    # with the usual wait again (db._bounded_lock_wait sets it at every begin).
    session.execute(text(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}"))
    ids = list(
        session.scalars(
            text("SELECT product_id FROM search_fresh ORDER BY product_id LIMIT :rows"),
            {"rows": rows},
        )
    )
    if ids:
        for sql in _SQLITE_BATCH:
            session.execute(text(sql), {"low": ids[0], "high": ids[-1]})
    return len(ids)


def catch_up(
    database: Database,
    stopping: threading.Event,
    turn_seconds: float = TURN_SECONDS,
    rows: int = BATCH_ROWS,
) -> int:
    """One turn: batches until the fresh set is empty, the turn is over, the process stops or
    an import starts; how many products were moved."""
    deadline = time.monotonic() + turn_seconds
    moved = 0
    drained = False
    while not stopping.is_set() and time.monotonic() < deadline:
        try:
            with database.session() as session:
                if any(check(session) for check in _yield_checks):
                    break
                done = catch_up_batch(session, rows)
        except OperationalError as exc:
            if not is_lock_wait(exc):
                raise
            break  # a writer holds what the batch needs: next turn
        moved += done
        if done < rows:
            drained = True
            break
    _vacuum_when_drained(database, moved, drained)
    return moved


# PostgreSQL: the rows moved out of the fresh set stay in its table as dead rows until a vacuum,
# and a search's scan of the fresh set reads them all (a million of them made every search
# 30 ms slower). Vacuumed as soon as a large set has drained, rather than when autovacuum
# comes round to it.
VACUUM_AFTER_ROWS = 10_000
_moved_since_vacuum = 0


def _vacuum_when_drained(database: Database, moved: int, drained: bool) -> None:
    global _moved_since_vacuum
    if database.dialect != "postgresql":
        return
    _moved_since_vacuum += moved
    if not drained or _moved_since_vacuum < VACUUM_AFTER_ROWS:
        return
    started = time.perf_counter()
    try:
        with database.engine.connect().execution_options(
            isolation_level="AUTOCOMMIT"
        ) as connection:
            connection.execute(text("VACUUM (ANALYZE) search_fresh"))
    except OperationalError:
        log.warning("vacuuming the search fresh set failed; autovacuum will", exc_info=True)
        return
    _moved_since_vacuum = 0
    log.info("search fresh set vacuumed in %.2fs", time.perf_counter() - started)
