"""Delete-all: emptying the catalogue in one transaction, the fastest way each database has
(SQLite erases a table without visiting rows; PostgreSQL truncates), and in slices for a
PostgreSQL lock that cannot be had (`delete_first`)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from product_importer.catalog.models import Product
from product_importer.catalog.repository import count_all
from product_importer.catalog.search import catchup


def delete_first(session: Session, rows: int, record: Callable[[int], None] | None = None) -> int:
    """Delete the `rows` lowest-id products, and their search rows; returns how many went.
    `record(highest id)` runs first, to record what is about to go."""
    ids = list(session.scalars(select(Product.id).order_by(Product.id).limit(rows)))
    if not ids:
        return 0
    if record is not None:
        record(ids[-1])
    # Explicitly, by range: cheaper than PostgreSQL's cascade a row.
    key = "rowid" if session.get_bind().dialect.name == "sqlite" else "product_id"
    for sql in (
        f"DELETE FROM product_search WHERE {key} <= :high",  # noqa: S608 (fixed text)
        "DELETE FROM search_fresh WHERE product_id <= :high",
    ):
        session.execute(text(sql), {"high": ids[-1]})
    first = select(Product.id).order_by(Product.id).limit(rows).scalar_subquery()
    result = session.execute(
        delete(Product).where(Product.id.in_(first)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def sqlite_delete_all(session: Session) -> int:
    """Empty `products` and both parts of its search structure in one transaction, in about
    a second.

    SQLite erases a whole table without visiting rows (when it has no triggers); an FTS5
    table would be emptied row by row, so it is dropped and recreated from its stored SQL.
    Readers (WAL) keep seeing the old catalogue until the commit; nothing is half-done.
    """
    count = count_all(session)
    search_sql = session.scalar(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'product_search'")
    )
    # A trigger on a table (list fields keep their elements by triggers) turns SQLite's erase
    # into a row-by-row delete: they are set aside for it, and their table emptied with it.
    triggers = session.execute(
        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'products'")
    ).all()
    connection = session.connection()
    for name, _ in triggers:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    connection.exec_driver_sql("DELETE FROM products")
    for _, sql in triggers:
        connection.exec_driver_sql(sql)
    if triggers:
        connection.exec_driver_sql("DELETE FROM product_list_items")
    connection.exec_driver_sql("DROP TABLE product_search")
    connection.exec_driver_sql(search_sql)
    # Kept in the table, so gone with it.
    connection.exec_driver_sql(catchup.SQLITE_SEARCH_AUTOMERGE)
    connection.exec_driver_sql("DELETE FROM search_fresh")
    return count


def pg_truncate(
    session: Session, lock_timeout_ms: int, record: Callable[[], None] | None = None
) -> int:
    """Count and truncate under an exclusive lock; raises OperationalError if the lock is not
    granted within `lock_timeout_ms` (readers queue behind a waiting TRUNCATE, so keep it short).
    """
    session.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
    if record is not None:
        # Record under a lock that stops writers but not readers (the list stays readable while
        # a million rows are copied); the exclusive lock is then taken only for the TRUNCATE,
        # and no writer can have come in between, so the record is exactly what it removes.
        session.execute(text("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE"))
        record()
    session.execute(text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))
    count = count_all(session)
    session.execute(text("TRUNCATE products, product_search, search_fresh"))
    return count
