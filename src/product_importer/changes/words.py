"""A change set named in words ("Import of shopify.csv: 2 created, 1 updated"), not by number.

Built from what each kind records in its `summary` and counts, so older rows read the same.
"""

from __future__ import annotations

import re

from product_importer.history.models import ChangeSet

_IMPORT = re.compile(r"^Import #\d+ \((?P<file>.*)\)$", re.DOTALL)
_BULK = re.compile(r"^Bulk (?P<action>[a-z_]+)(?: \((?P<keys>.*)\))?: (?P<n>\d+) products")
_EDIT = re.compile(r"^(?P<op>Created|Updated|Deleted) product (?P<sku>.*)$", re.DOTALL)
_FIELD = re.compile(r"^Remove field (?P<key>\S+) \((?P<rest>.*)\)$")


def _products(count: int) -> str:
    return f"{count:,} product{'' if count == 1 else 's'}"


def _counts(change: ChangeSet) -> str:
    parts = [
        f"{value:,} {label}"
        for value, label in (
            (change.created, "created"),
            (change.updated, "updated"),
            (change.deleted, "deleted"),
            (change.restored, "restored"),
        )
        if value
    ]
    return ", ".join(parts) or "nothing changed"


def title(change: ChangeSet, undone: ChangeSet | None = None) -> str:
    """What the change did, in words; an undo names the change it undid (`undone`)."""
    summary = change.summary or ""
    if change.kind == "import":
        match = _IMPORT.match(summary)
        name = match["file"] if match else f"import #{change.import_job_id}"
        if change.status != "completed":
            return f"Import of {name}"
        return f"Import of {name}: {_counts(change)}"
    if change.kind == "bulk":
        match = _BULK.match(summary)
        if not match:
            return summary or "Bulk action"
        action = match["action"].replace("_", " ")
        if match["keys"]:
            action = f"set {match['keys']} on"
        return f"Bulk: {action} {_products(int(match['n']))}"
    if change.kind == "edit":
        match = _EDIT.match(summary)
        if not match:
            return summary or "Edit"
        op, sku = match["op"], match["sku"]
        if op == "Updated":
            return f"Edit of product {sku}"
        return f"{'Creation' if op == 'Created' else 'Deletion'} of product {sku}"
    if change.kind == "delete_all":
        count = change.deleted
        return f"Delete all products ({_products(count)})" if count else "Delete all products"
    if change.kind == "fields":
        match = _FIELD.match(summary)
        return f"Removed field {match['key']} ({match['rest']})" if match else summary
    if change.kind == "undo":
        what = title(undone) if undone is not None else f"change {change.undoes_id}"
        return f"Undo of {what[0].lower() + what[1:]}"
    return summary or change.kind
