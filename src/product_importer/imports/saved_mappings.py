"""Saved column mappings, and the mapping to offer for a header. Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from product_importer.imports import fields as import_fields
from product_importer.imports import mapping as column_mapping
from product_importer.imports import suggest
from product_importer.imports.columns import FieldSpec, FileFormatError
from product_importer.imports.models import ImportMapping
from product_importer.imports.sources import ReadOptions

MAX_NAME = 100


class MappingNotFound(Exception):
    pass


class MappingNameTaken(Exception):
    pass


@dataclass(frozen=True)
class Suggestion:
    mapping: dict[str, str]
    source: str  # "header" (matches as is), "saved" or "suggested"
    saved_name: str | None = None
    # A saved mapping's reading options (decimal_separator, empty_cells, group_by, ...).
    options: dict[str, Any] = field(default_factory=dict)


def list_all(session: Session) -> list[ImportMapping]:
    return list(session.scalars(select(ImportMapping).order_by(func.lower(ImportMapping.name))))


def create(
    session: Session,
    name: str,
    header: Sequence[str],
    mapping: dict[str, str],
    created_by: str,
    options: ReadOptions | None = None,
) -> ImportMapping:
    """Save (or replace, by the same name in any letter case) a mapping for a header set, with
    its reading options; a mapping may name custom fields."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise column_mapping.MappingInvalid(f"A mapping's name must be 1 to {MAX_NAME} characters.")
    defined = import_fields.specs(session)
    checked = column_mapping.check_mapping(mapping, [spec.key for spec in defined])
    options = options or ReadOptions()
    header = [cell.strip() for cell in header if cell.strip()]
    if header:
        # every mapped column (and the group column) is in the header
        column_mapping.resolve(header, checked, defined, options.group_by)
    existing = session.scalar(
        select(ImportMapping).where(func.lower(ImportMapping.name) == name.lower())
    )
    if existing is not None:
        session.delete(existing)
        session.flush()
    saved = ImportMapping(
        name=name,
        header_key=column_mapping.header_key(header or list(checked.values())),
        header=header or list(checked.values()),
        mapping=checked,
        options=options.extra() or None,
        created_by=created_by,
    )
    session.add(saved)
    session.flush()
    return saved


def delete(session: Session, mapping_id: int) -> None:
    saved = session.get(ImportMapping, mapping_id)
    if saved is None:
        raise MappingNotFound(f"No saved mapping with id {mapping_id}.")
    session.delete(saved)
    session.flush()


def for_header(
    session: Session, header: Sequence[str], defined: Sequence[FieldSpec] | None = None
) -> Suggestion:
    """The mapping to offer for this header: itself if it names our fields (custom fields by
    key or label too), else the newest one saved for exactly this header set, else one guessed
    from synonyms, with the custom fields the header names."""
    if defined is None:
        defined = import_fields.specs(session)
    try:
        column_mapping.resolve(header, None, defined)
    except FileFormatError:
        pass
    else:
        return Suggestion(column_mapping.auto_mapping(header, defined), source="header")
    saved = session.scalar(
        select(ImportMapping)
        .where(ImportMapping.header_key == column_mapping.header_key(header))
        .order_by(ImportMapping.created_at.desc(), ImportMapping.id.desc())
        .limit(1)
    )
    if saved is not None:
        return Suggestion(
            dict(saved.mapping),
            source="saved",
            saved_name=saved.name,
            options=dict(saved.options or {}),
        )
    guessed = suggest.suggest(header)
    taken = {column_mapping.header_name(column) for column in guessed.values()}
    for key, column in column_mapping.auto_mapping(header, defined).items():
        if key not in column_mapping.FIELDS and column_mapping.header_name(column) not in taken:
            guessed[key] = column
    return Suggestion(guessed, source="suggested")
