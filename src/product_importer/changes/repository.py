"""Set-based SQL over change records: undo, dry-run counts, history, pruning.

Every statement is plain SQL that SQLite and PostgreSQL both run. An undo is a handful of
statements in one transaction, each over all the products the change touched at once, never a
loop over products.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from product_importer.changes.models import ChangeSet, KeptProduct, ProductChange
from product_importer.db import UTCDateTime

_COLUMNS = (
    "change_id, sku_key, product_id, op, before_sku_key, before_sku, before_name, "
    "before_description, before_active, after_sku, after_name, after_description, after_active"
)

# A record `r` of change :cid is kept (not undone) when its product was changed again by a later
# change than :cid (other than the undo :uid itself), or when restoring it would take a SKU
# that is in use again.
_LATER = (
    "SELECT {what} FROM product_changes AS l WHERE l.{key} = r.sku_key "
    "AND l.change_id > :cid AND l.change_id <> :uid"
)
_SKU_TAKEN = (
    "(r.op = 'deleted' AND EXISTS (SELECT 1 FROM products AS p WHERE p.sku_key = r.sku_key)) "
    "OR (r.before_sku_key IS NOT NULL AND "
    "EXISTS (SELECT 1 FROM products AS p WHERE p.sku_key = r.before_sku_key))"
)
KEPT = (
    f"(EXISTS ({_LATER.format(what='1', key='sku_key')}) "
    f"OR EXISTS ({_LATER.format(what='1', key='before_sku_key')}) "
    f"OR {_SKU_TAKEN})"
)
# When no later change has records (undoing the latest change, the usual case), only a SKU
# taken again can keep a product: two index probes per record fewer.
KEPT_WITHOUT_LATER = f"({_SKU_TAKEN})"
_FIRST_LATER = (
    f"coalesce(({_LATER.format(what='min(l.change_id)', key='sku_key')}), "
    f"({_LATER.format(what='min(l.change_id)', key='before_sku_key')}))"
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


def _kept(session: Session, change_id: int, undo_id: int) -> str:
    """The condition under which a record of the change is kept by its undo."""
    later = session.scalar(
        text("SELECT 1 FROM product_changes WHERE change_id > :cid AND change_id <> :uid LIMIT 1"),
        {"cid": change_id, "uid": undo_id},
    )
    return KEPT if later else KEPT_WITHOUT_LATER


def dry_run_counts(session: Session, change_id: int) -> dict[str, int]:
    """{'would_delete', 'would_restore', 'would_keep'} for undoing the change now."""
    rows = session.execute(
        text(
            f"SELECT r.op, CASE WHEN {_kept(session, change_id, 0)} THEN 1 ELSE 0 END AS kept, "
            "count(*) "
            "FROM product_changes AS r WHERE r.change_id = :cid GROUP BY 1, 2"
        ),
        {"cid": change_id, "uid": 0},
    ).all()
    counts = {"would_delete": 0, "would_restore": 0, "would_keep": 0}
    for op, kept, number in rows:
        if kept:
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


def undo_keep(session: Session, change_id: int, undo_id: int) -> int:
    return _run(
        session,
        "INSERT INTO change_kept (change_id, sku_key, sku, by_change_id) "
        f"SELECT :uid, r.sku_key, coalesce(r.after_sku, r.before_sku), {_FIRST_LATER} "
        "FROM product_changes AS r WHERE r.change_id = :cid AND "
        + _kept(session, change_id, undo_id),
        {"cid": change_id, "uid": undo_id},
    )


def undo_record_reversals(session: Session, change_id: int, undo_id: int) -> None:
    """The undo's own records for products the change created (now deleted) or updated (now
    restored), read from the products as they are before the undo touches them."""
    _run(
        session,
        f"INSERT INTO product_changes ({_COLUMNS}) "
        "SELECT :uid, coalesce(r.before_sku_key, r.sku_key), p.id, "
        "CASE WHEN r.op = 'created' THEN 'deleted' ELSE 'updated' END, "
        "CASE WHEN r.before_sku_key IS NOT NULL THEN r.sku_key END, "
        "p.sku, p.name, p.description, p.active, "
        "r.before_sku, r.before_name, r.before_description, r.before_active "
        "FROM product_changes AS r JOIN products AS p ON p.sku_key = r.sku_key "
        f"WHERE r.change_id = :cid AND r.op IN ('created', 'updated') AND {_NOT_KEPT}",
        {"cid": change_id, "uid": undo_id},
    )


def undo_delete_created(session: Session, undo_id: int) -> int:
    ids = "SELECT product_id FROM product_changes WHERE change_id = :uid AND op = 'deleted'"
    if session.get_bind().dialect.name == "sqlite":  # PostgreSQL's search rows cascade
        _run(session, f"DELETE FROM product_search WHERE rowid IN ({ids})", {"uid": undo_id})
    return _run(session, f"DELETE FROM products WHERE id IN ({ids})", {"uid": undo_id})


def undo_restore_updated(session: Session, undo_id: int, now: datetime) -> int:
    return _run(
        session,
        "UPDATE products SET sku = u.after_sku, sku_key = u.sku_key, name = u.after_name, "
        "description = u.after_description, active = u.after_active, updated_at = :now "
        "FROM product_changes AS u WHERE u.change_id = :uid AND u.op = 'updated' "
        "AND products.id = u.product_id",
        {"uid": undo_id, "now": now},
    )


def undo_recreate_deleted(session: Session, change_id: int, undo_id: int, now: datetime) -> int:
    params = {"cid": change_id, "uid": undo_id, "now": now}
    created = _run(
        session,
        "INSERT INTO products (sku, sku_key, name, description, active, created_at, updated_at) "
        "SELECT r.before_sku, r.sku_key, r.before_name, r.before_description, r.before_active, "
        ":now, :now FROM product_changes AS r "
        f"WHERE r.change_id = :cid AND r.op = 'deleted' AND {_NOT_KEPT} ORDER BY r.product_id",
        params,
    )
    if created:
        _run(
            session,
            f"INSERT INTO product_changes ({_COLUMNS}) SELECT :uid, p.sku_key, p.id, 'created', "
            "NULL, NULL, NULL, NULL, NULL, p.sku, p.name, p.description, p.active "
            "FROM product_changes AS r JOIN products AS p ON p.sku_key = r.sku_key "
            f"WHERE r.change_id = :cid AND r.op = 'deleted' AND {_NOT_KEPT}",
            params,
        )
    return created


def op_counts(session: Session, change_id: int) -> dict[str, int]:
    rows = session.execute(
        select(ProductChange.op, func.count())
        .where(ProductChange.change_id == change_id)
        .group_by(ProductChange.op)
    ).all()
    return {op: int(number) for op, number in rows}


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


def history(
    session: Session, keys: dict[str, int | None], offset: int, limit: int
) -> tuple[int, list[Any]]:
    """Records of the given SKU keys (each up to a change id, or all), newest first, with their
    change sets."""
    clauses = [
        (ProductChange.sku_key == key)
        if upto is None
        else ((ProductChange.sku_key == key) & (ProductChange.change_id < upto))
        for key, upto in keys.items()
    ]
    where = or_(*clauses)
    total = session.scalar(select(func.count()).select_from(ProductChange).where(where)) or 0
    rows = session.execute(
        select(ProductChange, ChangeSet)
        .join(ChangeSet, ChangeSet.id == ProductChange.change_id)
        .where(where)
        .order_by(ProductChange.change_id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return int(total), list(rows)


def renamed_from(session: Session, key: str, upto: int | None) -> list[tuple[str, int]]:
    """(old key, change id) for each change that gave the product `key` from another key."""
    statement = select(ProductChange.before_sku_key, ProductChange.change_id).where(
        ProductChange.sku_key == key, ProductChange.before_sku_key.is_not(None)
    )
    if upto is not None:
        statement = statement.where(ProductChange.change_id < upto)
    return [(str(old), int(change)) for old, change in session.execute(statement).all()]


def prune(session: Session, change_id: int) -> None:
    session.execute(delete(ProductChange).where(ProductChange.change_id == change_id))
    session.execute(delete(KeptProduct).where(KeptProduct.change_id == change_id))
    session.execute(update(ChangeSet).where(ChangeSet.id == change_id).values(pruned=True))
