"""Webhook tests run against a real receiver on loopback, with retry delays in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from product_importer.db import Database
from product_importer.settings import Settings
from tests.conftest import make_settings
from tests.webhooks.receiver import Receiver

FAST = {
    "webhook_allow_private": True,
    "webhook_retry_schedule_seconds": (0.05, 0.05, 0.05),
    "webhook_timeout_seconds": 2.0,
}


def webhook_settings(tmp_path: Path, database: Database, **overrides: object) -> Settings:
    url = database.engine.url.render_as_string(hide_password=False)
    return make_settings(tmp_path, url, **(FAST | overrides))


@pytest.fixture
def settings(tmp_path: Path, database: Database) -> Settings:
    """Private targets allowed (the receiver is on loopback) and retries after 50 ms."""
    return webhook_settings(tmp_path, database)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.start()
    yield running
    running.stop()
