"""Bulk actions on selected products: activate, deactivate, delete (filled in below)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from product_importer.changes.models import ChangeSet


def run_job(session: Session, change: ChangeSet) -> None:
    raise NotImplementedError(f"bulk job {change.id}")
