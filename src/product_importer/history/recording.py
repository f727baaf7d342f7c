"""SQL that records a bulk change inside the change's own transaction, per database.

The import's merge and the delete-all run on raw driver connections with hand-written,
set-based SQL; they call these helpers so the recording stays next to the change-set tables.
Statements use `:named` parameters (SQLite's own style; the PostgreSQL merger rewrites them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from product_importer.history.record_tables import RECORD_COLUMNS, RecordTarget

# For the bench only: PRODUCT_IMPORTER_BENCH_RECORD_HISTORY=0 measures an import without its
# change records (the cost of keeping history). Never set in production: nothing could be
# undone and no history would be shown.
ENABLED = os.environ.get("PRODUCT_IMPORTER_BENCH_RECORD_HISTORY", "1") != "0"

# Imports and delete-alls never change a product's SKU key, so they leave before_sku_key out.
_COLUMNS = RECORD_COLUMNS.replace("before_sku_key, ", "")


@dataclass(frozen=True)
class ChangeRequest:
    """What a bulk change says about itself when its change set is opened."""

    kind: str
    actor: str
    summary: str
    import_job_id: int | None = None
    delete_job_id: int | None = None


def _stamp(dialect: str, now: datetime) -> Any:
    # As SQLAlchemy's UTCDateTime stores it on SQLite, so comparisons and reads agree.
    return now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else now


def open_statement(
    dialect: str, request: ChangeRequest, now: datetime
) -> tuple[str, dict[str, Any]]:
    """INSERT ... RETURNING id of a completed change set (its counts are set at the end)."""
    return (
        "INSERT INTO change_sets (kind, status, actor, summary, import_job_id, delete_job_id, "
        "created, updated, deleted, restored, kept, percent, attempts, pruned, created_at, "
        "started_at, finished_at) VALUES (:kind, 'completed', :actor, :summary, :import_job_id, "
        ":delete_job_id, 0, 0, 0, 0, 0, 100, 1, :pruned, :now, :now, :now) RETURNING id",
        {
            "kind": request.kind,
            "actor": request.actor[:200],
            "summary": request.summary[:300],
            "import_job_id": request.import_job_id,
            "delete_job_id": request.delete_job_id,
            "pruned": False,
            "now": _stamp(dialect, now),
        },
    )


def counts_statement(
    change_id: int, created: int = 0, updated: int = 0, deleted: int = 0
) -> tuple[str, dict[str, Any]]:
    return (
        "UPDATE change_sets SET created = :created, updated = :updated, deleted = :deleted "
        "WHERE id = :change_id",
        {"change_id": change_id, "created": created, "updated": updated, "deleted": deleted},
    )


# --- the import's merge, SQLite -----------------------------------------------------------

# An update records `sku` and `active` before, and name and description before and after only
# when they differ (null means unchanged): most imports change a field or two, and a record
# without the two long texts is a fraction of the size. Undo reads an unchanged field from the
# product itself, which no later change touched (or the product is kept).


def sqlite_record_updates(
    target: RecordTarget, where: str, has_active: bool, has_fields: bool = False
) -> str:
    """Before a merge batch's UPDATE: the products it is about to change, before and after.
    `where` is the batch's key range on `s`; positional parameters are the range's."""
    after_active = (
        "CASE WHEN s.active IS NOT NULL AND p.active <> s.active THEN s.active END"
        if has_active
        else "NULL"
    )
    active_diff = " OR (s.active IS NOT NULL AND p.active <> s.active)" if has_active else ""
    fields_diff = f" OR {SQLITE_FIELDS_CHANGED.format(p='p')}" if has_fields else ""
    fields = (
        f"CASE WHEN {SQLITE_FIELDS_CHANGED.format(p='p')} THEN p.fields END, "
        f"CASE WHEN {SQLITE_FIELDS_CHANGED.format(p='p')} THEN json_patch(p.fields, s.fields) END"
        if has_fields
        else "NULL, NULL"
    )
    return (
        f"{target.insert(_COLUMNS)}p.sku_key, p.id, 'updated', p.sku, "
        "CASE WHEN p.name <> s.name THEN p.name END, "
        "CASE WHEN p.description <> s.description THEN p.description END, "
        "p.active, CASE WHEN p.sku <> s.sku THEN s.sku END, "
        "CASE WHEN p.name <> s.name THEN s.name END, "
        f"CASE WHEN p.description <> s.description THEN s.description END, {after_active}, "
        f"{fields} "
        f"FROM temp.import_last AS s JOIN products AS p ON p.sku_key = s.sku_key WHERE {where} "
        f"AND (p.sku <> s.sku OR p.name <> s.name OR p.description <> s.description"
        f"{active_diff}{fields_diff})"
    )


# The staged row `s` changes the product's fields (a JSON merge patch that is not a no-op).
# Stored fields are compact JSON, as json_patch writes it, so text comparison is equality.
SQLITE_FIELDS_CHANGED = "(s.fields IS NOT NULL AND json_patch({p}.fields, s.fields) <> {p}.fields)"


def sqlite_record_created(target: RecordTarget) -> str:
    """After a merge batch's INSERT: new rows have ids above the highest id before it (SQLite
    hands out max(id) + 1). Parameter: the highest id before the batch."""
    return (
        f"{target.insert(_COLUMNS)}sku_key, id, 'created', NULL, NULL, NULL, NULL, sku, name, "
        "description, active, NULL, fields FROM products WHERE id > ?"
    )


# --- the import's merge, PostgreSQL -------------------------------------------------------

# The products the batch will touch as they are before it: every sub-statement of one WITH
# sees the same snapshot, so this reads the old values even though the upserts run beside it.
# The bounds let the merge join start its walk of the key index at the batch's first key;
# without them every batch walked the index from its start (0.3-0.4 s per 50,000-row batch of
# a 500,000-row catalogue, most of what recording cost). They hold in any collation.
PG_OLD_ROWS = (
    "old AS MATERIALIZED (SELECT p.id, p.sku, p.name, p.description, p.active, p.fields "
    "FROM products AS p JOIN last AS l ON p.sku_key = l.sku_key "
    "WHERE p.sku_key >= (SELECT min(sku_key) FROM last) "
    "AND p.sku_key <= (SELECT max(sku_key) FROM last))"
)
PG_RETURNING = ", p.id, p.sku_key, p.sku, p.name, p.description, p.active, p.fields"


def pg_record(target: RecordTarget) -> str:
    return (
        f"w AS ({target.insert(_COLUMNS)}r.sku_key, r.id, "
        "CASE WHEN r.created THEN 'created' ELSE 'updated' END, o.sku, "
        "CASE WHEN o.name IS DISTINCT FROM r.name THEN o.name END, "
        "CASE WHEN o.description IS DISTINCT FROM r.description THEN o.description END, "
        "o.active, CASE WHEN o.sku IS DISTINCT FROM r.sku THEN r.sku END, "
        "CASE WHEN o.name IS DISTINCT FROM r.name THEN r.name END, "
        "CASE WHEN o.description IS DISTINCT FROM r.description THEN r.description END, "
        "CASE WHEN o.active IS DISTINCT FROM r.active THEN r.active END, "
        "CASE WHEN NOT r.created AND o.fields IS DISTINCT FROM r.fields THEN o.fields END, "
        "CASE WHEN r.created THEN jsonb_strip_nulls(r.fields) "
        "WHEN o.fields IS DISTINCT FROM r.fields THEN r.fields END "
        "FROM r LEFT JOIN old AS o ON o.id = r.id)"
    )


# --- delete all ---------------------------------------------------------------------------


def record_deleted_statement(
    dialect: str, target: RecordTarget, up_to_id: int | None = None
) -> tuple[str, dict[str, Any]]:
    """Every product (or those with id <= up_to_id) as it is before being deleted."""
    where = "" if up_to_id is None else " WHERE id <= :up_to_id"
    # SQLite, into the shared table: reading in key order (the unique index) makes the
    # records' key index appends instead of a million random b-tree inserts. A table of its
    # own is indexed afterwards, so it is filled in the cheaper order of the rows.
    order = " ORDER BY sku_key" if dialect == "sqlite" and not target.own else ""
    return (
        f"{target.insert(_COLUMNS)}sku_key, id, 'deleted', sku, name, description, active, "
        f"NULL, NULL, NULL, NULL, fields, NULL FROM products{where}{order}",
        {"up_to_id": up_to_id},
    )
