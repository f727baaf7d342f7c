"""What writers call: put a written product in the fresh set, in the writer's transaction.

Nothing here writes the index itself (that is `catchup`'s), so a write costs one small row and
the product is findable by its new text, and no longer by its old one, as soon as the writer
commits. A removed product leaves both parts: on PostgreSQL by the foreign keys' cascade, on
SQLite by the statements of `sqlite_forget` (a foreign key there would make emptying the
catalogue visit every row).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from product_importer.catalog.search.documents import (
    PG_DOCUMENT,
    SQLITE_DOCUMENT,
    sqlite_document,
)
from product_importer.db import UTCDateTime

_PG_UPSERT_FRESH = "ON CONFLICT (product_id) DO UPDATE SET document = excluded.document"


def note_product(session: Session, product_id: int) -> None:
    """Put one (flushed) product in the fresh set with its current text."""
    _note(session, "id = :id", {"id": product_id})


def _note(session: Session, where: str, params: dict[str, object]) -> None:
    """Put the products `where` (fixed SQL over `products`) selects in the fresh set."""
    if session.get_bind().dialect.name == "sqlite":
        sql = (
            "INSERT OR REPLACE INTO search_fresh (product_id, document) "  # noqa: S608
            f"SELECT id, {SQLITE_DOCUMENT} FROM products WHERE {where}"
        )
    else:
        sql = (
            "INSERT INTO search_fresh (product_id, document) "  # noqa: S608 (fixed text)
            f"SELECT id, {PG_DOCUMENT} FROM products WHERE {where} {_PG_UPSERT_FRESH}"
        )
    statement = text(sql)
    if "stamp" in params:
        statement = statement.bindparams(bindparam("stamp", type_=UTCDateTime()))
    session.execute(statement, params)


def forget_product(session: Session, product_id: int) -> None:
    """Before a product is removed: drop its search rows (SQLite; PostgreSQL's cascade)."""
    if session.get_bind().dialect.name == "sqlite":
        for sql in sqlite_forget(":id"):
            session.execute(text(sql), {"id": product_id})


def sqlite_forget(ids: str) -> tuple[str, str]:
    """Statements that drop the search rows of the products `ids` (SQL giving their ids, or one
    parameter) names, before they are removed. The index is keyed by product id: a row left
    behind would be found for the next product SQLite gives that id."""
    return (
        f"DELETE FROM product_search WHERE rowid IN ({ids})",  # noqa: S608 (fixed text)
        f"DELETE FROM search_fresh WHERE product_id IN ({ids})",  # noqa: S608
    )


# An import's merge, batch by batch. PostgreSQL: a part of the batch's statement, reading `r`,
# the upserts' RETURNING rows.
PG_NOTE_MERGED = (
    "noted AS (INSERT INTO search_fresh (product_id, document) "  # noqa: S608 (fixed text)
    f"SELECT id, {PG_DOCUMENT} FROM r {_PG_UPSERT_FRESH})"
)


def sqlite_note_merged(where: str) -> str:
    """After a merge batch: the products it wrote, stamped with the merge's `updated_at` (the
    first parameter). `where` is the batch's key range on `s`, whose positional parameters
    follow: read here on `products` itself, through its SKU key index (`+` keeps SQLite off the
    `updated_at` index, which would visit every product the merge has written so far, batch
    after batch). OR REPLACE: an updated product may be in the fresh set already."""
    # `where` is SQL text the merger builds from fixed fragments; values are parameters.
    return (
        "INSERT OR REPLACE INTO search_fresh (product_id, document) "  # noqa: S608
        f"SELECT s.id, {sqlite_document('s.')} FROM products AS s "
        f"WHERE +s.updated_at = ? AND {where}"
    )


def note_stamped(session: Session, stamp: datetime) -> None:
    """Put the products last written at `stamp` in the fresh set: an undo's restored products,
    which all carry its time, found through the `updated_at` index. Cheap enough for any size
    of undo (the index write it used to do cost a random index visit a product)."""
    _note(session, "updated_at = :stamp", {"stamp": stamp})
