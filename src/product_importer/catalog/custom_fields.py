"""Custom field definitions: create, rename, retype and remove them, and check the values a
product is given against them.

A field's values live in `products.fields`; each field has an expression index of its own
(`field_sql`), created with the field and dropped with it. Removing a field is a change set
like a delete-all: every product that had a value is recorded, so the removal can be undone
(the undo recreates the field from the change's request). Nothing here commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from product_importer.catalog import field_sql, field_types
from product_importer.catalog.field_types import FieldValueError
from product_importer.catalog.models import CustomField, Product
from product_importer.db import compact_json, utcnow
from product_importer.history import record_tables
from product_importer.history import repository as history_repository
from product_importer.history import service as history
from product_importer.history.models import ChangeSet

# The change set kind of a field removal, and the request its undo reads.
REMOVE_KIND = "fields"
CONVERT_BATCH = 5_000


class FieldNotFound(Exception):
    def __init__(self, field_id: int) -> None:
        super().__init__(f"No field with id {field_id}.")


class FieldConflict(Exception):
    """The key is taken, or a type change would lose values."""


class FieldRejected(ValueError):
    """A definition that breaks a rule (a reserved key, a type without choices, too many)."""


class FieldValuesInvalid(ValueError):
    """Product values that do not fit their fields: {key: reason}."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"field '{key}' {reason}" for key, reason in sorted(errors.items()))
        )


# --- definitions ---------------------------------------------------------------------------


def all_fields(session: Session) -> list[CustomField]:
    return list(session.scalars(select(CustomField).order_by(CustomField.id)))


def by_key(session: Session) -> dict[str, CustomField]:
    return {field.key: field for field in all_fields(session)}


def get(session: Session, field_id: int) -> CustomField:
    field = session.get(CustomField, field_id)
    if field is None:
        raise FieldNotFound(field_id)
    return field


def check_key(key: str) -> str:
    if not field_types.KEY_PATTERN.match(key):
        raise FieldRejected(
            f"Key {key[:70]!r} must start with a lower-case letter and have only lower-case "
            "letters, digits and underscores (at most 63 characters)."
        )
    if key in field_types.RESERVED_KEYS:
        raise FieldRejected(f"Key '{key}' is a built-in name; choose another.")
    return key


def check_choices(kind: str, choices: list[str] | None) -> list[str] | None:
    if kind != "choice":
        if choices:
            raise FieldRejected("Only a field of type 'choice' has choices.")
        return None
    cleaned: list[str] = []
    for choice in choices or []:
        try:
            value = field_types.check_text(choice.strip(), field_types.CHOICE_MAX_LENGTH)
        except FieldValueError as exc:
            raise FieldRejected(f"Choice {choice[:40]!r} {exc}.") from None
        if value and value.casefold() not in {c.casefold() for c in cleaned}:
            cleaned.append(value)
    if not cleaned:
        raise FieldRejected("A field of type 'choice' needs at least one choice.")
    if len(cleaned) > field_types.MAX_CHOICES:
        raise FieldRejected(f"At most {field_types.MAX_CHOICES} choices.")
    return cleaned


def _build_index(session: Session, field: CustomField) -> None:
    dialect = session.get_bind().dialect.name
    for statement in field_sql.index_statements(dialect, field.id, field.key, field.type):
        session.execute(text(statement))


def _drop_index(session: Session, field: CustomField) -> None:
    dialect = session.get_bind().dialect.name
    for statement in field_sql.drop_statements(dialect, field.id):
        session.execute(text(statement))


def create(
    session: Session, key: str, label: str, kind: str, choices: list[str] | None = None
) -> CustomField:
    check_key(key)
    if kind not in field_types.TYPES:
        raise FieldRejected(f"Type must be one of {', '.join(field_types.TYPES)}.")
    choices = check_choices(kind, choices)
    if session.scalar(select(CustomField.id).where(CustomField.key == key)) is not None:
        raise FieldConflict(f"A field with key '{key}' already exists.")
    count = session.scalar(select(func.count()).select_from(CustomField)) or 0
    if count >= field_types.MAX_FIELDS:
        raise FieldRejected(f"A catalogue has at most {field_types.MAX_FIELDS} fields.")
    now = utcnow()
    field = CustomField(
        key=key, label=label, type=kind, choices=choices, created_at=now, updated_at=now
    )
    session.add(field)
    session.flush()
    _build_index(session, field)
    return field


def _stored_values(session: Session, key: str) -> Iterable[tuple[int, Any]]:
    dialect = session.get_bind().dialect.name
    raw = field_sql.raw_sql(dialect, key)
    last = 0
    while True:
        rows = session.execute(
            text(
                f"SELECT id, fields FROM products WHERE id > :last AND {raw} IS NOT NULL "
                f"ORDER BY id LIMIT {CONVERT_BATCH}"
            ),
            {"last": last},
        ).all()
        if not rows:
            return
        for product_id, fields in rows:
            values = json.loads(fields) if isinstance(fields, str) else fields
            yield product_id, values[key]
        last = rows[-1][0]


def update(
    session: Session,
    field_id: int,
    label: str | None = None,
    kind: str | None = None,
    choices: list[str] | None = None,
) -> CustomField:
    """Rename, change choices, or change the type when every stored value converts (the
    values are rewritten in the new type's form and the index rebuilt)."""
    field = get(session, field_id)
    new_kind = kind or field.type
    if new_kind not in field_types.TYPES:
        raise FieldRejected(f"Type must be one of {', '.join(field_types.TYPES)}.")
    new_choices = field.choices if choices is None and new_kind == field.type else choices
    new_choices = check_choices(new_kind, new_choices)
    if new_kind != field.type or (new_kind == "choice" and new_choices != field.choices):
        converted, failures, example = {}, 0, ""
        for product_id, value in _stored_values(session, field.key):
            try:
                new_value = field_types.convert(value, new_kind, new_choices)
            except FieldValueError as exc:
                failures += 1
                example = example or f" (e.g. {field_types.to_text(value)[:40]!r}: {exc})"
                continue
            if new_value != value:
                converted[product_id] = new_value
        if failures:
            raise FieldConflict(
                f"{failures} stored value{'s' if failures != 1 else ''} of '{field.key}' "
                f"do{'es' if failures == 1 else ''} not convert to {new_kind}{example}; change "
                "or clear them first."
            )
        _rewrite(session, field.key, converted)
        if new_kind != field.type:
            _drop_index(session, field)
            field.type = new_kind
            session.flush()
            _build_index(session, field)
    field.choices = new_choices
    if label is not None:
        field.label = label
    field.updated_at = utcnow()
    session.flush()
    return field


def _rewrite(session: Session, key: str, values: dict[int, Any]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        sql = f"UPDATE products SET fields = jsonb_set(fields, '{{{key}}}', CAST(:v AS jsonb)) "
    else:
        sql = f"UPDATE products SET fields = json_set(fields, '$.{key}', json(:v)) "
    statement = text(sql + "WHERE id = :id")
    items = [{"id": pid, "v": compact_json(value)} for pid, value in values.items()]
    for start in range(0, len(items), CONVERT_BATCH):
        session.execute(statement, items[start : start + CONVERT_BATCH])


def definition(field: CustomField) -> dict[str, Any]:
    return {"key": field.key, "label": field.label, "type": field.type, "choices": field.choices}


def remove(session: Session, field_id: int, actor: str) -> tuple[ChangeSet, int]:
    """Remove the field and its values as one change set; returns it and the products."""
    field = get(session, field_id)
    dialect = session.get_bind().dialect.name
    history_repository.lock_products(session)
    has_key = field_sql.has_key_sql(dialect, field.key)
    count = int(session.scalar(text(f"SELECT count(*) FROM products WHERE {has_key}")) or 0)
    change = history.open_change(
        session,
        REMOVE_KIND,
        actor,
        f"Remove field {field.key} ({count} product{'s' if count != 1 else ''})",
        request=json.dumps({"action": "remove_field", "field": definition(field)}),
    )
    change.updated = count
    target = history_repository.open_records(session, change.id, count)
    columns = record_tables.RECORD_COLUMNS.replace("before_sku_key, ", "")
    without = field_sql.remove_key_sql(dialect, field.key)
    session.execute(
        text(
            f"{target.insert(columns)}sku_key, id, 'updated', sku, NULL, NULL, active, NULL, "
            f"NULL, NULL, NULL, fields, {without} FROM products WHERE {has_key}"
        )
    )
    history_repository.close_records(session, target)
    _drop_index(session, field)  # first: no index (or list trigger) to keep up in the update
    session.execute(
        text(f"UPDATE products SET fields = {without}, updated_at = :now WHERE {has_key}"),
        {"now": utcnow()},
    )
    session.delete(field)
    session.flush()
    return change, count


def restore_definition(session: Session, change: ChangeSet) -> None:
    """Before undoing a field removal: the field again, as it was (same key), unless a field
    with that key exists, which must then be of the same type."""
    request = json.loads(change.request or "{}")
    old = request.get("field") or {}
    key = old.get("key")
    if not key:
        return
    existing = session.scalar(select(CustomField).where(CustomField.key == key))
    if existing is None:
        create(session, key, old["label"], old["type"], old.get("choices"))
    elif existing.type != old["type"]:
        raise FieldConflict(
            f"Field '{key}' was created again as {existing.type} (it was {old['type']}); "
            "remove or retype it before undoing its removal."
        )


# --- product values ----------------------------------------------------------------------


def check_values(
    fields: dict[str, CustomField], given: dict[str, Any], *, allow_null: bool
) -> dict[str, Any]:
    """The stored form of values sent by the API; null (unset) only where `allow_null`."""
    errors: dict[str, str] = {}
    checked: dict[str, Any] = {}
    for key, value in given.items():
        field = fields.get(key)
        if field is None:
            errors[str(key)[:70]] = "is not a defined field (see GET /api/fields)"
            continue
        if value is None:
            if allow_null:
                checked[key] = None
            else:
                errors[key] = "cannot be null; omit it to leave it unset"
            continue
        try:
            checked[key] = field_types.from_json(field.type, value, field.choices)
        except FieldValueError as exc:
            errors[key] = str(exc)
    if errors:
        raise FieldValuesInvalid(errors)
    return checked


def apply(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The values after a patch: null unsets, others set, omitted keys kept."""
    result = dict(current)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def values_of(product: Product) -> dict[str, Any]:
    return dict(product.fields or {})
