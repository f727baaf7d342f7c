"""The seam through which the app hands background work to workers.

Work is recorded on the SQLAlchemy session with `enqueue` and sent only after that session
commits, so a worker never sees a job whose row is not yet visible, and a rolled-back change
sends nothing.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

from product_importer.tasks.registry import TaskContext, get_task

_PENDING = "pending_tasks"


class Dispatcher(Protocol):
    def start(self, context: TaskContext) -> None: ...

    def submit(self, name: str, kwargs: dict[str, Any]) -> None: ...

    def stop(self) -> None: ...


def enqueue(session: Session, name: str, **kwargs: Any) -> None:
    """Send task `name` once the session's transaction commits."""
    get_task(name)  # fail now on a typo, not later in a worker
    json.dumps(kwargs)  # arguments must cross a process boundary in distributed mode
    session.info.setdefault(_PENDING, []).append((name, kwargs))


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    database = session.info.get("database")
    dispatcher = getattr(database, "dispatcher", None)
    if dispatcher is None:
        return  # nothing to hand to: periodic recovery picks the work up from the database
    for name, kwargs in pending:
        dispatcher.submit(name, kwargs)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
