"""One signed HTTP request to a receiver, and what came of it. Knows nothing of the database."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from product_importer import __version__
from product_importer.webhooks import signing
from product_importer.webhooks.models import ERROR_MAX_LENGTH, EXCERPT_MAX_LENGTH
from product_importer.webhooks.ssrf import GuardedTransport, TargetRefused

USER_AGENT = f"ProductImporter-Webhooks/{__version__}"
# Read no more of a response than the excerpt needs: receivers are strangers.
_EXCERPT_BYTES = EXCERPT_MAX_LENGTH * 4


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str
    # Seconds the receiver asked us to wait (Retry-After on 429/503), if it said.
    retry_after: float | None = None

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _clip(text: str, limit: int) -> str:
    text = text.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    return text if len(text) <= limit else text[: limit - 1] + "…"


def send(
    url: str,
    secrets: list[str],
    message_id: str,
    body: bytes,
    *,
    timeout: float,
    allow_private: bool,
) -> Outcome:
    """POST the body, signed with every secret in use; never raises for a receiver's failure."""
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(secrets, message_id, timestamp, body),
    }
    started = time.perf_counter()
    status_code: int | None = None
    location = ""
    excerpt = ""
    retry_after: float | None = None
    error: str | None = None
    try:
        transport = GuardedTransport(allow_private=allow_private, timeout=timeout)
        with (
            httpx.Client(
                transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
            ) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            status_code = response.status_code
            location = response.headers.get("location", "")
            excerpt = _read_excerpt(response)
            if status_code in (429, 503):
                retry_after = parse_retry_after(response.headers.get("retry-after"))
    except TargetRefused as exc:
        error = f"Refused: {exc}"
    except httpx.TimeoutException:
        error = f"Timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    if error is None and status_code is not None:
        if 300 <= status_code < 400:
            error = f"Redirect {status_code} to {location or '(no location)'} not followed"
        elif not 200 <= status_code < 300:
            error = f"The receiver answered {status_code}"
    return Outcome(
        ok=error is None,
        status_code=status_code,
        latency_ms=latency_ms,
        error=None if error is None else _clip(error, ERROR_MAX_LENGTH),
        response_excerpt=excerpt,
        retry_after=retry_after,
    )


def _read_excerpt(response: httpx.Response) -> str:
    data = b""
    try:
        for chunk in response.iter_raw():
            data += chunk
            if len(data) >= _EXCERPT_BYTES:
                break
    except httpx.HTTPError:
        pass  # the status code is what counts; a broken body only shortens the excerpt
    text = data[:_EXCERPT_BYTES].decode("utf-8", errors="replace")
    return _clip(text, EXCERPT_MAX_LENGTH)
