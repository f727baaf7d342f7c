"""The folded text search compares: lowercased, accents removed ("senor" finds "Señor").

PostgreSQL folds with `lower(unaccent(...))`; SQLite with `pi_fold()` (db.fold_text), which
every connection registers. A search term is folded the same way. Folding once when written
makes each test a case-sensitive substring test: a third of the cost of ILIKE.
"""

PG_FOLD = "lower(unaccent({}))"
# One document a product: its SKU, name and description, space-separated. A search term has
# no spaces, so it cannot match across two columns; a column filter is rechecked on its column.
PG_DOCUMENT = PG_FOLD.format("sku || ' ' || name || ' ' || description")


def sqlite_document(rows: str = "") -> str:
    """SQLite's folded document of the product columns of `rows` (an alias and a dot, or none)."""
    return f"pi_fold({rows}sku || ' ' || {rows}name || ' ' || {rows}description)"


SQLITE_DOCUMENT = sqlite_document()
# SQLite's index keeps the columns apart (an FTS5 column filter reads one of them).
SQLITE_FOLDED_COLUMNS = "id, pi_fold(sku), pi_fold(name), pi_fold(description)"
