"""Search conditions: the products whose current text holds every term.

A match comes from one of two places, never both for one product: the index, for the products
not in the fresh set (an indexed product that is in the fresh set may have changed since), or
the fresh set, whose documents are tested row by row. While the fresh set is empty its part
costs one probe of an empty table.

Terms shorter than three characters have no trigram: they are tested on the product's columns
(still correct, just slower). A column filter (name, description) is tested in the index on its
column (SQLite) or on the document, and rechecked on its column.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    FromClause,
    LargeBinary,
    and_,
    cast,
    column,
    exists,
    func,
    or_,
    select,
    table,
    union_all,
)

from product_importer.catalog.models import Product
from product_importer.db import fold_text

MIN_TRIGRAM = 3
IdRange = tuple[int, int]
# (column, or None for "any of sku, name, description"; term)
Search = tuple[str | None, str]

_fts = table("product_search", column("rowid"), column("product_search"))
_pg_index = table("product_search", column("product_id"), column("document"))
_fresh = table("search_fresh", column("product_id"), column("document"))


def like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def column_like(dialect: str, field: str | None, term: str, rows: Any = Product) -> Any:
    """The term in a column, row by row, folded as the search structure folds it (letter case
    and accents: "senor" finds "Señor"), so a recheck or a scan agrees with the index."""
    pattern = like_pattern(term)
    fields = [field] if field else ["sku", "name", "description"]
    if dialect == "sqlite":
        folded_pattern = fold_text(pattern)
        return or_(*(_sqlite_folded_like(getattr(rows, name), folded_pattern) for name in fields))
    clauses = [
        _pg_folded(getattr(rows, name)).like(_pg_folded(pattern), escape="\\") for name in fields
    ]
    return or_(*clauses)


def _sqlite_folded_like(value: Any, folded_pattern: str | None) -> ColumnElement[bool]:
    """`pi_fold(value) LIKE pattern`, calling pi_fold (Python, which takes the interpreter's
    lock for each row: under load, searches queued on it) only where it can change the answer.
    SQLite's LIKE already ignores the case of ASCII letters, so an ASCII value matches folded
    exactly when it matches as it is, and a value holding the folded term as it is matches
    folded too. The other values, those with a non-ASCII character (more bytes than
    characters), are folded."""
    return or_(
        value.like(folded_pattern, escape="\\"),
        and_(
            func.length(cast(value, LargeBinary)) != func.length(value),
            func.pi_fold(value).like(folded_pattern, escape="\\"),
        ),
    )


def _pg_folded(value: Any) -> ColumnElement[str]:
    # A term is folded with the very function that folded the documents.
    return func.lower(func.unaccent(value))


def _between(id_column: Any, id_range: IdRange | None) -> list[ColumnElement[bool]]:
    return [] if id_range is None else [id_column.between(*id_range)]


def _not_fresh(id_column: Any) -> ColumnElement[bool]:
    return ~exists().where(_fresh.c.product_id == id_column)


def sqlite_conditions(searches: list[Search], id_range: IdRange | None) -> list[Any]:
    where: list[Any] = []
    phrases: list[str] = []
    fresh_tests: list[Any] = []
    rechecks: list[Any] = []
    for field, term in searches:
        if len(term) < MIN_TRIGRAM:
            where.append(column_like("sqlite", field, term))
            continue
        # Both parts hold the text folded (pi_fold): the term is folded the same way.
        folded = fold_text(term) or ""
        phrase = _fts_phrase(folded)
        phrases.append(f"{field} : {phrase}" if field else phrase)
        fresh_tests.append(func.instr(_fresh.c.document, folded) > 0)
        if field:
            rechecks.append(column_like("sqlite", field, term))
    if phrases:
        indexed = select(_fts.c.rowid).where(
            _fts.c.product_search.match(" AND ".join(phrases)),
            *_between(_fts.c.rowid, id_range),
            _not_fresh(_fts.c.rowid),
        )
        fresh = select(_fresh.c.product_id).where(
            *fresh_tests, *_between(_fresh.c.product_id, id_range)
        )
        # A fresh match of a column's term is rechecked on its column. On the outer rows, not
        # in the fresh part: joined there, SQLite scanned every product (490 ms against 180).
        # An index match passes the recheck anyway, and there are few matches to test.
        where[0:0] = [Product.id.in_(union_all(indexed, fresh)), *rechecks]
    return where


def _pg_tests(document: Any, searches: list[Search]) -> list[ColumnElement[bool]]:
    # The trigram index covers the combined text; a column's term is rechecked on its column.
    # One index instead of three keeps indexing cheaper.
    return [document.like(_pg_folded(like_pattern(term)), escape="\\") for _, term in searches]


def _pg_column_rechecks(searches: list[Search]) -> list[Any]:
    return [column_like("postgresql", field, term) for field, term in searches if field]


def pg_matching_ids(searches: list[Search], id_range: IdRange | None = None) -> CompoundSelect[Any]:
    """The ids whose document holds every term, from both parts, without a lookup in
    `products` for each match (every search row belongs to a product: the keys cascade)."""
    indexed = select(_pg_index.c.product_id).where(
        *_pg_tests(_pg_index.c.document, searches),
        *_between(_pg_index.c.product_id, id_range),
        _not_fresh(_pg_index.c.product_id),
    )
    fresh = select(_fresh.c.product_id).where(
        *_pg_tests(_fresh.c.document, searches), *_between(_fresh.c.product_id, id_range)
    )
    return union_all(indexed, fresh)


def pg_conditions(searches: list[Search], id_range: IdRange | None, *, joined: bool) -> list[Any]:
    """`joined`: test the documents of the search rows the caller joined (`pg_joined_rows`)
    rather than look the matches up."""
    if not searches:
        return []
    if joined:
        document = func.coalesce(_fresh.c.document, _pg_index.c.document)
        # The cheap document tests first: AND stops at a miss.
        return [*_pg_tests(document, searches), *_pg_column_rechecks(searches)]
    return [Product.id.in_(pg_matching_ids(searches, id_range)), *_pg_column_rechecks(searches)]


def pg_joined_rows(id_range: IdRange) -> FromClause:
    """Products in `id_range` with their search rows (index and fresh) beside them, for
    `pg_conditions(joined=True)`."""
    products = Product.__table__
    indexed = and_(_pg_index.c.product_id == Product.id, _pg_index.c.product_id.between(*id_range))
    fresh = and_(_fresh.c.product_id == Product.id, _fresh.c.product_id.between(*id_range))
    return products.outerjoin(_pg_index, indexed).outerjoin(_fresh, fresh)
