"""How far a search may walk the sort order before it gathers its matches instead.

For a term many products match, the list walks the sort order testing rows until a page is
full (`repository.walk_is_cheaper`), expecting the matches spread along the order. They need not
be: "classic" sorted by name descending meets the products named "Classic ..." only after every
name after C, and walked 400,000 of 485,000 rows (6-30 s on SQLite) for its first page. So the
walk is kept to a few times the rows it expects to test; a page it cannot fill within them is
found by gathering every match and sorting them instead.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.orm import Session

from product_importer.catalog.repository import order_by
from product_importer.catalog.schemas import FieldSort, SortOrder

# The walk may test this many times the rows it expects to, plus this many.
SLACK = 4
MARGIN_ROWS = 2_000


def budget(matches: int, products: int, rows_wanted: int) -> int:
    """Rows a walk may test to find `rows_wanted` matches among `matches` of `products`."""
    expected = rows_wanted * products // max(matches, 1)
    return SLACK * expected + MARGIN_ROWS


def bound(session: Session, dialect: str, sort: SortOrder, rows: int) -> ColumnElement[bool] | None:
    """A condition that keeps a walk to the first `rows` rows of the sort order, read on the
    sort index alone; None when the order has no more rows than that. A custom field's order
    (NULLs last, a split read on PostgreSQL) is not bounded."""
    if isinstance(sort, FieldSort):
        return None
    ordering = order_by(dialect, sort)
    columns = [term.element for term in ordering]
    last = session.execute(select(*columns).order_by(*ordering).offset(rows - 1).limit(1)).first()
    if last is None:
        return None
    walked, edge = tuple_(*columns), tuple_(*last)
    return walked >= edge if sort.value.startswith("-") else walked <= edge
