"""Change sets: recording single edits, listing, history, and undo.

Nothing here commits: the request or task that opened the session does. Bulk changes record
themselves set-based through `history.recording` (imports, delete-all) or `changes.bulk`.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from product_importer.catalog import custom_fields
from product_importer.catalog.models import Product
from product_importer.catalog.search import writing
from product_importer.changes import words
from product_importer.changes.schemas import (
    ChangePage,
    ChangeSetRead,
    FieldChange,
    HistoryEntry,
    HistoryPage,
    UndoDryRun,
)
from product_importer.db import utcnow
from product_importer.history import repository
from product_importer.history.models import ChangeSet
from product_importer.history.service import FIELDS, open_change
from product_importer.tasks import dispatch
from product_importer.webhooks import events

RUN_TASK = "changes.run"
ACTIVE = ("queued", "running")
MAX_RENAMES_FOLLOWED = 10


class ChangeNotFound(Exception):
    def __init__(self, change_id: int) -> None:
        super().__init__(f"No change with id {change_id}.")


class NotUndoable(Exception):
    """The change cannot be undone; the message says why."""


class RemovesEverything(Exception):
    """The change would delete every product, which only an admin may do (as with delete-all)."""

    def __init__(self, total: int) -> None:
        super().__init__(
            f"This would delete every product in the catalogue ({total:,}), which needs the "
            "admin role."
        )
        self.total = total


# A background job (an undo, a large bulk action) may delete every product only if whoever
# asked for it could: kept under this key in its `request` (JSON) until the job runs.
MAY_REMOVE_ALL = "may_remove_all"


def covers_everything(session: Session, count: int) -> bool:
    """Whether `count` products are every product there is (at least one). Reads at most
    count + 1 rows, so a small selection in a large catalogue costs little."""
    if count <= 0:
        return False
    some = select(Product.id).limit(count + 1).subquery()
    return int(session.scalar(select(func.count()).select_from(some)) or 0) <= count


# Percent of the undos and bulk jobs running in this process: a SQLite undo holds the write
# lock for its whole transaction, so its row cannot be updated until it commits.
_live_lock = threading.Lock()
_live: dict[tuple[str, int], float] = {}


def set_live_percent(key: tuple[str, int], percent: float | None) -> None:
    with _live_lock:
        if percent is None:
            _live.pop(key, None)
        else:
            _live[key] = percent


def live_percent(key: tuple[str, int]) -> float | None:
    with _live_lock:
        return _live.get(key)


# --- reading --------------------------------------------------------------------------------


def get(session: Session, change_id: int) -> ChangeSet:
    change = session.get(ChangeSet, change_id)
    if change is None:
        raise ChangeNotFound(change_id)
    return change


def _undo_of(session: Session, change: ChangeSet) -> ChangeSet | None:
    return session.scalar(
        select(ChangeSet)
        .where(ChangeSet.undoes_id == change.id, ChangeSet.status.in_(ACTIVE))
        .limit(1)
    )


def undo_refusal(
    session: Session, change: ChangeSet, retention_days: float, now: datetime | None = None
) -> str | None:
    """Why the change cannot be undone now, or None if it can."""
    now = now or utcnow()
    if change.status != "completed":
        return f"Change {change.id} is {change.status}; only a completed change can be undone."
    if change.undone_by_id is not None:
        undo = session.get(ChangeSet, change.undone_by_id)
        by = f"“{words.title(undo, change)}”" if undo is not None else "another change"
        return f"“{words.title(change)}” was already undone by {by}."
    if change.pruned or change.created_at < now - timedelta(days=retention_days):
        return (
            f"Change {change.id} is older than the {retention_days:g}-day retention period; "
            "its records are gone and it can no longer be undone."
        )
    running = _undo_of(session, change)
    if running is not None:
        return f"Change {change.id} is being undone by change {running.id} ({running.status})."
    return None


def read(
    session: Session, change: ChangeSet, retention_days: float, live_key: tuple[str, int]
) -> ChangeSetRead:
    reason = undo_refusal(session, change, retention_days)
    until = None if change.pruned else change.created_at + timedelta(days=retention_days)
    percent = change.percent
    if change.status == "running":
        percent = max(percent, live_percent(live_key) or 0.0)
    undone = session.get(ChangeSet, change.undoes_id) if change.undoes_id else None
    undone_by = session.get(ChangeSet, change.undone_by_id) if change.undone_by_id else None
    return ChangeSetRead(
        id=change.id,
        kind=change.kind,
        title=words.title(change, undone),
        status=change.status,
        actor=change.actor,
        summary=change.summary,
        percent=round(percent, 1),
        created=change.created,
        updated=change.updated,
        deleted=change.deleted,
        restored=change.restored,
        kept=change.kept,
        error=change.error,
        import_job_id=change.import_job_id,
        delete_job_id=change.delete_job_id,
        undoes_id=change.undoes_id,
        undone_by_id=change.undone_by_id,
        undone_by_title=words.title(undone_by, change) if undone_by is not None else None,
        undoable=reason is None,
        undoable_until=until,
        not_undoable_reason=reason,
        created_at=change.created_at,
        started_at=change.started_at,
        finished_at=change.finished_at,
    )


def list_page(
    session: Session,
    kind: str | None,
    page: int,
    page_size: int,
    retention_days: float,
    live_key: Any,
    actor: str | None = None,
) -> ChangePage:
    where = [ChangeSet.kind == kind] if kind else []
    if actor:
        where.append(ChangeSet.actor == actor)
    total = session.scalar(select(func.count()).select_from(ChangeSet).where(*where)) or 0
    rows = session.scalars(
        select(ChangeSet)
        .where(*where)
        .order_by(ChangeSet.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    items = [read(session, row, retention_days, live_key(row.id)) for row in rows]
    return ChangePage(items=items, total=total, page=page, page_size=page_size)


def actors(session: Session, limit: int = 200) -> list[str]:
    """Who made changes, most recent first: the Changes page's choice of person."""
    latest = func.max(ChangeSet.id)
    return list(
        session.scalars(
            select(ChangeSet.actor)
            .where(ChangeSet.actor != "")
            .group_by(ChangeSet.actor)
            .order_by(latest.desc())
            .limit(limit)
        )
    )


# --- undo -----------------------------------------------------------------------------------


def undo_removes_everything(session: Session, change: ChangeSet) -> int:
    """How many products undoing the change now would delete, if that is every product (else
    0): the undo of a delete-all's undo (or of a catalogue-wide bulk delete's), however many
    undos deep, or of an import that created the whole catalogue. Judged by what the undo would
    do, so no chain of undos hides one; `run_undo` checks again in its own transaction."""
    # An undo deletes only products its change created: an import's or an edit's new products,
    # or those an undo re-created (counted in its `restored`).
    if not covers_everything(session, change.created + change.restored):
        return 0
    counts = repository.dry_run_counts(session, change.id)
    removes = counts["would_delete"]
    return removes if counts["would_restore"] == 0 and covers_everything(session, removes) else 0


def dry_run(session: Session, change_id: int, retention_days: float) -> UndoDryRun:
    change = get(session, change_id)
    reason = undo_refusal(session, change, retention_days)
    if reason is not None:
        raise NotUndoable(reason)
    return UndoDryRun(change_id=change.id, **repository.dry_run_counts(session, change.id))


def start_undo(
    session: Session,
    change_id: int,
    actor: str,
    retention_days: float,
    *,
    may_remove_all: bool = False,
) -> ChangeSet:
    """Queue the undo of a change; it runs as a background job (`changes.run`). Unless
    `may_remove_all`, the job fails (changing nothing) if it would delete every product."""
    change = get(session, change_id)
    reason = undo_refusal(session, change, retention_days)
    if reason is not None:
        raise NotUndoable(reason)
    undo = open_change(
        session,
        "undo",
        actor,
        f"Undo of change {change.id}: {change.summary}",
        status="queued",
        undoes_id=change.id,
        request=json.dumps({MAY_REMOVE_ALL: may_remove_all}),
    )
    dispatch.enqueue(session, RUN_TASK, change_id=undo.id)
    return undo


def run_undo(session: Session, undo: ChangeSet, progress: Any) -> None:
    """Undo `undo.undoes_id` in the caller's transaction: all of it, or (on any error) none."""
    assert undo.undoes_id is not None
    change = get(session, undo.undoes_id)
    if change.undone_by_id is not None:
        raise NotUndoable(f"Change {change.id} was already undone by change {change.undone_by_id}.")
    now = utcnow()
    repository.lock_products(session)
    if change.kind == custom_fields.REMOVE_KIND:
        try:
            custom_fields.restore_definition(session, change)
        except custom_fields.FieldConflict as exc:
            raise NotUndoable(str(exc)) from None
    progress(5.0)
    # The undo's records: at most one per record of the change.
    records = repository.open_records(
        session, undo.id, change.created + change.updated + change.deleted + change.restored
    )
    undone = repository.target_of(session, change.id)
    kept = repository.undo_keep(session, undone, undo.id)
    progress(20.0)
    repository.undo_record_reversals(session, undone, records)
    progress(40.0)
    deleted = repository.undo_delete_created(session, records)
    progress(55.0)
    restored = repository.undo_restore_updated(session, records, now)
    progress(70.0)
    restored += repository.undo_recreate_deleted(session, undone, records, now)
    may_remove_all = bool(json.loads(undo.request or "{}").get(MAY_REMOVE_ALL))
    if deleted and not may_remove_all and not session.scalar(select(Product.id).limit(1)):
        raise RemovesEverything(deleted)  # the caller rolls the whole undo back
    progress(90.0)
    repository.close_records(session, records)
    progress(95.0)
    if restored:
        # Findable by their restored text the moment the undo completes, whatever its size.
        writing.note_stamped(session, now)
    session.execute(
        sa.update(ChangeSet)
        .where(ChangeSet.id == undo.id)
        .values(
            status="completed",
            percent=100.0,
            deleted=deleted,
            restored=restored,
            kept=kept,
            finished_at=utcnow(),
            heartbeat_at=utcnow(),
        )
    )
    session.execute(
        sa.update(ChangeSet).where(ChangeSet.id == change.id).values(undone_by_id=undo.id)
    )
    counts = {"deleted": deleted, "restored": restored, "kept": kept}
    base = {"change_id": undo.id, "undoes_change_id": change.id, **counts}
    if change.kind == "import":
        events.record(session, "import.reverted", {"import_id": change.import_job_id, **base})
    elif change.kind == "delete_all":
        events.record(session, "products.restored", {"delete_job_id": change.delete_job_id, **base})
    else:
        events.record(session, "products.bulk_changed", {"action": "undo", **base})


def kept_csv_rows(session: Session, undo_id: int, after_key: str, limit: int) -> list[list[str]]:
    rows = []
    for _key, sku, by_change, kind, actor, at in repository.kept_rows(
        session, undo_id, after_key, limit
    ):
        if by_change is None:
            reason = "its SKU is used by another product now"
        else:
            when = at.isoformat(timespec="seconds") if at else ""
            reason = f"changed again since, by change {by_change} ({kind}, {actor}, {when})"
        rows.append([_key, sku, reason])
    return rows


# --- background jobs (undo, large bulk actions) ----------------------------------------------


def claim(session: Session, change_id: int) -> bool:
    now = utcnow()
    result = session.execute(
        sa.update(ChangeSet)
        .where(ChangeSet.id == change_id, ChangeSet.status == "queued")
        .values(status="running", attempts=ChangeSet.attempts + 1, started_at=now, heartbeat_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def fail(session: Session, change_id: int, reason: str) -> None:
    session.execute(
        sa.update(ChangeSet)
        .where(ChangeSet.id == change_id, ChangeSet.status.in_(ACTIVE))
        .values(status="failed", error=reason, finished_at=utcnow(), heartbeat_at=utcnow())
    )


def touch(session: Session, change_id: int) -> None:
    session.execute(
        sa.update(ChangeSet).where(ChangeSet.id == change_id).values(heartbeat_at=utcnow())
    )


def status_of(session: Session, change_id: int) -> str | None:
    return session.scalar(select(ChangeSet.status).where(ChangeSet.id == change_id))


def stale_jobs(session: Session, stale_before: datetime) -> list[ChangeSet]:
    return list(
        session.scalars(
            select(ChangeSet)
            .where(ChangeSet.status.in_(ACTIVE), ChangeSet.heartbeat_at < stale_before)
            .order_by(ChangeSet.id)
        )
    )


def requeue(session: Session, change: ChangeSet) -> None:
    change.status = "queued"
    change.percent = 0.0
    change.heartbeat_at = utcnow()
    dispatch.enqueue(session, RUN_TASK, change_id=change.id)


def expired(session: Session, retention_days: float, limit: int) -> list[int]:
    cutoff = utcnow() - timedelta(days=retention_days)
    return list(
        session.scalars(
            select(ChangeSet.id)
            .where(
                ChangeSet.created_at < cutoff,
                ChangeSet.pruned.is_(False),
                ChangeSet.status.not_in(ACTIVE),
            )
            .order_by(ChangeSet.id)
            .limit(limit)
        )
    )


# --- history --------------------------------------------------------------------------------


def _who(session: Session, change: ChangeSet) -> str:
    """Who, and for anything but a single edit, which change in words ("alice (Import of
    shopify.csv: 2 created)")."""
    actor = change.actor or "someone"
    if change.kind == "edit":
        return actor
    undone = session.get(ChangeSet, change.undoes_id) if change.undoes_id else None
    return f"{actor} ({words.title(change, undone)})"


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _as_object(value: Any) -> dict[str, Any] | None:
    # Raw SQL hands SQLite's JSON back as text, PostgreSQL's jsonb as a dict.
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else None
    return value if isinstance(value, dict) else None


def _field_changes(record: Any) -> list[FieldChange]:
    """One entry per custom field the record changed, named `fields.<key>`."""
    old = _as_object(record.before_fields)
    new = _as_object(record.after_fields)
    if record.op == "updated" and new is None:
        return []  # the update left the fields alone
    old, new = old or {}, new or {}
    return [
        FieldChange(field=f"fields.{key}", old=old.get(key), new=new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _entry(session: Session, record: Any, change: ChangeSet) -> HistoryEntry:
    changes = []
    for name in FIELDS:
        old = getattr(record, f"before_{name}")
        new = getattr(record, f"after_{name}")
        if record.op == "updated" and new is None:
            new = old  # an update records only the after values that differ
        if name == "active":  # SQLite hands booleans back as 0 and 1
            old, new = _flag(old), _flag(new)
        if old != new:
            changes.append(FieldChange(field=name, old=old, new=new))
    changes.extend(_field_changes(record))
    return HistoryEntry(
        change_id=change.id,
        at=change.created_at,
        kind=change.kind,
        who=_who(session, change),
        action=record.op,
        product_id=record.product_id,
        sku=record.after_sku or record.before_sku or "",
        changes=changes,
    )


def history(session: Session, key: str, page: int, page_size: int) -> HistoryPage:
    """Every recorded change of the product with this SKU key, newest first, following SKU
    edits back to the keys it had before (each up to the edit that left it)."""
    try:
        return _history(session, key, page, page_size)
    except sa.exc.ProgrammingError as exc:
        # Retention dropped a change's records table between listing the tables and reading
        # them (PostgreSQL: undefined_table). Read again: the list no longer names it.
        if getattr(exc.orig, "sqlstate", None) != "42P01":
            raise
        session.rollback()
        return _history(session, key, page, page_size)


def _history(session: Session, key: str, page: int, page_size: int) -> HistoryPage:
    keys: dict[str, int | None] = {key: None}
    frontier = [(key, None)]
    while frontier and len(keys) < MAX_RENAMES_FOLLOWED:
        current, upto = frontier.pop()
        for old, change_id in repository.renamed_from(session, current, upto):
            if old not in keys:
                keys[old] = change_id
                frontier.append((old, change_id))  # type: ignore[arg-type]
    total, rows = repository.history(session, keys, (page - 1) * page_size, page_size)
    return HistoryPage(
        items=[_entry(session, record, change) for record, change in rows],
        total=total,
        page=page,
        page_size=page_size,
    )


def product_key(session: Session, product_id: int) -> str | None:
    return session.scalar(select(Product.sku_key).where(Product.id == product_id))
