"""A distributed installation whose workers beat every second, built on the Celery tests' Fleet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from product_importer.db import Database
from tests.fleet import Fleet, amqp_url_fixture, pg_fixture, redis_url_fixture  # noqa: F401

HEARTBEAT_SECONDS = 1


class HeartbeatFleet(Fleet):
    def env(self, name: str) -> dict[str, str]:
        env = super().env(name)
        env["PRODUCT_IMPORTER_HEARTBEAT_SECONDS"] = str(HEARTBEAT_SECONDS)
        return env


@pytest.fixture
def system_fleet(tmp_path: Path, pg: Database, redis_url: str) -> Iterator[HeartbeatFleet]:
    running = HeartbeatFleet(tmp_path, pg, redis_url)
    yield running
    running.stop()
