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


_tasks: dict[str, TaskSpec] = {}
_periodic: dict[str, PeriodicSpec] = {}


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
    load_task_modules()
    try:
        return _tasks[name]
    except KeyError:
        raise LookupError(f"no task named {name!r}") from None


def all_periodic() -> list[PeriodicSpec]:
    load_task_modules()
    return list(_periodic.values())


def load_task_modules() -> None:
    """Import every module that registers tasks (imports are cached, so this is cheap)."""
    for module in TASK_MODULES:
        __import__(module)


# Every module that registers tasks; a Celery worker imports the same list.
TASK_MODULES: list[str] = [
    "product_importer.catalog.tasks",
    "product_importer.changes.tasks",
    "product_importer.imports.tasks",
    "product_importer.webhooks.tasks",
    "product_importer.system.tasks",
    "product_importer.audit.tasks",
]


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
