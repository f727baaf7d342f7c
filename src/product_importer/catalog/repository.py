"""Product queries, shaped per database so the search and sort indexes do the work.

Text search conditions come from `catalog.search.matching`, which reads both parts of the search
structure (the index and the fresh set; see `catalog.search`), so every product is found by its
current text whether or not the index has caught up with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    Boolean,
    ColumnElement,
    CompoundSelect,
    Row,
    Select,
    and_,
    case,
    cast,
    column,
    exists,
    func,
    inspect,
    literal,
    literal_column,
    select,
    table,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import UnaryExpression

from product_importer.catalog import field_sql, field_types
from product_importer.catalog.models import CustomField, Product, sku_key
from product_importer.catalog.schemas import FieldFilter, FieldSort, ProductFilters, SortOrder
from product_importer.catalog.search import matching
from product_importer.db import compact_json

_list_items = table("product_list_items", column("field_id"), column("item"), column("product_id"))
# Sorting past every real code point: the upper bound of a prefix range.
_MAX_CHAR = "\U0010ffff"
SAMPLE_WINDOWS = 10
SAMPLE_WINDOW_IDS = 500

IdRange = matching.IdRange


def _sku_order_column(dialect: str, rows: Any = Product) -> Any:
    # Code-point order on both databases (SQLite's BINARY collation is code-point order for
    # UTF-8), which also makes a prefix a contiguous key range.
    return rows.sku_key.collate("C") if dialect == "postgresql" else rows.sku_key


def _field_value(dialect: str, key: str, kind: str, rows: Any = Product) -> ColumnElement[Any]:
    """A field's typed value, spelled exactly as its expression index is (`field_sql`)."""
    name = inspect(rows).selectable.name
    return literal_column(field_sql.value_sql(dialect, key, kind, name))


def order_by(dialect: str, sort: SortOrder, rows: Any = Product) -> list[UnaryExpression[Any]]:
    """The sort's ORDER BY, on `Product` or on an alias of it."""
    if isinstance(sort, FieldSort):
        # Products without the value last in both directions (PostgreSQL puts NULLs first
        # when descending, SQLite first when ascending, unless told).
        value = _field_value(dialect, sort.key, sort.kind, rows)
        if sort.descending:
            return [value.desc().nulls_last(), rows.id.desc()]
        return [value.asc().nulls_last(), rows.id.asc()]
    descending = sort.value.startswith("-")
    field = sort.value.lstrip("-")
    columns: list[Any]
    if field == "sku":
        columns = [_sku_order_column(dialect, rows)]
    elif field == "name":
        columns = [rows.name, rows.id]
    elif field == "updated_at":
        columns = [rows.updated_at, rows.id]
    else:  # created_at: ids are handed out in creation order, and id is already indexed
        columns = [rows.id]
    return [col.desc() if descending else col.asc() for col in columns]


def _terms(value: str | None) -> list[str]:
    return value.split() if value else []


def conditions(
    dialect: str,
    filters: ProductFilters,
    id_range: IdRange | None = None,
    *,
    scan: bool = False,
    joined_search: bool = False,
) -> list[ColumnElement[bool]]:
    """WHERE clauses for the filters.

    `id_range` also narrows the full-text lookup (sampling). `scan` tests the text filters row
    by row, in a form no search index serves: for a term matching many rows, walking the sort
    index until a page is full is far cheaper than collecting every match and sorting them.
    `joined_search` (PostgreSQL) tests the search document of a `product_search` row the
    caller has joined, rather than looking the matches up.
    """
    where: list[ColumnElement[bool]] = []
    if filters.active is not None:
        where.append(Product.active == filters.active)
    if filters.sku and filters.sku.strip():
        raw = filters.sku.strip()
        key_column = _sku_order_column(dialect)
        if raw.endswith("*"):
            prefix = sku_key(raw.rstrip("*"))
            if prefix:
                where.append(and_(key_column >= prefix, key_column < prefix + _MAX_CHAR))
        else:
            where.append(Product.sku_key == sku_key(raw))
    # (column or None for "any of sku, name, description", term)
    searches: list[matching.Search] = []
    if filters.name and filters.name.strip():
        searches.append(("name", filters.name.strip()))
    if filters.description and filters.description.strip():
        searches.append(("description", filters.description.strip()))
    searches.extend((None, word) for word in _terms(filters.q))
    where.extend(_field_condition(dialect, item, scan=scan) for item in filters.fields)
    if scan:
        where.extend(matching.column_like(dialect, field, term) for field, term in searches)
    elif dialect == "sqlite":
        where.extend(matching.sqlite_conditions(searches, id_range))
    else:
        where.extend(matching.pg_conditions(searches, id_range, joined=joined_search))
    return where


def _parameter(dialect: str, kind: str, value: Any) -> Any:
    """A stored value as the parameter its typed expression compares with: a decimal is
    exact on PostgreSQL (numeric) and REAL on SQLite (see `field_sql.value_sql`)."""
    if kind == "decimal":
        return Decimal(value) if dialect == "postgresql" else float(value)
    return value


def _has_item(dialect: str, key: str, item: str) -> ColumnElement[bool]:
    """The list field `key` contains `item`, tested row by row: PostgreSQL's GIN index serves
    the test; on SQLite each row is looked up in the list's elements table
    (`field_sql.LIST_ITEMS_TABLE`) by its primary key."""
    if not field_types.KEY_PATTERN.match(key):
        raise ValueError(f"not a field key: {key!r}")
    if dialect == "postgresql":
        items = literal_column(f"(products.fields -> '{key}')", JSONB)
        wanted = cast(literal(compact_json([item])), JSONB)
        return items.op("@>", is_comparison=True, return_type=Boolean)(wanted)
    field_id = select(CustomField.id).where(CustomField.key == key).scalar_subquery()
    return exists(
        select(literal(1)).where(
            _list_items.c.field_id == field_id,
            _list_items.c.item == item,
            _list_items.c.product_id == Product.id,
        )
    )


def _sqlite_has_items(key: str, items: list[str]) -> ColumnElement[bool]:
    """SQLite, gathering the matches: the products of the first element, each looked up under
    the others by primary key (at a million products, two tags of 51,000 products each: 22 ms,
    against 87 ms reading both as sets and 1 s reading every product's JSON)."""
    field_id = select(CustomField.id).where(CustomField.key == key).scalar_subquery()
    first = aliased(_list_items)
    query = select(first.c.product_id).where(first.c.field_id == field_id, first.c.item == items[0])
    for element in items[1:]:
        other = aliased(_list_items)
        query = query.join(
            other,
            and_(
                other.c.field_id == first.c.field_id,
                other.c.item == element,
                other.c.product_id == first.c.product_id,
            ),
        )
    return Product.id.in_(query)


def _field_condition(dialect: str, item: FieldFilter, *, scan: bool = False) -> ColumnElement[bool]:
    """One field filter, on the expression the field's index is built on wherever an index
    can serve it (equality, ranges, set or not); `contains` reads every candidate's text.
    `scan` keeps SQLite off the field's index (a unary `+` changes no value), so that it walks
    the sort order testing rows; PostgreSQL is steered by `page_of_products` instead."""
    value = _field_value(dialect, item.key, item.kind)
    if scan and dialect == "sqlite":
        value = literal_column("+" + field_sql.value_sql(dialect, item.key, item.kind))
    if item.op == "set":
        return value.is_not(None) if item.value else value.is_(None)
    if item.kind == "list":
        if dialect == "sqlite" and not scan:
            return _sqlite_has_items(item.key, list(item.value))
        return and_(*(_has_item(dialect, item.key, element) for element in item.value))
    raw: ColumnElement[str] = literal_column(field_sql.raw_sql(dialect, item.key))
    if item.op == "contains":
        return func.lower(raw).like(func.lower(matching.like_pattern(item.value)), escape="\\")
    if item.kind in field_sql.TEXT_LIKE:
        # The index holds the first characters, lower-cased; the whole text is rechecked.
        prefix = func.lower(func.substr(item.value, 1, field_sql.TEXT_PREFIX))
        return and_(value == prefix, func.lower(raw) == func.lower(item.value))
    parameter = literal(_parameter(dialect, item.kind, item.value))
    if item.op == "gt":
        return value > parameter
    if item.op == "gte":
        return value >= parameter
    if item.op == "lt":
        return value < parameter
    if item.op == "lte":
        return value <= parameter
    return value == parameter


def _texts(filters: ProductFilters) -> list[str]:
    return [value for value in (filters.name, filters.description, filters.q) if value]


def scannable(dialect: str, filters: ProductFilters) -> bool:
    """Whether testing rows one by one gives the same answer as the indexes: for a field
    filter always, for text on SQLite only for ASCII terms (its LIKE folds ASCII letters only,
    the trigram index all of Unicode)."""
    texts = _texts(filters)
    if not texts and not filters.fields:
        return False
    return dialect == "postgresql" or all(value.isascii() for value in texts)


def page_of_products(
    session: Session,
    dialect: str,
    filters: ProductFilters,
    sort: SortOrder,
    offset: int,
    limit: int,
    *,
    scan: bool = False,
    within: ColumnElement[bool] | None = None,
) -> list[Product]:
    """One page, found on the narrow sort index first and then fetched (a "deferred join"),
    so a deep page skips index entries rather than whole rows. `within` bounds a walk."""
    where = conditions(dialect, filters, scan=scan) + ([within] if within is not None else [])
    ordering = order_by(dialect, sort)
    # PostgreSQL, descending by a field: the valued products, then the others (see below).
    split = sort if isinstance(sort, FieldSort) and sort.descending else None
    if dialect != "postgresql":
        split = None
    ids = select(Product.id).where(*where).order_by(*ordering).offset(offset).limit(limit)
    if scan and dialect == "postgresql":
        # We know many rows match, the planner does not (it guesses substring selectivity):
        # make it walk the sort index for the ids instead of reading every match and sorting.
        # Only for these join-free queries; a failing query aborts the transaction and with
        # it the SET LOCAL.
        session.execute(text("SET LOCAL enable_sort = off"))
        if split is not None:
            found = _valued_first(session, where, split, offset, limit)
        else:
            found = list(session.scalars(ids))
        session.execute(text("SET LOCAL enable_sort = on"))
        return page_among(session, dialect, found, sort, 0, limit)
    if split is not None:
        found = _valued_first(session, where, split, offset, limit)
        return page_among(session, dialect, found, sort, 0, limit)
    listed = ids.subquery()
    statement = select(Product).join(listed, Product.id == listed.c.id).order_by(*ordering)
    return list(session.scalars(statement))


def _valued_first(
    session: Session, where: list[ColumnElement[bool]], sort: FieldSort, offset: int, limit: int
) -> list[int]:
    """Ids of a page sorted by a field, descending, on PostgreSQL: the products with a value
    from the field's index read backwards, then those without one. A b-tree read backwards
    gives NULLs first, so `DESC NULLS LAST` in one statement sorted every match (450 ms in a
    million products; each part here reads only the index entries it shows)."""
    value = _field_value("postgresql", sort.key, sort.kind)
    valued = list(
        session.scalars(
            select(Product.id)
            .where(*where, value.is_not(None))
            .order_by(value.desc(), Product.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )
    if len(valued) == limit:
        return valued
    if valued or offset == 0:
        before = offset + len(valued)  # every product with a value is on this page or before
    else:  # a page past them all: how many come before the first without a value
        counted = select(func.count()).select_from(Product).where(*where, value.is_not(None))
        before = int(session.scalar(counted) or 0)
    without = (
        select(Product.id)
        .where(*where, value.is_(None))
        .order_by(Product.id.desc())
        .offset(max(0, offset - before))
        .limit(limit - len(valued))
    )
    return valued + list(session.scalars(without))


def ids_up_to(session: Session, dialect: str, filters: ProductFilters, limit: int) -> list[int]:
    """Ids of the matches, but no more than `limit + 1` of them: an exact count when there
    are few."""
    return list(session.scalars(_matching_ids(dialect, filters).limit(limit + 1)))


def _matching_ids(dialect: str, filters: ProductFilters) -> Select[Any] | CompoundSelect[Any]:
    if dialect == "postgresql" and _free_text_only(filters):
        # The ids come from the search rows alone, without a lookup in `products` each.
        return matching.pg_matching_ids([(None, term) for term in _terms(filters.q)])
    return select(Product.id).where(*conditions(dialect, filters))


def page_of_matches(
    session: Session,
    dialect: str,
    filters: ProductFilters,
    sort: SortOrder,
    offset: int,
    limit: int,
    most: int,
) -> tuple[list[Product], int]:
    """One page of the matches, and how many match, in one statement: up to `most + 1`
    matches are found through the search index, fetched by primary key and sorted. A count of
    `most + 1` means there are more, and the page is then not theirs to show."""
    matching = _matching_ids(dialect, filters).limit(most + 1)
    # The OFFSET 0 fence keeps the planner from walking the whole sort index testing each row
    # against the matches (53 ms for 1,600 matches in a million products on PostgreSQL).
    listed: Any = aliased(
        Product, select(Product).where(Product.id.in_(matching)).offset(0).subquery("listed")
    )
    statement = (
        select(listed, func.count().over())
        .order_by(*order_by(dialect, sort, listed))
        .offset(offset)
        .limit(limit)
    )
    rows = session.execute(statement).all()
    if rows:
        return [product for product, _ in rows], int(rows[0][1])
    # A page past the end carries no count.
    matched = 0 if offset == 0 else len(ids_up_to(session, dialect, filters, most))
    return [], matched


def _free_text_only(filters: ProductFilters) -> bool:
    return (
        bool(_terms(filters.q))
        and not any(
            value and value.strip() for value in (filters.sku, filters.name, filters.description)
        )
        and filters.active is None
        and not filters.fields
    )


def page_among(
    session: Session, dialect: str, ids: list[int], sort: SortOrder, offset: int, limit: int
) -> list[Product]:
    statement = (
        select(Product)
        .where(Product.id.in_(ids))
        .order_by(*order_by(dialect, sort))
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(statement))


def count_all(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Product)) or 0)


def estimate_matches(session: Session, dialect: str, filters: ProductFilters) -> int:
    return sample(session, dialect, filters).matches


class Sample(NamedTuple):
    """What evenly spread windows of ids say about the filters' matches."""

    matches: int  # estimated for the whole catalogue
    products: int  # estimated
    windows: int
    windows_hit: int  # windows with at least one match


def sample(session: Session, dialect: str, filters: ProductFilters) -> Sample:
    """Estimate the matches and the catalogue's size from evenly spread windows of ids.

    The filters are evaluated in the select list, so each window costs a short primary-key
    range scan whatever the filters are (on SQLite, testing the text in the row when that gives
    the same answer, which is cheaper than consulting the search index per window). One
    statement for all windows: one round trip.
    """
    scan = scannable(dialect, filters)
    # PostgreSQL tests a text filter on the lowercased search document of each sampled row, a
    # third of the cost of testing the product's columns in any letter case.
    joined_search = scan and dialect == "postgresql" and bool(_texts(filters))
    # Two queries: SQLite answers a lone min() or max() from the index, but not both at once.
    low: int | None = session.scalar(select(func.min(Product.id)))
    high: int | None = session.scalar(select(func.max(Product.id)))
    if low is None or high is None:
        return Sample(0, 0, 0, 0)
    span = high - low + 1
    width = max(1, min(SAMPLE_WINDOW_IDS, math.ceil(span / SAMPLE_WINDOWS)))
    windows = min(SAMPLE_WINDOWS, math.ceil(span / width))
    parts = []
    # The same test in every window, unless it looks text matches up in the search index, by
    # the window's id range.
    shared = None
    if scan or not _texts(filters):
        shared = conditions(
            dialect, filters, scan=scan and not joined_search, joined_search=joined_search
        )
    for index in range(windows):
        start = low + (span - width) * index // max(1, windows - 1)
        id_range = (start, start + width - 1)
        clauses = shared if shared is not None else conditions(dialect, filters, id_range)
        hit = and_(*clauses) if clauses else true()
        part = select(func.count(), func.coalesce(func.sum(case((hit, 1), else_=0)), 0)).where(
            Product.id.between(*id_range)
        )
        if joined_search:
            part = part.select_from(matching.pg_joined_rows(id_range))
        parts.append(part)
    counts = session.execute(union_all(*parts)).all()
    sampled = sum(int(rows) for rows, _ in counts)
    matched = sum(int(hits) for _, hits in counts)
    if sampled == 0:
        return Sample(0, 0, windows, 0)
    # Rows per id in the sample, times the id span: the catalogue's size without counting it.
    catalogue = sampled / (windows * width) * span
    return Sample(
        matches=round(catalogue * matched / sampled),
        products=round(catalogue),
        windows=windows,
        windows_hit=sum(1 for _, hits in counts if hits),
    )


# A sample showing at least this many times the exact-count limit is not counted exactly.
CLEARLY_MANY = 4


def clearly_more_than(found: Sample, limit: int) -> bool:
    """Whether the sample leaves no doubt that more than `limit` rows match, so counting them
    up to the limit (which reads every match's index entries) can be skipped. It needs an
    estimate of at least four times the limit (with `limit` matches spread evenly, a sample of
    5,000 ids from a million expects 5 hits; 20 is a one-in-a-million chance), and matches in
    at least half of the windows, so a cluster of matching ids that falls in one or two
    windows cannot pass for many."""
    return found.matches >= CLEARLY_MANY * limit and 2 * found.windows_hit >= found.windows


def walk_is_cheaper(matches: int, products: int, rows_wanted: int) -> bool:
    """Whether walking the sort order and testing rows finds the first `rows_wanted` matches
    more cheaply than gathering every match and sorting them: the walk tests about
    rows_wanted * products / matches rows, the other way handles `matches` rows, at a similar
    cost a row. (A two-word search matching 0.2% of a million products walked 31,000 rows for
    a page, 330 ms; its 1,600 matches sort in a few.)"""
    return matches > 0 and rows_wanted * products <= matches * matches


def find_by_sku_key(session: Session, key: str) -> Product | None:
    return session.scalar(select(Product).where(Product.sku_key == key))


def field_keys(connection: Connection) -> list[str]:
    """The defined fields' keys, in the order they were created (the export's columns)."""
    return list(connection.scalars(select(CustomField.key).order_by(CustomField.id)))


def export_rows(
    connection: Connection, filters: ProductFilters, batch_rows: int
) -> Iterator[Sequence[Row[str, str, str, bool, dict[str, Any]]]]:
    """Matching rows in id order, in batches, from a server-side cursor (constant memory)."""
    dialect = connection.dialect.name
    statement = (
        select(Product.name, Product.sku, Product.description, Product.active, Product.fields)
        .where(*conditions(dialect, filters))
        .order_by(Product.id)
    )
    result = connection.execution_options(stream_results=True, yield_per=batch_rows).execute(
        statement
    )
    yield from result.partitions()
