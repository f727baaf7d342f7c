"""Named task functions, written once and run by whichever dispatcher is configured.

A task function takes a `TaskContext` and JSON-serialisable keyword arguments, so the same
function can run on an in-process thread or in a Celery worker on another machine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from product_importer.observability import logs

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from product_importer.db import Database
    from product_importer.settings import Settings

QUEUES = ("imports", "webhooks", "default")


@dataclass
class TaskContext:
    database: Database
    settings: Settings
    # Set when the process is shutting down; long tasks check it and stop early, leaving
    # their job to be recovered on the next start.
    stopping: threading.Event = field(default_factory=threading.Event)
    # True while an import could start but may be waiting for one of this process's threads
    # (a worker that takes the imports queue and others): long tasks of other queues end their
    # turn early. Embedded mode gives imports a thread of their own, so it never says so.
    import_waiting: Callable[[], bool] = field(default=lambda: False)


TaskFunc = Callable[..., None]
WaitingCheck = Callable[["Session"], bool]
F = TypeVar("F", bound=TaskFunc)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    func: TaskFunc
    queue: str


@dataclass(frozen=True)
class PeriodicSpec:
    name: str
    func: Callable[[TaskContext], None]
    every_seconds: float


# Filled by the domains' task modules as they are imported; the edges (app, CLI) import them
# all at start-up through `product_importer.wiring`, so the platform never names its users.
_tasks: dict[str, TaskSpec] = {}
_periodic: dict[str, PeriodicSpec] = {}
_waiting_checks: dict[str, WaitingCheck] = {}


def task(name: str, *, queue: str = "default") -> Callable[[F], F]:
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")

    def register(func: F) -> F:
        _tasks[name] = TaskSpec(name=name, func=func, queue=queue)
        return func

    return register


def periodic(
    name: str, *, every_seconds: float
) -> Callable[[Callable[[TaskContext], None]], Callable[[TaskContext], None]]:
    """Register work that runs on a schedule (and once at start-up, to recover after a crash)."""

    def register(func: Callable[[TaskContext], None]) -> Callable[[TaskContext], None]:
        _periodic[name] = PeriodicSpec(name=name, func=func, every_seconds=every_seconds)
        return func

    return register


def get_task(name: str) -> TaskSpec:
    try:
        return _tasks[name]
    except KeyError:
        raise LookupError(
            f"no task named {name!r} (are the task modules wired? see product_importer.wiring)"
        ) from None


def all_periodic() -> list[PeriodicSpec]:
    return list(_periodic.values())


def waiting_check(queue: str) -> Callable[[WaitingCheck], WaitingCheck]:
    """Register how to tell, in a session, that work of `queue` waits for a free thread (a
    worker that also takes other queues asks this; see tasks.celery_app.ImportWaitingCheck)."""

    def register(func: WaitingCheck) -> WaitingCheck:
        _waiting_checks[queue] = func
        return func

    return register


def get_waiting_check(queue: str) -> WaitingCheck | None:
    return _waiting_checks.get(queue)


def run(context: TaskContext, name: str, kwargs: dict[str, Any]) -> None:
    """Run a task; both dispatchers come through here, so every log line of the run carries
    the task's name, queue and ids."""
    spec = get_task(name)
    with logs.task_context(name, spec.queue, kwargs):
        spec.func(context, **kwargs)


def run_periodic(context: TaskContext, spec: PeriodicSpec) -> None:
    """Run one periodic task; a failure is logged (with the task's name on the line) and the
    schedule goes on."""
    with logs.task_context(spec.name, "periodic", {}):
        try:
            spec.func(context)
        except Exception:
            _log.exception("periodic task %s failed", spec.name)
