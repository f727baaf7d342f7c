"""The seam through which sign-in and every route record who did what.

The audit log sits above auth (it names principals and is read by admins), so auth cannot
call it: it records through this interface, and the audit package plugs its recorder in at
start-up (`product_importer.wiring`). Entries are written in the caller's unit of work.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from product_importer.auth.service import Principal


class Recorder(Protocol):
    def __call__(
        self,
        session: Session,
        actor: Principal | None,
        action: str,
        *,
        target: str | None = None,
        ip: str | None = None,
        details: dict[str, Any] | None = None,
        actor_name: str | None = None,
    ) -> object: ...


_recorder: Recorder | None = None


def plug_in(recorder: Recorder) -> None:
    global _recorder
    _recorder = recorder


def record(
    session: Session,
    actor: Principal | None,
    action: str,
    *,
    target: str | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> None:
    """Add one audit entry. `actor_name` names an actor that has no principal (a failed
    sign-in). Refuses to run unplugged: an action must never go unrecorded by accident."""
    if _recorder is None:
        raise RuntimeError("no audit log is plugged in (see product_importer.wiring)")
    _recorder(
        session,
        actor,
        action,
        target=target,
        ip=ip,
        details=details,
        actor_name=actor_name,
    )
