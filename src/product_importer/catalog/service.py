"""Product rules: unique SKUs in any letter case, lost-update protection, events, delete-all.

Nothing here commits: the request or task that opened the session does.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from product_importer.catalog import custom_fields, repository
from product_importer.catalog import walk as walk_plan
from product_importer.catalog.models import DeleteAllJob, Product, sku_key
from product_importer.catalog.schemas import (
    ProductCreate,
    ProductFilters,
    ProductPage,
    ProductRead,
    ProductUpdate,
    SortOrder,
)
from product_importer.catalog.search import catchup, writing
from product_importer.db import utcnow
from product_importer.history import record_tables, recording
from product_importer.history import repository as history_repository
from product_importer.history import service as history
from product_importer.history.models import ChangeSet, ProductChange
from product_importer.tasks import dispatch
from product_importer.webhooks import events

DELETE_ALL_TASK = "catalog.delete_all"
SEARCHED_FIELDS = ("sku", "name", "description")


class ProductNotFound(Exception):
    def __init__(self, product_id: int) -> None:
        super().__init__(f"No product with id {product_id}.")


class SkuConflict(Exception):
    def __init__(self, sku: str, existing: Product | None) -> None:
        if existing is None:
            message = f"A product with SKU '{sku}' already exists (SKUs ignore letter case)."
        else:
            message = (
                f"SKU '{sku}' is already used by product {existing.id} ('{existing.sku}'); "
                "SKUs are unique in any letter case."
            )
        super().__init__(message)
        self.existing_id = existing.id if existing is not None else None


class PreconditionFailed(Exception):
    def __init__(self) -> None:
        super().__init__(
            "The product was changed since you loaded it (If-Match does not match its ETag); "
            "load it again and reapply your change."
        )


class DeleteJobNotFound(Exception):
    def __init__(self, job_id: int | None = None) -> None:
        super().__init__(
            f"No delete-all job with id {job_id}." if job_id else "No delete-all job yet."
        )


# --- single products ------------------------------------------------------------------------


def etag(product: Product) -> str:
    """A strong entity tag that changes whenever the product does (`updated_at` is its version)."""
    digest = hashlib.sha256(f"{product.id}:{product.updated_at.isoformat()}".encode()).hexdigest()
    return f'"{digest[:24]}"'


def _check_if_match(product: Product, if_match: str | None) -> None:
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    if "*" not in tags and etag(product) not in tags:
        raise PreconditionFailed


def get(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise ProductNotFound(product_id)
    return product


def _ensure_sku_free(session: Session, sku: str, product_id: int | None) -> None:
    existing = repository.find_by_sku_key(session, sku_key(sku))
    if existing is not None and existing.id != product_id:
        raise SkuConflict(sku, existing)


def _flush(session: Session, sku: str) -> None:
    """Flush now, so a unique-key race or a stale version surfaces here, not at commit."""
    try:
        session.flush()
    except IntegrityError:
        raise SkuConflict(sku, None) from None
    except StaleDataError:
        raise PreconditionFailed from None


def _payload(product: Product) -> dict[str, object]:
    return ProductRead.model_validate(product).model_dump(mode="json")


def create(session: Session, data: ProductCreate, actor: str = "") -> Product:
    _ensure_sku_free(session, data.sku, None)
    values = custom_fields.check_values(
        custom_fields.by_key(session), data.fields, allow_null=False
    )
    now = utcnow()
    product = Product(
        sku=data.sku,
        sku_key=sku_key(data.sku),
        name=data.name,
        description=data.description,
        active=data.active,
        fields=values,
        created_at=now,
        updated_at=now,
    )
    session.add(product)
    _flush(session, data.sku)
    writing.note_product(session, product.id)
    record_edit(session, actor, "created", product.id, None, product)
    events.record(session, "product.created", _payload(product))
    return product


def update(
    session: Session,
    product_id: int,
    changes: ProductUpdate,
    if_match: str | None = None,
    actor: str = "",
) -> Product:
    product = get(session, product_id)
    _check_if_match(product, if_match)
    fields = changes.model_dump(exclude_unset=True)
    if fields.get("fields") is not None:
        patch = custom_fields.check_values(
            custom_fields.by_key(session), fields["fields"], allow_null=True
        )
        fields["fields"] = custom_fields.apply(custom_fields.values_of(product), patch)
    else:
        fields.pop("fields", None)
    if "sku" in fields:
        _ensure_sku_free(session, fields["sku"], product.id)
        fields["sku_key"] = sku_key(fields["sku"])
    changed = {name: value for name, value in fields.items() if getattr(product, name) != value}
    if not changed:
        return product  # nothing to write, no event, same ETag
    before = _values(product)
    for name, value in changed.items():
        setattr(product, name, value)
    _flush(session, fields.get("sku", product.sku))
    if any(name in changed for name in SEARCHED_FIELDS):
        writing.note_product(session, product.id)
    record_edit(session, actor, "updated", product.id, before, product)
    events.record(session, "product.updated", _payload(product))
    return product


def delete(session: Session, product_id: int, if_match: str | None = None, actor: str = "") -> None:
    product = get(session, product_id)
    _check_if_match(product, if_match)
    data = {"id": product.id, "sku": product.sku}
    before = _values(product)
    writing.forget_product(session, product_id)
    session.delete(product)
    _flush(session, product.sku)
    record_edit(session, actor, "deleted", product_id, before, None)
    events.record(session, "product.deleted", data)


# Up to this many times the exact-count limit, matches are gathered by id, sorted and counted.
GATHER_MATCHES = 5


def list_page(
    session: Session,
    filters: ProductFilters,
    sort: SortOrder,
    page: int,
    page_size: int,
    exact_count_limit: int,
) -> ProductPage:
    dialect = session.get_bind().dialect.name
    offset = (page - 1) * page_size
    if dialect == "postgresql":
        # The list's statements take milliseconds: starting parallel workers for them costs
        # more than it saves, and takes cores from the other requests.
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    if filters.is_empty:
        total, is_estimate = count(session, filters, exact_count_limit)
        items = repository.page_of_products(session, dialect, filters, sort, offset, page_size)
    else:
        # Sample first: cheap, and for a term matching many rows it saves the exact count,
        # which reads every match's index entries.
        found = repository.sample(session, dialect, filters)
        gathered = False
        total = found.matches
        if not repository.clearly_more_than(found, exact_count_limit):
            # Up to a few times the limit, gather every match by id and sort them, which also
            # counts them; walking the sort order would test many rows for each match it finds.
            most = GATHER_MATCHES * exact_count_limit
            items, matched = repository.page_of_matches(
                session, dialect, filters, sort, offset, page_size, most
            )
            gathered = matched <= most
            total = max(total, matched)
        # Many matches: walk the sort order testing rows, rather than find every match, when
        # they are dense enough for the walk to fill the page soon.
        walk = (
            not gathered
            and repository.scannable(dialect, filters)
            and repository.walk_is_cheaper(total, found.products, offset + page_size)
        )
        if gathered:
            total, is_estimate = matched, False
        else:
            is_estimate = True
            within = None
            if walk:
                rows = walk_plan.budget(total, found.products, offset + page_size)
                within = walk_plan.bound(session, dialect, sort, rows)
            items = repository.page_of_products(
                session, dialect, filters, sort, offset, page_size, scan=walk, within=within
            )
            if within is not None and len(items) < page_size:
                # The matches lie further along the order than the walk may go: gather them.
                most = 2 * found.products + 1_000  # every match (the count is estimated)
                items, total = repository.page_of_matches(
                    session, dialect, filters, sort, offset, page_size, most
                )
                is_estimate = False
    if is_estimate and 0 < len(items) < page_size:
        total, is_estimate = offset + len(items), False  # a short page is the last one
    elif is_estimate and len(items) == page_size:
        total = max(total, offset + page_size + 1)  # a full page: there is at least one more
    return ProductPage(
        items=[ProductRead.model_validate(item) for item in items],
        total=total,
        total_is_estimate=is_estimate,
        page=page,
        page_size=page_size,
        search_pending=catchup.catching_up(session),
    )


def count(session: Session, filters: ProductFilters, exact_limit: int) -> tuple[int, bool]:
    """(total, is_estimate): exact up to `exact_limit` matches, estimated beyond."""
    dialect = session.get_bind().dialect.name
    if filters.is_empty and dialect == "sqlite":
        return repository.count_all(session), False  # counts b-tree pages: cheap
    exact = len(repository.ids_up_to(session, dialect, filters, exact_limit))
    if exact <= exact_limit:
        return exact, False
    return max(repository.estimate_matches(session, dialect, filters), exact_limit + 1), True


# --- delete all ----------------------------------------------------------------------------

ACTIVE_STATUSES = ("queued", "running")


def start_delete_all(session: Session, requested_by: str) -> tuple[DeleteAllJob, bool]:
    """Queue a delete-all job, or return the one already queued or running (created=False)."""
    active = session.scalar(
        select(DeleteAllJob)
        .where(DeleteAllJob.status.in_(ACTIVE_STATUSES))
        .order_by(DeleteAllJob.id)
        .limit(1)
    )
    if active is not None:
        return active, False
    now = utcnow()
    job = DeleteAllJob(
        status="queued",
        requested_by=requested_by,
        deleted=0,
        attempts=0,
        created_at=now,
        heartbeat_at=now,
    )
    session.add(job)
    session.flush()
    dispatch.enqueue(session, DELETE_ALL_TASK, job_id=job.id)
    return job, True


def get_delete_job(session: Session, job_id: int) -> DeleteAllJob:
    job = session.get(DeleteAllJob, job_id)
    if job is None:
        raise DeleteJobNotFound(job_id)
    return job


def latest_delete_job(session: Session) -> DeleteAllJob:
    job = session.scalar(select(DeleteAllJob).order_by(DeleteAllJob.id.desc()).limit(1))
    if job is None:
        raise DeleteJobNotFound
    return job


def claim_delete_job(session: Session, job_id: int, stale_before: datetime) -> bool:
    """Mark the job running for this worker, unless another live worker has it or it ended."""
    now = utcnow()
    result = session.execute(
        sa.update(DeleteAllJob)
        .where(
            DeleteAllJob.id == job_id,
            or_(
                DeleteAllJob.status == "queued",
                (DeleteAllJob.status == "running") & (DeleteAllJob.heartbeat_at < stale_before),
            ),
        )
        .values(
            status="running",
            attempts=DeleteAllJob.attempts + 1,
            heartbeat_at=now,
            started_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_delete_progress(session: Session, job_id: int, deleted: int) -> None:
    session.execute(
        sa.update(DeleteAllJob)
        .where(DeleteAllJob.id == job_id)
        .values(deleted=DeleteAllJob.deleted + deleted, heartbeat_at=utcnow())
    )


def set_delete_total(session: Session, job_id: int, total: int) -> None:
    session.execute(
        sa.update(DeleteAllJob)
        .where(DeleteAllJob.id == job_id, DeleteAllJob.total.is_(None))
        .values(total=total, heartbeat_at=utcnow())
    )


# --- recording single edits ------------------------------------------------------------


def _values(product: Product | dict[str, Any] | None) -> dict[str, Any]:
    """The recorded attributes, custom field values (a copy) included."""
    names = (*history.FIELDS, "fields")
    if product is None:
        return dict.fromkeys(names)
    if isinstance(product, dict):
        values = {name: product.get(name) for name in names}
    else:
        values = {name: getattr(product, name) for name in names}
    values["fields"] = dict(values["fields"]) if values["fields"] is not None else None
    return values


# The session remembers the change set of its latest single edit, for the edge to answer it
# (`X-Change-Id`) so the UI can offer its undo; the services keep their return values.
EDIT_CHANGE_KEY = "product_importer.edit_change_id"


def edit_change_id(session: Session) -> int | None:
    """The change set the session's latest create, update or delete recorded, if any."""
    value = session.info.get(EDIT_CHANGE_KEY)
    return value if isinstance(value, int) else None


def record_edit(
    session: Session,
    actor: str,
    op: str,
    product_id: int,
    before: Product | dict[str, Any] | None,
    after: Product | dict[str, Any] | None,
) -> ChangeSet:
    """One product created, edited or deleted through the API or the UI: a change set of its
    own, written in the edit's transaction (after the product, so ids follow commit order)."""
    old, new = _values(before), _values(after)
    fields_changed = op == "updated" and (old["fields"] or {}) != (new["fields"] or {})
    key = sku_key(new["sku"] if after is not None else old["sku"])
    old_key = sku_key(old["sku"]) if before is not None and after is not None else None
    change = history.open_change(
        session, "edit", actor, f"{op.capitalize()} product {new['sku'] or old['sku']}"
    )
    setattr(change, op, 1)
    session.add(
        ProductChange(
            change_id=change.id,
            sku_key=key,
            product_id=product_id,
            op=op,
            before_sku_key=old_key if old_key != key else None,
            before_sku=old["sku"],
            before_name=old["name"],
            before_description=old["description"],
            before_active=old["active"],
            after_sku=new["sku"],
            after_name=new["name"],
            after_description=new["description"],
            after_active=new["active"],
            # The whole object where it matters: before a delete, after a create, both when
            # an edit changed a field; null otherwise ("unchanged").
            before_fields=old["fields"] if op == "deleted" or fields_changed else None,
            after_fields=new["fields"] if op == "created" or fields_changed else None,
        )
    )
    session.flush()
    session.info[EDIT_CHANGE_KEY] = change.id
    return change


def record_delete_all(session: Session, job_id: int, up_to_id: int | None = None) -> None:
    """Record the products about to be deleted (all, or ids <= up_to_id) in the delete's
    transaction, under the job's change set (opened by the first call)."""
    if not recording.ENABLED:
        return
    job = get_delete_job(session, job_id)
    first = job.change_id is None
    if job.change_id is None:
        change = history.open_change(
            session,
            "delete_all",
            job.requested_by,
            f"Delete all products (job {job_id})",
            delete_job_id=job_id,
        )
        job.change_id = change.id
        session.flush()
        # A delete-all is rare and usually large: on PostgreSQL it always has a table of its
        # own, indexed with the first batch; later batches (when TRUNCATE cannot get its lock)
        # add to it, each in its own transaction.
        target = history_repository.open_records(
            session, change.id, record_tables.OWN_TABLE_MIN_ROWS
        )
    else:
        target = history_repository.target_of(session, job.change_id)
    dialect = session.get_bind().dialect.name
    sql, params = recording.record_deleted_statement(dialect, target, up_to_id)
    session.execute(sa.text(sql), params)
    if first:
        history_repository.close_records(session, target)


def complete_delete_job(session: Session, job_id: int) -> bool:
    """Finish the job and emit the single `products.deleted_all` event, exactly once."""
    result = session.execute(
        sa.update(DeleteAllJob)
        .where(DeleteAllJob.id == job_id, DeleteAllJob.status == "running")
        .values(status="completed", finished_at=utcnow(), heartbeat_at=utcnow())
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    job = session.get(DeleteAllJob, job_id, populate_existing=True)
    assert job is not None
    if job.change_id is not None:
        session.execute(
            sa.text("UPDATE change_sets SET deleted = :deleted WHERE id = :id"),
            {"deleted": job.deleted, "id": job.change_id},
        )
    events.record(session, "products.deleted_all", {"deleted_count": job.deleted, "job_id": job.id})
    return True


def fail_delete_job(session: Session, job_id: int, reason: str) -> None:
    session.execute(
        sa.update(DeleteAllJob)
        .where(DeleteAllJob.id == job_id, DeleteAllJob.status.in_(ACTIVE_STATUSES))
        .values(status="failed", error=reason, finished_at=utcnow())
    )


def stale_delete_jobs(session: Session, stale_before: datetime) -> list[DeleteAllJob]:
    return list(
        session.scalars(
            select(DeleteAllJob).where(
                DeleteAllJob.status.in_(ACTIVE_STATUSES),
                DeleteAllJob.heartbeat_at < stale_before,
            )
        )
    )


def requeue_delete_job(session: Session, job: DeleteAllJob) -> None:
    """Hand a job whose worker (or queued task) was lost to a new worker."""
    job.status = "queued"
    job.heartbeat_at = utcnow()
    dispatch.enqueue(session, DELETE_ALL_TASK, job_id=job.id)


def stale_cutoff(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)
