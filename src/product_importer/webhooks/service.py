"""Webhook rules: endpoints, fan-out, the retry policy and endpoint health. Never commits."""

from __future__ import annotations

import random
import secrets as secrets_module
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from product_importer.db import utcnow
from product_importer.settings import Settings
from product_importer.tasks import dispatch
from product_importer.webhooks import events, repository, signing, ssrf
from product_importer.webhooks.delivery import Outcome, body_bytes
from product_importer.webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event
from product_importer.webhooks.schemas import WebhookCreate, WebhookUpdate

ROTATION_GRACE = timedelta(hours=24)
# A queued delivery task holds the endpoint this long before it starts; an active one holds it
# for one attempt plus this margin, renewed before every attempt.
QUEUED_LEASE = timedelta(seconds=60)
LEASE_MARGIN = timedelta(seconds=30)
JITTER = 0.2

DISABLED_BY_USER = "Disabled by a user."
NOT_SENT_DISABLED = "Not sent: the endpoint was disabled."


class WebhookNotFound(Exception):
    pass


class DeliveryNotFound(Exception):
    pass


class InvalidTarget(Exception):
    """The URL is well formed but points where webhooks may not go."""


class EndpointDisabled(Exception):
    pass


@dataclass(frozen=True)
class Attempt:
    """Everything one HTTP attempt needs, read in a short transaction and used outside it."""

    delivery_id: int
    endpoint_id: int
    url: str
    secrets: list[str]
    message_id: str
    body: bytes


def new_message_id() -> str:
    return f"msg_{secrets_module.token_hex(12)}"


def secrets_in_use(endpoint: Endpoint, now: datetime) -> list[str]:
    in_use = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        in_use.append(endpoint.previous_secret)
    return in_use


def _check_target(url: str, settings: Settings) -> None:
    if settings.webhook_allow_private:
        return
    try:
        ssrf.check_host(url)
    except ssrf.TargetRefused as exc:
        raise InvalidTarget(
            f"Webhooks may not target {exc}; set PRODUCT_IMPORTER_WEBHOOK_ALLOW_PRIVATE=1 "
            "to allow private targets in development."
        ) from None


# Endpoints -------------------------------------------------------------------------------


def get(session: Session, endpoint_id: int) -> Endpoint:
    endpoint = repository.get_endpoint(session, endpoint_id)
    if endpoint is None:
        raise WebhookNotFound(endpoint_id)
    return endpoint


def list_all(session: Session) -> Sequence[Endpoint]:
    return repository.list_endpoints(session)


def create(session: Session, data: WebhookCreate, settings: Settings) -> Endpoint:
    _check_target(data.url, settings)
    endpoint = Endpoint(
        url=data.url,
        events=list(data.events),
        enabled=data.enabled,
        description=data.description,
        secret=signing.new_secret(),
        consecutive_failures=0,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def update(session: Session, endpoint_id: int, data: WebhookUpdate, settings: Settings) -> Endpoint:
    endpoint = get(session, endpoint_id)
    if data.url is not None:
        _check_target(data.url, settings)
        endpoint.url = data.url
    if data.events is not None:
        endpoint.events = list(data.events)
    if data.description is not None:
        endpoint.description = data.description
    if data.enabled is True and not endpoint.enabled:
        # A fresh start: the failure streak that may have disabled it is forgotten.
        endpoint.enabled = True
        endpoint.disabled_reason = None
        endpoint.failing_since = None
        endpoint.consecutive_failures = 0
    elif data.enabled is False and endpoint.enabled:
        _disable(session, endpoint, DISABLED_BY_USER)
    endpoint.updated_at = utcnow()
    session.flush()
    return endpoint


def delete(session: Session, endpoint_id: int) -> None:
    session.delete(get(session, endpoint_id))
    session.flush()


def rotate_secret(session: Session, endpoint_id: int) -> Endpoint:
    """A new secret; the old one keeps signing for 24 hours so receivers can switch over."""
    endpoint = get(session, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + ROTATION_GRACE
    endpoint.secret = signing.new_secret()
    endpoint.updated_at = utcnow()
    session.flush()
    return endpoint


def _disable(session: Session, endpoint: Endpoint, reason: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    repository.fail_pending(session, endpoint.id, NOT_SENT_DISABLED)


# The delivery log ------------------------------------------------------------------------


def page_deliveries(
    session: Session,
    endpoint_id: int,
    *,
    status: str | None,
    event_type: str | None,
    page: int,
    page_size: int,
) -> tuple[Sequence[Delivery], int]:
    get(session, endpoint_id)
    return repository.page_deliveries(
        session,
        endpoint_id,
        status=status,
        event_type=event_type,
        offset=(page - 1) * page_size,
        limit=page_size,
    )


def redeliver(session: Session, endpoint_id: int, delivery_id: int) -> Delivery:
    """Queue the same message (same `webhook-id`) again, with a fresh set of retries."""
    endpoint = get(session, endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled(endpoint_id)
    delivery = repository.get_delivery(session, endpoint_id, delivery_id)
    if delivery is None:
        raise DeliveryNotFound(delivery_id)
    delivery.status = "pending"
    delivery.round_attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.last_error = None
    session.flush()
    schedule_drain(session, endpoint_id)
    return delivery


# Test ------------------------------------------------------------------------------------


def test_attempt(session: Session, endpoint_id: int) -> tuple[Attempt, dict[str, object]]:
    """A signed `webhook.test` message for the endpoint, not yet sent nor stored."""
    endpoint = get(session, endpoint_id)
    payload = events.envelope(
        events.TEST_EVENT,
        {"endpoint_id": endpoint.id, "message": "A test event from Product Importer."},
    )
    attempt = Attempt(
        delivery_id=0,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        secrets=secrets_in_use(endpoint, utcnow()),
        message_id=new_message_id(),
        body=body_bytes(payload),
    )
    return attempt, payload


def record_test(
    session: Session, attempt: Attempt, payload: dict[str, object], outcome: Outcome
) -> None:
    """Log a test in the delivery log; it shows as the endpoint's last contact but never counts
    towards disabling it."""
    endpoint = repository.get_endpoint(session, attempt.endpoint_id)
    if endpoint is None:
        return  # deleted while we waited for the receiver
    now = utcnow()
    event = Event(type=events.TEST_EVENT, payload=payload, created_at=now, dispatched_at=now)
    session.add(event)
    session.flush()
    delivery = Delivery(
        endpoint_id=endpoint.id,
        event_id=event.id,
        event_type=events.TEST_EVENT,
        message_id=attempt.message_id,
        status="succeeded" if outcome.ok else "failed",
        attempt_count=1,
        round_attempts=1,
        next_attempt_at=None,
        last_attempt_at=now,
        last_error=outcome.error,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    session.add(_attempt_row(delivery.id, now, outcome))
    _note_contact(endpoint, now, outcome)
    session.flush()


# Fan-out and delivery --------------------------------------------------------------------


def fan_out(session: Session, event_id: int) -> list[int]:
    """Create one delivery per subscribed, enabled endpoint; idempotent (first caller wins)."""
    now = utcnow()
    event = repository.claim_event(session, event_id, now)
    if event is None:
        return []
    endpoint_ids = []
    for endpoint in repository.enabled_endpoints(session):
        if event.type not in endpoint.events:
            continue
        session.add(
            Delivery(
                endpoint_id=endpoint.id,
                event_id=event.id,
                event_type=event.type,
                message_id=new_message_id(),
                status="pending",
                attempt_count=0,
                round_attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        endpoint_ids.append(endpoint.id)
    session.flush()
    for endpoint_id in endpoint_ids:
        schedule_drain(session, endpoint_id)
    return endpoint_ids


def schedule_drain(session: Session, endpoint_id: int) -> bool:
    """Queue a delivery task for the endpoint unless one is queued or running already."""
    now = utcnow()
    token = secrets_module.token_hex(16)
    if not repository.take_lease(session, endpoint_id, token, now + QUEUED_LEASE, now):
        return False  # whoever holds it picks new deliveries up, or the sweep does
    dispatch.enqueue(session, "webhooks.deliver", endpoint_id=endpoint_id, lease_token=token)
    return True


def next_attempt(
    session: Session, endpoint_id: int, lease_token: str, settings: Settings
) -> Attempt | None:
    """The next due delivery of an endpoint whose lease we hold, or None to stop."""
    now = utcnow()
    lease = timedelta(seconds=settings.webhook_timeout_seconds) + LEASE_MARGIN
    if not repository.renew_lease(session, endpoint_id, lease_token, now + lease):
        return None
    endpoint = repository.get_endpoint(session, endpoint_id)
    if endpoint is None or not endpoint.enabled:
        return None
    delivery = repository.next_due_delivery(session, endpoint_id, now)
    if delivery is None:
        return None
    return Attempt(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        secrets=secrets_in_use(endpoint, now),
        message_id=delivery.message_id,
        body=body_bytes(delivery.event.payload),
    )


def release(session: Session, endpoint_id: int, lease_token: str) -> None:
    repository.release_lease(session, endpoint_id, lease_token)


def retry_delay(round_attempts: int, outcome: Outcome, settings: Settings) -> float | None:
    """Seconds until the next attempt, or None when the last one has been made."""
    schedule = settings.webhook_retry_schedule_seconds
    if round_attempts > len(schedule):
        return None
    delay = schedule[round_attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if outcome.retry_after is not None:
        # The receiver knows best when it will be ready, up to our longest wait.
        delay = min(outcome.retry_after, max(schedule))
    return delay


def attempt_result(session: Session, delivery_id: int, endpoint_id: int) -> str:
    """What came of an attempt once `record_attempt` has decided what follows it, in the words
    of the deliveries metric."""
    delivery = session.get(Delivery, delivery_id)
    endpoint = session.get(Endpoint, endpoint_id)
    if delivery is None or endpoint is None:
        return "dropped"  # deleted while the receiver was answering
    if delivery.status == "succeeded":
        return "delivered"
    if delivery.status == "pending":
        return "will_retry"
    if not endpoint.enabled:
        return "endpoint_disabled"
    return "failed"  # no retries left


def record_attempt(
    session: Session, attempt: Attempt, outcome: Outcome, settings: Settings
) -> None:
    """Store an attempt's result, then decide: done, retry later, failed, or disable."""
    delivery = session.get(Delivery, attempt.delivery_id)
    endpoint = repository.get_endpoint(session, attempt.endpoint_id)
    if delivery is None or endpoint is None:
        return  # deleted while we waited for the receiver
    now = utcnow()
    session.add(_attempt_row(delivery.id, now, outcome))
    delivery.attempt_count += 1
    delivery.round_attempts += 1
    delivery.last_attempt_at = now
    delivery.last_error = outcome.error
    _note_contact(endpoint, now, outcome)
    if outcome.ok:
        delivery.status = "succeeded"
        delivery.next_attempt_at = None
        endpoint.consecutive_failures = 0
        endpoint.failing_since = None
        session.flush()
        return
    endpoint.consecutive_failures += 1
    failing_since = endpoint.failing_since or now
    endpoint.failing_since = failing_since
    disable_after = timedelta(days=settings.webhook_disable_after_days)
    delay = retry_delay(delivery.round_attempts, outcome, settings)
    delivery.status = "failed"
    delivery.next_attempt_at = None
    if outcome.gone:
        if endpoint.enabled:
            _disable(session, endpoint, f"Disabled: the receiver answered 410 Gone on {_day(now)}.")
    elif endpoint.enabled and now - failing_since >= disable_after:
        _disable(
            session,
            endpoint,
            f"Disabled automatically: every delivery failed from {_day(failing_since)} "
            f"to {_day(now)}.",
        )
    elif endpoint.enabled and delay is not None:
        delivery.status = "pending"
        delivery.next_attempt_at = now + timedelta(seconds=delay)
    session.flush()


def sweep(session: Session, now: datetime, limit: int = 500) -> list[int]:
    """Queue delivery for every endpoint with deliveries due and nobody on them."""
    return [
        endpoint_id
        for endpoint_id in repository.endpoints_with_due_deliveries(session, now, limit)
        if schedule_drain(session, endpoint_id)
    ]


def undispatched_events(session: Session, limit: int = 500) -> Sequence[int]:
    return repository.undispatched_event_ids(session, limit)


def prune(session: Session, settings: Settings) -> int:
    return repository.prune(session, utcnow() - timedelta(days=settings.webhook_log_retention_days))


def _attempt_row(delivery_id: int, now: datetime, outcome: Outcome) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=delivery_id,
        attempted_at=now,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
        response_excerpt=outcome.response_excerpt,
    )


def _note_contact(endpoint: Endpoint, now: datetime, outcome: Outcome) -> None:
    endpoint.last_status_code = outcome.status_code
    endpoint.last_latency_ms = outcome.latency_ms
    endpoint.last_delivery_at = now
    endpoint.last_error = outcome.error


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
