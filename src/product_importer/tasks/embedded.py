"""Background work on threads inside the server process: the default, no other service needed."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from product_importer.tasks.heartbeat import Heartbeat, embedded_identity
from product_importer.tasks.registry import (
    QUEUES,
    TaskContext,
    all_periodic,
    get_task,
    run,
    run_periodic,
)

log = logging.getLogger(__name__)


class EmbeddedDispatcher:
    """One thread pool per queue, so webhook deliveries can never starve imports."""

    def __init__(self, threads: dict[str, int] | None = None) -> None:
        self._threads = {"imports": 1, "webhooks": 4, "default": 2} | (threads or {})
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._context: TaskContext | None = None
        self._scheduler: threading.Thread | None = None
        self._heartbeat: Heartbeat | None = None
        self._running = 0
        self._running_lock = threading.Lock()

    def start(self, context: TaskContext) -> None:
        self._context = context
        for queue in QUEUES:
            self._executors[queue] = ThreadPoolExecutor(
                max_workers=self._threads[queue], thread_name_prefix=f"pi-{queue}"
            )
        self._scheduler = threading.Thread(
            target=self._run_schedule, name="pi-scheduler", daemon=True
        )
        self._scheduler.start()
        self._heartbeat = Heartbeat(
            context.database,
            embedded_identity(QUEUES, sum(self._threads.values())),
            context.settings.heartbeat_seconds,
            leading=lambda: True,  # the one server process runs its own periodic work
            running_tasks=lambda: self._running,
        )
        self._heartbeat.start()

    def submit(self, name: str, kwargs: dict[str, Any]) -> None:
        spec = get_task(name)
        if self._context is None or self._context.stopping.is_set():
            log.warning("task %s not started: the dispatcher is stopped", name)
            return
        self._executors[spec.queue].submit(self._run, name, kwargs)

    def stop(self) -> None:
        if self._context is None:
            return
        self._context.stopping.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout=10)
        for executor in self._executors.values():
            executor.shutdown(wait=True, cancel_futures=True)
        self._executors.clear()
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def _run(self, name: str, kwargs: dict[str, Any]) -> None:
        assert self._context is not None
        with self._running_lock:
            self._running += 1
        try:
            run(self._context, name, kwargs)
        except Exception:
            log.exception("task %s failed", name)
        finally:
            with self._running_lock:
                self._running -= 1

    def _run_schedule(self) -> None:
        assert self._context is not None
        stopping = self._context.stopping
        due: dict[str, float] = {}
        while not stopping.is_set():
            now = time.monotonic()
            for spec in all_periodic():
                if due.get(spec.name, 0.0) <= now:
                    due[spec.name] = now + spec.every_seconds
                    run_periodic(self._context, spec)
            stopping.wait(0.5)
