"""Broker message counts from a real Redis: shared for a moment between askers, then fresh."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import redis

from product_importer.system import queues
from tests.conftest import make_settings
from tests.fleet import redis_url_fixture  # noqa: F401 (fixture)


def test_broker_counts_are_shared_briefly_then_read_again(tmp_path: Path, redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    settings = make_settings(
        tmp_path, "postgresql+psycopg://unused", broker_url=redis_url, queue_prefix=prefix
    )
    client = redis.Redis.from_url(redis_url)
    try:
        assert queues.broker_message_counts(settings) == {"imports": 0, "webhooks": 0, "default": 0}
        client.lpush(f"{prefix}imports", b"{}", b"{}")  # as kombu keeps a Redis queue: a list
        assert queues.broker_message_counts(settings)["imports"] == 0  # type: ignore[index]
        time.sleep(queues.BROKER_COUNTS_TTL_SECONDS + 0.1)
        assert queues.broker_message_counts(settings)["imports"] == 2  # type: ignore[index]
    finally:
        client.delete(f"{prefix}imports")
        client.close()
