"""Bulk actions on selected products: activate, deactivate, delete or set custom fields, by
ids or by filter.

The selection is resolved in SQL (never loaded into Python), recorded set-based in
the change's records and applied from those records, in one transaction with its change set. A
filter comes with the total the user saw: if it now matches another number, nothing happens.
A delete that would remove every product needs the admin role, like delete-all: what it would
remove is compared with the catalogue under the lock, in the delete's own transaction.

`set_fields` merges its values into each product's `fields` in SQL, as an import does: a
JSON merge patch whose nulls unset (`json_patch` on SQLite, `jsonb_strip_nulls(fields ||
patch)` on PostgreSQL). Only products it changes are recorded, with their whole fields before
and after, so the undo puts back exactly what was there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, cast, func, insert, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from product_importer.catalog import custom_fields, field_filters
from product_importer.catalog import repository as catalog_repository
from product_importer.catalog.models import Product
from product_importer.catalog.schemas import ProductFilters
from product_importer.changes import service as changes_service
from product_importer.changes.schemas import BulkRequest
from product_importer.db import compact_json, utcnow
from product_importer.history import repository
from product_importer.history import service as history
from product_importer.history.models import ChangeSet
from product_importer.history.record_tables import RECORD_COLUMNS
from product_importer.tasks import dispatch
from product_importer.webhooks import events

# Selections up to this size run inside the request; larger ones are a background job.
INLINE_LIMIT = 1000


class TotalMismatch(Exception):
    def __init__(self, found: int, expected: int) -> None:
        super().__init__(
            f"The filter now matches {found} products, not the {expected} you saw; nothing was "
            "changed. Look at the list again and confirm the new number."
        )
        self.found = found


class InvalidRequest(ValueError):
    """A field filter or a field value that does not fit the fields defined now."""


def _selection(session: Session, request: BulkRequest) -> Select[Any]:
    if request.ids is not None:
        return select(Product.id).where(Product.id.in_(request.ids))
    assert request.filter is not None
    try:
        fields = field_filters.parse_filters(
            custom_fields.by_key(session), request.filter.field_parameters()
        )
    except field_filters.FieldFilterInvalid as exc:
        raise InvalidRequest(f"filter {exc}") from None
    filters = ProductFilters(**request.filter.builtin(), fields=fields)
    dialect = session.get_bind().dialect.name
    return select(Product.id).where(*catalog_repository.conditions(dialect, filters))


def field_values(session: Session, request: BulkRequest) -> dict[str, Any]:
    """The stored form of a `set_fields` request's values (null unsets), checked against the
    fields defined now."""
    try:
        return custom_fields.check_values(
            custom_fields.by_key(session), request.fields or {}, allow_null=True
        )
    except custom_fields.FieldValuesInvalid as exc:
        raise InvalidRequest(str(exc)) from None


def _patched(dialect: str, values: dict[str, Any]) -> ColumnElement[Any]:
    """The product's fields with `values` merged in (a JSON merge patch: null unsets)."""
    patch = literal(compact_json(values))
    if dialect == "postgresql":
        return func.jsonb_strip_nulls(Product.fields.op("||")(cast(patch, JSONB)))
    return func.json_patch(Product.fields, patch)


def count_selected(session: Session, request: BulkRequest) -> int:
    """How many products the request selects now; a filter must match `expected_total`."""
    selected = _selection(session, request).subquery()
    found = int(session.scalar(select(func.count()).select_from(selected)) or 0)
    if request.expected_total is not None and found != request.expected_total:
        raise TotalMismatch(found, request.expected_total)
    return found


def _summary(request: BulkRequest, matched: int) -> str:
    how = "by filter" if request.filter is not None else "by selection"
    action: str = request.action
    if request.fields:
        keys = ", ".join(sorted(request.fields))
        action += f" ({keys if len(keys) <= 80 else keys[:79] + '…'})"
    return f"Bulk {action}: {matched} products selected {how}"


def start(
    session: Session, request: BulkRequest, actor: str, *, may_remove_all: bool = False
) -> tuple[ChangeSet, int]:
    """A queued bulk job for a large selection (its task re-checks the count when it runs)."""
    matched = count_selected(session, request)
    stored = {**request.model_dump(mode="json"), changes_service.MAY_REMOVE_ALL: may_remove_all}
    change = history.open_change(
        session,
        "bulk",
        actor,
        _summary(request, matched),
        status="queued",
        request=json.dumps(stored),
    )
    dispatch.enqueue(session, changes_service.RUN_TASK, change_id=change.id)
    return change, matched


def run_inline(
    session: Session,
    request: BulkRequest,
    actor: str,
    matched: int,
    *,
    may_remove_all: bool = False,
) -> ChangeSet:
    """Apply a small bulk action in the caller's transaction (the caller holds the lock)."""
    change = history.open_change(session, "bulk", actor, _summary(request, matched))
    apply(session, change, request, matched, lambda _p: None, may_remove_all=may_remove_all)
    return change


def run_job(session: Session, change: ChangeSet, progress: Callable[[float], None]) -> None:
    assert change.request is not None
    stored = json.loads(change.request)
    # A job queued before the role was kept with it may not delete everything.
    may_remove_all = bool(stored.pop(changes_service.MAY_REMOVE_ALL, False))
    request = BulkRequest.model_validate(stored)
    matched = count_selected(session, request)
    progress(10.0)
    apply(session, change, request, matched, progress, may_remove_all=may_remove_all)
    session.execute(
        sa.update(ChangeSet)
        .where(ChangeSet.id == change.id)
        .values(status="completed", percent=100.0, finished_at=utcnow(), heartbeat_at=utcnow())
    )


def apply(
    session: Session,
    change: ChangeSet,
    request: BulkRequest,
    matched: int,
    progress: Callable[[float], None],
    *,
    may_remove_all: bool = False,
) -> None:
    values = field_values(session, request) if request.action == "set_fields" else {}
    repository.lock_products(session)
    selected = _selection(session, request).scalar_subquery()
    dialect = session.get_bind().dialect.name
    now = utcnow()
    target = repository.open_records(session, change.id, matched)
    source, where = target.source()
    recorded: Any = (
        select(sa.literal_column("r.product_id")).select_from(sa.text(source)).where(sa.text(where))
    )
    # A bulk action never changes a SKU key: no before_sku_key.
    columns = RECORD_COLUMNS.replace("before_sku_key, ", "").split(", ")
    lead: list[Any] = []
    if not target.own:
        columns.insert(0, "change_id")
        lead.append(literal(change.id))
    if request.action == "delete":
        rows: Any = select(
            *lead,
            Product.sku_key,
            Product.id,
            literal("deleted"),
            Product.sku,
            Product.name,
            Product.description,
            Product.active,
            sa.null(),
            sa.null(),
            sa.null(),
            sa.null(),
            Product.fields,  # before_fields: what an undo recreates
            sa.null(),
        ).where(Product.id.in_(selected))
    elif request.action == "set_fields":
        # Only the fields change; `active` is recorded as it is, for the undo to keep it.
        patched = _patched(dialect, values)
        current = Product.fields if dialect == "postgresql" else func.json(Product.fields)
        rows = select(
            *lead,
            Product.sku_key,
            Product.id,
            literal("updated"),
            Product.sku,
            sa.null(),
            sa.null(),
            Product.active,
            sa.null(),
            sa.null(),
            sa.null(),
            sa.null(),
            Product.fields,
            patched,
        ).where(Product.id.in_(selected), patched != current)
    else:
        # Only `active` changes: name and description stay null ("unchanged"), as in an import.
        active = request.action == "activate"
        rows = select(
            *lead,
            Product.sku_key,
            Product.id,
            literal("updated"),
            Product.sku,
            sa.null(),
            sa.null(),
            Product.active,
            sa.null(),
            sa.null(),
            sa.null(),
            literal(active),
            sa.null(),  # fields unchanged
            sa.null(),
        ).where(Product.id.in_(selected), Product.active.is_not(active))
    destination = sa.table(target.table, *(sa.column(name) for name in columns))
    session.execute(insert(destination).from_select(columns, rows))
    progress(50.0)
    if request.action == "delete" and not may_remove_all:
        # Under the lock, before deleting: what it would delete against the catalogue. (The
        # insert's rowcount is -1 on psycopg, so the records are counted.)
        count = select(func.count()).select_from(recorded.subquery())
        removing = int(session.scalar(count) or 0)
        if changes_service.covers_everything(session, removing):
            raise changes_service.RemovesEverything(removing)
    if request.action == "delete":
        if session.get_bind().dialect.name == "sqlite":  # PostgreSQL's search rows cascade
            for search_table, key in (("product_search", "rowid"), ("search_fresh", "product_id")):
                session.execute(
                    sa.delete(sa.table(search_table, sa.column(key))).where(
                        sa.column(key).in_(recorded)
                    )
                )
        result = session.execute(
            sa.delete(Product)
            .where(Product.id.in_(recorded))
            .execution_options(synchronize_session=False)
        )
        counts = {"deleted": int(getattr(result, "rowcount", 0))}
    elif request.action == "set_fields":
        result = session.execute(
            sa.update(Product)
            .where(Product.id.in_(recorded))
            .values(fields=_patched(dialect, values), updated_at=now)
            .execution_options(synchronize_session=False)
        )
        counts = {"updated": int(getattr(result, "rowcount", 0))}
    else:
        result = session.execute(
            sa.update(Product)
            .where(Product.id.in_(recorded))
            .values(active=request.action == "activate", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        counts = {"updated": int(getattr(result, "rowcount", 0))}
    repository.close_records(session, target)
    progress(90.0)
    session.execute(sa.update(ChangeSet).where(ChangeSet.id == change.id).values(**counts))
    data: dict[str, Any] = {
        "change_id": change.id,
        "action": request.action,
        "matched": matched,
        "changed": next(iter(counts.values())),
    }
    if request.action == "set_fields":
        data["fields"] = values  # what was set; null for a field unset
    events.record(session, "products.bulk_changed", data)
