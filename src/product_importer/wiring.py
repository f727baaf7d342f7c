"""Plugs the domains into the platform and into the layers below them, from the edges (the
app, the CLI and so the Celery worker) at start-up.

The platform (`tasks`, `observability`) and the lower domains never import the packages that
use them: each domain registers its tasks with `tasks.registry` when its `tasks` module is
imported, and a higher package plugs its implementation into a lower package's seam (the
audit log into `auth.auditing`). Importing those modules here and `connect` are all the wiring
there is; calling it again changes nothing.
"""

from __future__ import annotations

from product_importer.audit import service as audit_service
from product_importer.audit import tasks as _audit_tasks  # noqa: F401  (registers its tasks)
from product_importer.auth import auditing
from product_importer.auth import tasks as _auth_tasks  # noqa: F401
from product_importer.backups import tasks as _backups_tasks  # noqa: F401
from product_importer.catalog import tasks as _catalog_tasks  # noqa: F401
from product_importer.changes import tasks as _changes_tasks  # noqa: F401
from product_importer.feeds import tasks as _feeds_tasks  # noqa: F401
from product_importer.imports import tasks as _imports_tasks  # noqa: F401
from product_importer.system import tasks as _system_tasks  # noqa: F401
from product_importer.webhooks import tasks as _webhooks_tasks  # noqa: F401


def connect() -> None:
    """Plug every seam (the task modules above registered themselves on import)."""
    auditing.plug_in(audit_service.record)
