"""A custom field's value in SQL, per database and type, and the index that serves it.

Every field gets an expression index on `products` when it is created, so an equality or range
filter, or a sort, on any field reads an index rather than every product's JSON. A query must
use the very expression the index was built on for the planner to take it: `value_sql` is the
one place that spells it. Keys match `field_types.KEY_PATTERN` (lower-case letters, digits and
underscores), so they are written into the SQL as they are; values are always parameters.
"""

from __future__ import annotations

from product_importer.catalog.field_types import KEY_PATTERN

# Texts are compared and sorted by their lower-cased first 200 characters (a PostgreSQL
# b-tree entry must stay under ~2,700 bytes); equality rechecks the whole text.
TEXT_PREFIX = 200
TEXT_LIKE = ("text", "url", "choice")


def _checked(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise ValueError(f"not a field key: {key!r}")
    return key


def raw_sql(dialect: str, key: str, table: str | None = "products") -> str:
    """The value as text (lists as their JSON text), NULL when the product has none. The
    column is qualified by `table` (an index expression may not be: `table=None`); both
    databases match a qualified query expression to the unqualified index expression."""
    key = _checked(key)
    column = f"{table}.fields" if table else "fields"
    if dialect == "postgresql":
        return f"({column} ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def value_sql(dialect: str, key: str, kind: str, table: str | None = "products") -> str:
    """The value, typed so that SQL compares and sorts it as the field's type does."""
    raw = raw_sql(dialect, key, table)
    if kind in TEXT_LIKE or kind == "list":
        return f"lower(substr({raw}, 1, {TEXT_PREFIX}))"
    if dialect == "postgresql":
        if kind == "integer":
            return f"({raw}::bigint)"
        if kind == "decimal":
            return f"({raw}::numeric)"
        if kind == "boolean":
            return f"({raw}::boolean)"
        return raw  # date: ISO text, whose order is the dates' order
    if kind == "decimal":
        # SQLite has no exact decimal type: REAL orders and compares prices correctly up to
        # 15 significant digits; the stored value itself stays the exact text.
        return f"CAST({raw} AS REAL)"
    return raw  # integer and boolean are JSON numbers/booleans (1/0), date is ISO text


def index_name(field_id: int) -> str:
    return f"ix_products_field_{int(field_id)}"


def index_statements(dialect: str, field_id: int, key: str, kind: str) -> list[str]:
    """CREATE INDEX for a new field (or a field whose type changed)."""
    name = index_name(field_id)
    value = value_sql(dialect, key, kind, table=None)
    # Sorts are by (value, id). SQLite's index ends with the rowid (the id) anyway; PostgreSQL's
    # needs the id, or a field with many equal values (a boolean, a choice) sorts every tie.
    then_id = ", id" if dialect == "postgresql" else ""
    statements = [f"CREATE INDEX {name} ON products (({value}){then_id})"]
    if kind == "list" and dialect == "postgresql":
        # "contains this element": fields->'tags' @> '["summer"]'
        statements.append(
            f"CREATE INDEX {name}_items ON products USING gin "
            f"((fields -> '{_checked(key)}') jsonb_path_ops)"
        )
    if kind == "list" and dialect == "sqlite":
        statements.extend(_sqlite_list_items(field_id, key))
    return statements


# SQLite has no index of JSON array elements: a list field's elements are kept in a table of
# their own, one row per (field, element, product), by triggers on products, so that "has this
# tag" reads a few index pages instead of every product's JSON. Triggers keep it right whatever
# writes products (an import's merge, an edit, a bulk action, an undo).
LIST_ITEMS_TABLE = (
    "CREATE TABLE IF NOT EXISTS product_list_items (field_id INTEGER NOT NULL, "
    "item TEXT NOT NULL, product_id INTEGER NOT NULL, "
    "PRIMARY KEY (field_id, item, product_id)) WITHOUT ROWID"
)


def _sqlite_list_items(field_id: int, key: str) -> list[str]:
    fid, name = int(field_id), index_name(field_id)
    path = f"'$.{_checked(key)}'"

    def add(row: str) -> str:
        return (
            f"INSERT OR IGNORE INTO product_list_items (field_id, item, product_id) "
            f"SELECT {fid}, value, {row}.id FROM json_each({row}.fields, {path}) "
            f"WHERE type = 'text'"
        )

    # The old row's elements are exactly what the table holds for it, so they are removed by
    # primary key rather than by searching the table for the product.
    remove = (
        f"DELETE FROM product_list_items WHERE field_id = {fid} AND product_id = OLD.id "
        f"AND item IN (SELECT value FROM json_each(OLD.fields, {path}))"
    )
    value = f"json_extract({{row}}.fields, {path})"
    return [
        LIST_ITEMS_TABLE,
        f"CREATE TRIGGER {name}_items_insert AFTER INSERT ON products "
        f"WHEN {value.format(row='NEW')} IS NOT NULL BEGIN {add('NEW')}; END",
        f"CREATE TRIGGER {name}_items_update AFTER UPDATE OF fields ON products "
        f"WHEN {value.format(row='OLD')} IS NOT {value.format(row='NEW')} "
        f"BEGIN {remove}; {add('NEW')}; END",
        f"CREATE TRIGGER {name}_items_delete AFTER DELETE ON products "
        f"WHEN {value.format(row='OLD')} IS NOT NULL BEGIN {remove}; END",
        # The elements of the values products hold already (a new field has none; a field
        # changed to a list type has them all).
        f"INSERT OR IGNORE INTO product_list_items (field_id, item, product_id) "
        f"SELECT {fid}, j.value, p.id FROM products AS p, json_each(p.fields, {path}) AS j "
        f"WHERE {value.format(row='p')} IS NOT NULL AND j.type = 'text'",
    ]


def drop_statements(dialect: str, field_id: int) -> list[str]:
    name = index_name(field_id)
    statements = [f"DROP INDEX IF EXISTS {name}", f"DROP INDEX IF EXISTS {name}_items"]
    if dialect == "sqlite":
        statements += [
            f"DROP TRIGGER IF EXISTS {name}_items_{event}"
            for event in ("insert", "update", "delete")
        ]
        statements.append(f"DELETE FROM product_list_items WHERE field_id = {int(field_id)}")
    return statements


def remove_key_sql(dialect: str, key: str) -> str:
    """The products' fields without this key."""
    key = _checked(key)
    if dialect == "postgresql":
        return f"(fields - '{key}')"
    return f"json_remove(fields, '$.{key}')"


def has_key_sql(dialect: str, key: str) -> str:
    return f"{raw_sql(dialect, key, table=None)} IS NOT NULL"
