"""Saved column mappings, and the mapping to offer for a header. Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from product_importer.imports import mapping as column_mapping
from product_importer.imports import suggest
from product_importer.imports.columns import FileFormatError
from product_importer.imports.models import ImportMapping

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


def list_all(session: Session) -> list[ImportMapping]:
    return list(session.scalars(select(ImportMapping).order_by(func.lower(ImportMapping.name))))


def create(
    session: Session, name: str, header: Sequence[str], mapping: dict[str, str], created_by: str
) -> ImportMapping:
    """Save (or replace, by the same name in any letter case) a mapping for a header set."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise column_mapping.MappingInvalid(f"A mapping's name must be 1 to {MAX_NAME} characters.")
    checked = column_mapping.check_mapping(mapping)
    header = [cell.strip() for cell in header if cell.strip()]
    if header:
        column_mapping.resolve(header, checked)  # every mapped column is in the header
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


def for_header(session: Session, header: Sequence[str]) -> Suggestion:
    """The mapping to offer for this header: itself if it names our fields, else the newest one
    saved for exactly this header set, else one guessed from synonyms."""
    try:
        column_mapping.resolve(header)
    except FileFormatError:
        pass
    else:
        present = {column_mapping.header_name(cell): cell.strip() for cell in header}
        return Suggestion(
            {f: present[f] for f in column_mapping.FIELDS if f in present}, source="header"
        )
    saved = session.scalar(
        select(ImportMapping)
        .where(ImportMapping.header_key == column_mapping.header_key(header))
        .order_by(ImportMapping.created_at.desc(), ImportMapping.id.desc())
        .limit(1)
    )
    if saved is not None:
        return Suggestion(dict(saved.mapping), source="saved", saved_name=saved.name)
    return Suggestion(suggest.suggest(header), source="suggested")
