"""A task handed back by a stopping worker is logged as one plain line, not a warning with a
traceback; other rejections keep Celery's warning."""

from __future__ import annotations

import logging

import pytest
from celery import Celery
from celery.exceptions import Reject

from product_importer.tasks.celery_app import HAND_BACK_REASON, quiet_hand_back_logs


def _rejecting_task(reason: str) -> None:
    app = Celery("log-test", set_as_current=False)

    @app.task(name="rejects")  # type: ignore[untyped-decorator]
    def rejects() -> None:
        raise Reject(reason, requeue=True)

    assert rejects.apply().state == "REJECTED"  # runs through Celery's real tracer


def test_a_handed_back_task_is_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    quiet_hand_back_logs()
    quiet_hand_back_logs()  # idempotent: one filter however often it is called
    assert len(logging.getLogger("celery.app.trace").filters) == 1
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        _rejecting_task(HAND_BACK_REASON)
    (record,) = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert HAND_BACK_REASON in record.getMessage()
    assert "Traceback" not in caplog.text


def test_other_rejections_keep_their_warning(caplog: pytest.LogCaptureFixture) -> None:
    quiet_hand_back_logs()
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        _rejecting_task("something else")
    (record,) = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None
