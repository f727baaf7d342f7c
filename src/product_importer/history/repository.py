"""Set-based SQL over change records: undo, dry-run counts, history, pruning.

Every statement is plain SQL that SQLite and PostgreSQL both run. An undo is a handful of
statements in one transaction, each over all the products the change touched at once, never a
loop over products.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from product_importer.db import UTCDateTime
from product_importer.history import record_tables
from product_importer.history.models import ChangeSet, KeptProduct, ProductChange
from product_importer.history.record_tables import RECORD_COLUMNS, SHARED, RecordTarget

_SKU_TAKEN = (
    "(r.op = 'deleted' AND EXISTS (SELECT 1 FROM products AS p WHERE p.sku_key = r.sku_key)) "
    "OR (r.before_sku_key IS NOT NULL AND "
    "EXISTS (SELECT 1 FROM products AS p WHERE p.sku_key = r.before_sku_key))"
)
_NOT_KEPT = (
    "NOT EXISTS (SELECT 1 FROM change_kept AS k WHERE k.change_id = :uid AND k.sku_key = r.sku_key)"
)


def _run(session: Session, sql: str, params: dict[str, Any]) -> int:
    statement = text(sql)
    if ":now" in sql:
        statement = statement.bindparams(bindparam("now", type_=UTCDateTime()))
    result = session.execute(statement, params)
    return int(getattr(result, "rowcount", 0) or 0)


def own_tables(session: Session) -> dict[int, str]:
    """{change id: table} of the changes whose records have a table of their own."""
    if session.get_bind().dialect.name != "postgresql":
        return {}  # SQLite keeps every record in the shared table
    names = session.execute(text(record_tables.LIST_STATEMENT)).all()
    return record_tables.own_tables_from(names)


def target_of(session: Session, change_id: int) -> RecordTarget:
    """Where the records of an existing change are."""
    return RecordTarget(change_id, own=change_id in own_tables(session))


def open_records(session: Session, change_id: int, expected_rows: int) -> RecordTarget:
    """Where a new change is to write its records; creates its own table when it gets one."""
    dialect = session.get_bind().dialect.name
    target = record_tables.target_for(dialect, change_id, expected_rows)
    for statement in record_tables.create_statements(target):
        session.execute(text(statement))
    return target


def close_records(session: Session, target: RecordTarget) -> None:
    """Index an own table once its records are in (before the change commits)."""
    for statement in record_tables.index_statements(target):
        session.execute(text(statement))


@dataclass(frozen=True)
class _Later:
    """Records of changes after the one being undone (other than the undo itself), read as `l`:
    FROM item, condition appended to a key match, and the change id of a row."""

    source: str
    condition: str
    change_id: str


def _later(session: Session, change_id: int, undo_id: int) -> list[_Later]:
    """Where later records can be: only the tables that hold any, so undoing the latest change
    (the usual case) probes nothing per record."""
    later = []
    shared = session.scalar(
        text(f"SELECT 1 FROM {SHARED} WHERE change_id > :cid AND change_id <> :uid LIMIT 1"),
        {"cid": change_id, "uid": undo_id},
    )
    if shared:
        condition = " AND l.change_id > :cid AND l.change_id <> :uid"
        later.append(_Later(f"{SHARED} AS l", condition, "l.change_id"))
    for cid, table in own_tables(session).items():
        if cid > change_id and cid != undo_id:
            later.append(_Later(f"{table} AS l", "", str(cid)))
    return later


def _kept(later: list[_Later]) -> str:
    """The condition under which a record `r` of the change is kept by its undo: its product
    was changed again by a later change, or restoring it would take a SKU in use again."""
    probes = [
        f"EXISTS (SELECT 1 FROM {each.source} WHERE l.{key} = r.sku_key{each.condition})"
        for each in later
        for key in ("sku_key", "before_sku_key")
    ]
    return "(" + " OR ".join([*probes, _SKU_TAKEN]) + ")"


def _first_later(later: list[_Later]) -> str:
    """The first later change of a kept record's product (null when its SKU was taken)."""
    arms = [
        f"SELECT min({each.change_id}) AS c FROM {each.source} "
        f"WHERE l.{key} = r.sku_key{each.condition}"
        for each in later
        for key in ("sku_key", "before_sku_key")
    ]
    if not arms:
        return "NULL"
    return f"(SELECT min(c) FROM ({' UNION ALL '.join(arms)}) AS later)"


def dry_run_counts(session: Session, change_id: int) -> dict[str, int]:
    """{'would_delete', 'would_restore', 'would_keep'} for undoing the change now."""
    source, where = target_of(session, change_id).source()
    kept = _kept(_later(session, change_id, 0))
    rows = session.execute(
        text(
            f"SELECT r.op, CASE WHEN {kept} THEN 1 ELSE 0 END AS kept, count(*) "
            f"FROM {source} WHERE {where} GROUP BY 1, 2"
        ),
        {"cid": change_id, "uid": 0},
    ).all()
    counts = {"would_delete": 0, "would_restore": 0, "would_keep": 0}
    for op, kept_flag, number in rows:
        if kept_flag:
            counts["would_keep"] += number
        elif op == "created":
            counts["would_delete"] += number
        else:
            counts["would_restore"] += number
    return counts


def lock_products(session: Session) -> None:
    """PostgreSQL: no other writer of products until the commit (readers carry on). SQLite:
    take the database's write lock now, with a first write."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE"))


def undo_keep(session: Session, change: RecordTarget, undo_id: int) -> int:
    source, where = change.source()
    later = _later(session, change.change_id, undo_id)
    return _run(
        session,
        "INSERT INTO change_kept (change_id, sku_key, sku, by_change_id) "
        f"SELECT :uid, r.sku_key, coalesce(r.after_sku, r.before_sku), {_first_later(later)} "
        f"FROM {source} WHERE {where} AND {_kept(later)}",
        {"cid": change.change_id, "uid": undo_id},
    )


def undo_record_reversals(session: Session, change: RecordTarget, undo: RecordTarget) -> None:
    """The undo's own records for products the change created (now deleted) or updated (now
    restored), read from the products as they are before the undo touches them. Their after
    values are the values to restore, complete: a field an update recorded as unchanged (null)
    is the product's current value, since no later change touched it (or it is kept)."""
    source, where = change.source()
    _run(
        session,
        f"{undo.insert()}coalesce(r.before_sku_key, r.sku_key), p.id, "
        "CASE WHEN r.op = 'created' THEN 'deleted' ELSE 'updated' END, "
        "CASE WHEN r.before_sku_key IS NOT NULL THEN r.sku_key END, "
        "p.sku, p.name, p.description, p.active, r.before_sku, "
        "CASE WHEN r.op = 'updated' THEN coalesce(r.before_name, p.name) END, "
        "CASE WHEN r.op = 'updated' THEN coalesce(r.before_description, p.description) END, "
        "r.before_active, p.fields, "
        "CASE WHEN r.op = 'updated' THEN coalesce(r.before_fields, p.fields) END "
        f"FROM {source} JOIN products AS p ON p.sku_key = r.sku_key "
        f"WHERE {where} AND r.op IN ('created', 'updated') AND {_NOT_KEPT}",
        {"uid": undo.change_id},
    )


def undo_delete_created(session: Session, undo: RecordTarget) -> int:
    source, where = undo.source()
    ids = f"SELECT r.product_id FROM {source} WHERE {where} AND r.op = 'deleted'"
    if session.get_bind().dialect.name == "sqlite":  # PostgreSQL's search rows cascade
        # As catalog.search.writing.sqlite_forget does (history sits below the catalogue).
        _run(session, f"DELETE FROM product_search WHERE rowid IN ({ids})", {})
        _run(session, f"DELETE FROM search_fresh WHERE product_id IN ({ids})", {})
    return _run(session, f"DELETE FROM products WHERE id IN ({ids})", {})


def undo_restore_updated(session: Session, undo: RecordTarget, now: datetime) -> int:
    source, where = undo.source("u")
    restored = 0
    # The SKU key is set only where the change gave the product another key: setting it to
    # the same value would still rewrite every product's entry in the unique key index.
    for key_changed, set_key in ((False, ""), (True, "sku_key = u.sku_key, ")):
        restored += _run(
            session,
            f"UPDATE products SET sku = u.after_sku, {set_key}name = u.after_name, "
            "description = u.after_description, active = u.after_active, "
            "fields = u.after_fields, updated_at = :now "
            f"FROM {source} WHERE {where} AND u.op = 'updated' AND products.id = u.product_id "
            f"AND u.before_sku_key IS {'NOT ' if key_changed else ''}NULL",
            {"now": now},
        )
    return restored


def undo_recreate_deleted(
    session: Session, change: RecordTarget, undo: RecordTarget, now: datetime
) -> int:
    source, where = change.source()
    params = {"uid": undo.change_id, "now": now}
    created = _run(
        session,
        "INSERT INTO products (sku, sku_key, name, description, active, fields, created_at, "
        "updated_at) SELECT r.before_sku, r.sku_key, r.before_name, r.before_description, "
        f"r.before_active, coalesce(r.before_fields, '{{}}'), :now, :now FROM {source} "
        f"WHERE {where} AND r.op = 'deleted' AND {_NOT_KEPT} ORDER BY r.product_id",
        params,
    )
    if created:
        _run(
            session,
            f"{undo.insert()}p.sku_key, p.id, 'created', NULL, NULL, NULL, NULL, NULL, p.sku, "
            f"p.name, p.description, p.active, NULL, p.fields FROM {source} "
            f"JOIN products AS p ON p.sku_key = r.sku_key "
            f"WHERE {where} AND r.op = 'deleted' AND {_NOT_KEPT}",
            params,
        )
    return created


def op_counts(session: Session, change_id: int) -> dict[str, int]:
    source, where = target_of(session, change_id).source()
    rows = session.execute(text(f"SELECT r.op, count(*) FROM {source} WHERE {where} GROUP BY 1"))
    return {str(op): int(number) for op, number in rows.all()}


def kept_rows(session: Session, undo_id: int, after_key: str, limit: int) -> list[Any]:
    """Kept products of an undo, by SKU key, with the kind and time of the change that
    changed them again."""
    later = ChangeSet.__table__.alias("later")
    return list(
        session.execute(
            select(
                KeptProduct.sku_key,
                KeptProduct.sku,
                KeptProduct.by_change_id,
                later.c.kind,
                later.c.actor,
                later.c.created_at,
            )
            .outerjoin(later, later.c.id == KeptProduct.by_change_id)
            .where(KeptProduct.change_id == undo_id, KeptProduct.sku_key > after_key)
            .order_by(KeptProduct.sku_key)
            .limit(limit)
        ).all()
    )


def _records_of_keys(
    session: Session, keys: dict[str, int | None], columns: str, extra: str = ""
) -> tuple[str, dict[str, Any]]:
    """UNION ALL over the shared and the own tables: records of the given SKU keys (each up to
    a change id, or all), with `change_id` and `columns`."""
    params: dict[str, Any] = {}
    shared_terms, names = [], []
    for number, (key, upto) in enumerate(keys.items()):
        params[f"k{number}"] = key
        names.append((f"k{number}", upto))
        if upto is None:
            shared_terms.append(f"sku_key = :k{number}")
        else:
            params[f"u{number}"] = upto
            shared_terms.append(f"(sku_key = :k{number} AND change_id < :u{number})")
    arms = [f"SELECT change_id, {columns} FROM {SHARED} WHERE ({' OR '.join(shared_terms)}){extra}"]
    for cid, table in own_tables(session).items():
        terms = [f"sku_key = :{name}" for name, upto in names if upto is None or cid < upto]
        if terms:
            arms.append(
                f"SELECT {cid} AS change_id, {columns} FROM {table} "
                f"WHERE ({' OR '.join(terms)}){extra}"
            )
    return " UNION ALL ".join(arms), params


def history(
    session: Session, keys: dict[str, int | None], offset: int, limit: int
) -> tuple[int, list[tuple[Any, ChangeSet]]]:
    """Records of the given SKU keys (each up to a change id, or all), newest first, with their
    change sets."""
    records, params = _records_of_keys(session, keys, RECORD_COLUMNS)
    total = session.scalar(text(f"SELECT count(*) FROM ({records}) AS h"), params) or 0
    rows = session.execute(
        text(
            f"SELECT * FROM ({records}) AS h ORDER BY change_id DESC "
            f"LIMIT {int(limit)} OFFSET {int(offset)}"
        ),
        params,
    ).all()
    ids = {row.change_id for row in rows}
    changes = {
        change.id: change
        for change in session.scalars(select(ChangeSet).where(ChangeSet.id.in_(ids)))
    }
    return int(total), [(row, changes[row.change_id]) for row in rows]


def renamed_from(session: Session, key: str, upto: int | None) -> list[tuple[str, int]]:
    """(old key, change id) for each change that gave the product `key` from another key."""
    records, params = _records_of_keys(
        session, {key: upto}, "before_sku_key", " AND before_sku_key IS NOT NULL"
    )
    return [(str(old), int(change)) for change, old in session.execute(text(records), params).all()]


def prune(session: Session, change_id: int) -> None:
    session.execute(delete(ProductChange).where(ProductChange.change_id == change_id))
    session.execute(text(record_tables.drop_statement(change_id)))
    session.execute(delete(KeptProduct).where(KeptProduct.change_id == change_id))
    session.execute(update(ChangeSet).where(ChangeSet.id == change_id).values(pruned=True))
