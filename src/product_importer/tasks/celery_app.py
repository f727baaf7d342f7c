"""Background work in Celery workers (distributed mode, `BROKER_URL` set).

One generic Celery task carries (task name, JSON kwargs) and runs the registered function, so
the task code is the same as in embedded mode; each message goes to the queue named in its
TaskSpec (`imports`, `webhooks`, `default`). Messages are acknowledged only after the task ran
(`acks_late`), so a worker killed mid-task leaves its message to be delivered again; the tasks
are idempotent (jobs are claimed in the database), so a second delivery does no harm.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, signals
from celery.exceptions import Reject
from celery.worker import state as worker_state

from product_importer.db import Database
from product_importer.observability import logs
from product_importer.settings import Settings
from product_importer.tasks import registry
from product_importer.tasks.heartbeat import Heartbeat, celery_identity
from product_importer.tasks.leader import FleetScheduler
from product_importer.tasks.registry import QUEUES, TaskContext, get_task

log = logging.getLogger(__name__)

TASK_NAME = "product_importer.run"
HAND_BACK_REASON = "worker stopping: task handed back to the queue"
# A worker that stopped on an error is started again after 1, 2, 4 ... up to 30 s; the delay
# starts over once it has run this long.
MAX_RESTART_DELAY_SECONDS = 30.0
RESTART_RESET_SECONDS = 60.0


class BrokerUnavailable(Exception):
    """The broker named by BROKER_URL does not answer."""


def queue_name(settings: Settings, queue: str) -> str:
    return f"{settings.queue_prefix}{queue}"


def make_celery(settings: Settings) -> Celery:
    app = Celery("product_importer", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queue_name(settings, "default"),
        task_create_missing_queues=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        # Installations that share a broker through their queue prefix share no control
        # messages either: a health check's ping reaches this installation's workers only.
        control_exchange=queue_name(settings, "celery"),
        event_exchange=queue_name(settings, "celeryev"),
    )
    return app


def check_broker(settings: Settings) -> None:
    app = make_celery(settings)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:
        raise BrokerUnavailable(
            str(exc).strip().splitlines()[0] if str(exc) else repr(exc)
        ) from exc
    finally:
        app.close()


class CeleryDispatcher:
    """Sends registered tasks to the broker; the workers run them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.app = make_celery(settings)

    def start(self, context: TaskContext) -> None:
        """Nothing runs here: the workers run the tasks and, one of them, the periodic work."""

    def submit(self, name: str, kwargs: dict[str, Any]) -> None:
        spec = get_task(name)
        try:
            self.app.send_task(
                TASK_NAME,
                args=(name, kwargs),
                queue=queue_name(self._settings, spec.queue),
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception:
            # The database keeps the job; the periodic sweeps find it again.
            log.exception("task %s could not be sent to the broker", name)

    def stop(self) -> None:
        self.app.close()


def _register_runner(app: Celery, context: TaskContext) -> None:
    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def run(name: str, kwargs: dict[str, Any]) -> None:
        registry.run(context, name, kwargs)
        if context.stopping.is_set():
            # The worker is shutting down and the task may have stopped early (an import goes
            # back to `queued`): hand the message back so another worker carries on.
            raise Reject(HAND_BACK_REASON, requeue=True)


class HandBackLogFilter(logging.Filter):
    """Celery logs every rejected task as a WARNING with a traceback; a task handed back by a
    stopping worker is routine, so it becomes one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, Reject) and error.reason == HAND_BACK_REASON:
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_hand_back_logs() -> None:
    trace_log = logging.getLogger("celery.app.trace")
    if not any(isinstance(f, HandBackLogFilter) for f in trace_log.filters):
        trace_log.addFilter(HandBackLogFilter())


class ImportWaitingCheck:
    """Asks the database whether an import waits for a thread, at most once a second.

    Celery has no per-queue thread limit within one worker: when every thread of a worker that
    also takes the imports queue is busy delivering webhooks, a queued import waits until one
    delivery turn ends. Deliveries ask this between requests and end their turn early."""

    def __init__(self, database: Database, every_seconds: float = 1.0) -> None:
        self._database = database
        self._every = every_seconds
        self._checked_at = -every_seconds
        self._answer = False
        # The imports package registers the question (tasks.registry.waiting_check).
        self._check = registry.get_waiting_check("imports") or (lambda _session: False)

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at >= self._every:
            self._checked_at = now
            with self._database.session() as session:
                self._answer = self._check(session)
        return self._answer


def run_worker(settings: Settings, database: Database, queues: list[str], concurrency: int) -> int:
    """Run a Celery worker in this process until it is stopped; return its exit code.

    The thread pool keeps the embedded mode's model: one process, one engine, tasks that see
    `context.stopping`; scale across CPUs and machines by running more workers.
    """
    context = TaskContext(database=database, settings=settings)
    if "imports" in queues and len(queues) > 1:
        context.import_waiting = ImportWaitingCheck(database)
    dispatcher = CeleryDispatcher(settings)
    database.dispatcher = dispatcher
    _register_runner(dispatcher.app, context)
    quiet_hand_back_logs()
    scheduler = FleetScheduler(context)

    def shutting_down(**_: Any) -> None:
        context.stopping.set()

    signals.worker_shutting_down.connect(shutting_down, weak=False)
    # A receiver here tells Celery logging is configured already: its loggers then go through
    # the app's handler and format (observability.logs) instead of handlers of their own.
    signals.setup_logging.connect(_keep_logging, weak=False)
    scheduler.start()
    hostname = logs.worker_name()  # the same name in logs, heartbeats and Celery
    heartbeat = Heartbeat(
        database,
        celery_identity(hostname, tuple(queues), concurrency),
        settings.heartbeat_seconds,
        leading=scheduler.leading.is_set,
        running_tasks=lambda: len(worker_state.active_requests),
    )
    # Beat once the worker consumes: one still connecting to its broker is not yet doing work.
    signals.worker_ready.connect(lambda **_: heartbeat.start(), weak=False)
    try:
        return _run_celery_worker(dispatcher.app, settings, queues, concurrency, context)
    finally:
        context.stopping.set()
        scheduler.join()
        heartbeat.stop()
        database.dispatcher = None
        dispatcher.stop()


def _run_celery_worker(
    app: Celery, settings: Settings, queues: list[str], concurrency: int, context: TaskContext
) -> int:
    """Run the Celery worker, and start it again if it stops on an error nobody asked for.

    Celery can give up on a broker connection lost mid-task ("Unrecoverable error" while it
    closes the broken channel, seen with Redis restarts while acks_late tasks run): without
    this, one broker restart could stop every worker of the fleet for good.
    """
    restarts = 0
    while True:
        started = time.monotonic()
        worker = app.Worker(
            pool="threads",
            concurrency=concurrency,
            queues=[queue_name(settings, queue) for queue in queues],
            hostname=logs.worker_name(),  # the same name in logs, heartbeats and Celery
            loglevel=settings.log_level,
            without_mingle=True,
            without_gossip=True,
        )
        worker.start()
        exitcode = int(worker.exitcode or 0)
        if exitcode == 0 or context.stopping.is_set():
            return exitcode
        restarts = 0 if time.monotonic() - started > RESTART_RESET_SECONDS else restarts + 1
        delay = min(2.0**restarts, MAX_RESTART_DELAY_SECONDS)
        log.error("the Celery worker stopped on an error; starting it again in %.0f s", delay)
        if context.stopping.wait(delay):
            return exitcode


def _keep_logging(**_: Any) -> None:
    """Logging was set up by the command (`observability.logs`)."""


def parse_queues(value: str) -> list[str]:
    queues = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [queue for queue in queues if queue not in QUEUES]
    if not queues or unknown:
        raise ValueError(
            f"unknown queue(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(QUEUES)}"
        )
    return queues
