"""The webhooks API: endpoints, a test button, the delivery log and the event catalogue."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from product_importer.auth.dependencies import (
    Admin,
    AppSettings,
    AuditLog,
    DbSession,
    NoStore,
    Viewer,
)
from product_importer.webhooks import delivery, events, schemas, service, signing
from product_importer.webhooks.models import Endpoint

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

MAX_ID = 2**63 - 1
EndpointId = Annotated[int, Path(ge=1, le=MAX_ID, description="The endpoint's id.")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="The delivery's id.")]

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such endpoint."}}


def _read(endpoint: Endpoint) -> schemas.WebhookRead:
    fields = schemas.WebhookRead.model_fields.keys() - {"secret_hint"}
    return schemas.WebhookRead(
        **{field: getattr(endpoint, field) for field in fields},
        secret_hint=signing.hint(endpoint.secret),
    )


def _with_secret(endpoint: Endpoint) -> schemas.WebhookWithSecret:
    return schemas.WebhookWithSecret(**_read(endpoint).model_dump(), secret=endpoint.secret)


def _host(url: str) -> str:
    """The receiver's host only: a URL's path or query may carry a receiver's credential."""
    return urlsplit(url).hostname or ""


def _not_found(what: str = "Webhook endpoint") -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found.")


@router.get("", summary="List webhook endpoints")
def list_webhooks(session: DbSession, _principal: Admin) -> list[schemas.WebhookRead]:
    return [_read(endpoint) for endpoint in service.list_all(session)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a webhook endpoint",
    dependencies=[NoStore],
    responses={422: {"description": "Invalid URL or unknown event type."}},
)
def create_webhook(
    data: schemas.WebhookCreate,
    session: DbSession,
    settings: AppSettings,
    _principal: Admin,
    audit: AuditLog,
) -> schemas.WebhookWithSecret:
    """Answers the full signing secret (`whsec_...`): this is the only time it is shown."""
    try:
        endpoint = service.create(session, data, settings)
    except service.InvalidTarget as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    audit(
        "webhook.create",
        f"webhook:{endpoint.id} {_host(endpoint.url)}",
        {"events": list(endpoint.events), "enabled": endpoint.enabled},
    )
    return _with_secret(endpoint)


@router.get("/events", summary="The event catalogue")
def event_catalogue(_principal: Viewer) -> list[schemas.EventInfoRead]:
    """Every event type an endpoint can subscribe to, with a sample payload."""
    return [
        schemas.EventInfoRead(
            type=info.type,
            description=info.description,
            sample={
                "type": info.type,
                "timestamp": "2025-02-01T14:05:12.345678+00:00",
                "data": info.sample_data,
            },
        )
        for info in events.CATALOGUE
    ]


@router.get("/{endpoint_id}", summary="One webhook endpoint", responses=NOT_FOUND)
def get_webhook(
    endpoint_id: EndpointId, session: DbSession, _principal: Admin
) -> schemas.WebhookRead:
    try:
        return _read(service.get(session, endpoint_id))
    except service.WebhookNotFound:
        raise _not_found() from None


@router.patch("/{endpoint_id}", summary="Change a webhook endpoint", responses=NOT_FOUND)
def update_webhook(
    endpoint_id: EndpointId,
    data: schemas.WebhookUpdate,
    session: DbSession,
    settings: AppSettings,
    _principal: Admin,
    audit: AuditLog,
) -> schemas.WebhookRead:
    """Only the fields given change. Enabling clears the failure streak; disabling marks
    deliveries still pending as failed (they can be redelivered later)."""
    try:
        endpoint = service.update(session, endpoint_id, data, settings)
    except service.WebhookNotFound:
        raise _not_found() from None
    except service.InvalidTarget as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    audit(
        "webhook.update",
        f"webhook:{endpoint.id} {_host(endpoint.url)}",
        {"fields": sorted(data.model_dump(exclude_unset=True))},
    )
    return _read(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint and its delivery log",
    responses=NOT_FOUND,
)
def delete_webhook(
    endpoint_id: EndpointId, session: DbSession, _principal: Admin, audit: AuditLog
) -> Response:
    try:
        service.delete(session, endpoint_id)
    except service.WebhookNotFound:
        raise _not_found() from None
    audit("webhook.delete", f"webhook:{endpoint_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id}/test", summary="Send a test event now", responses=NOT_FOUND)
def send_test(
    endpoint_id: EndpointId,
    session: DbSession,
    settings: AppSettings,
    _principal: Admin,
) -> schemas.TestResult:
    """Sends a signed `webhook.test` event and waits for the answer (up to the timeout). A
    receiver's failure is reported in the body (`ok: false`), never as an error status."""
    try:
        attempt, payload = service.test_attempt(session, endpoint_id)
    except service.WebhookNotFound:
        raise _not_found() from None
    # Hold no transaction (nor pooled connection) while a stranger's server takes its time.
    session.commit()
    outcome = delivery.send(
        attempt.url,
        attempt.secrets,
        attempt.message_id,
        attempt.body,
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private,
    )
    service.record_test(session, attempt, payload, outcome)
    return schemas.TestResult(
        ok=outcome.ok,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
        response_excerpt=outcome.response_excerpt,
    )


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Replace the signing secret",
    responses=NOT_FOUND,
    dependencies=[NoStore],
)
def rotate_secret(
    endpoint_id: EndpointId, session: DbSession, _principal: Admin, audit: AuditLog
) -> schemas.WebhookWithSecret:
    """Answers the new secret in full, once. For 24 hours deliveries carry two signatures, one
    per secret, so receivers can switch without missing a message."""
    try:
        endpoint = service.rotate_secret(session, endpoint_id)
    except service.WebhookNotFound:
        raise _not_found() from None
    audit("webhook.rotate_secret", f"webhook:{endpoint.id} {_host(endpoint.url)}")
    return _with_secret(endpoint)


@router.get("/{endpoint_id}/deliveries", summary="The endpoint's delivery log", responses=NOT_FOUND)
def list_deliveries(
    endpoint_id: EndpointId,
    session: DbSession,
    _principal: Admin,
    status_filter: Annotated[
        schemas.DeliveryStatus | None, Query(alias="status", description="Only this status.")
    ] = None,
    event: Annotated[
        schemas.LoggedEventType | None, Query(description="Only this event type.")
    ] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> schemas.DeliveryPage:
    """Newest first, each with its attempts (time, status code, latency, error, excerpt)."""
    try:
        items, total = service.page_deliveries(
            session,
            endpoint_id,
            status=status_filter,
            event_type=event,
            page=page,
            page_size=page_size,
        )
    except service.WebhookNotFound:
        raise _not_found() from None
    return schemas.DeliveryPage(
        items=[schemas.DeliveryRead.model_validate(item) for item in items],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivery again",
    responses={
        404: {"description": "No such endpoint or delivery."},
        409: {"description": "The endpoint is disabled."},
    },
)
def redeliver(
    endpoint_id: EndpointId,
    delivery_id: DeliveryId,
    session: DbSession,
    _principal: Admin,
) -> schemas.DeliveryRead:
    """Queues the same message (same `webhook-id`) again with a fresh set of retries."""
    try:
        item = service.redeliver(session, endpoint_id, delivery_id)
    except service.WebhookNotFound:
        raise _not_found() from None
    except service.DeliveryNotFound:
        raise _not_found("Delivery") from None
    except service.EndpointDisabled:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "The endpoint is disabled; enable it first."
        ) from None
    return schemas.DeliveryRead.model_validate(item)
