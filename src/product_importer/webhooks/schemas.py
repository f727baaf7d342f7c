"""What the webhooks API accepts and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from product_importer.webhooks import ssrf
from product_importer.webhooks.models import DESCRIPTION_MAX_LENGTH, URL_MAX_LENGTH

EventType = Literal[
    "product.created",
    "product.updated",
    "product.deleted",
    "products.deleted_all",
    "import.completed",
    "import.failed",
    "import.reverted",
    "products.restored",
    "products.bulk_changed",
    "feed.failed",
]
LoggedEventType = Literal[EventType, "webhook.test"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


def _no_control_characters(value: str) -> str:
    if any((ord(char) < 32 and char not in "\t\n") or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    return value


def _unique_events(value: list[str]) -> list[str]:
    return list(dict.fromkeys(value))


Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=URL_MAX_LENGTH,
        description="http(s) URL of the receiver, at most 2,000 characters, no credentials.",
        examples=["https://example.com/hooks/catalogue"],
    ),
    AfterValidator(ssrf.check_url),
]
Events = Annotated[
    list[EventType],
    Field(min_length=1, max_length=20, description="Event types to send to this endpoint."),
    AfterValidator(_unique_events),
]
Description = Annotated[
    str, Field(max_length=DESCRIPTION_MAX_LENGTH), AfterValidator(_no_control_characters)
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    events: Events
    enabled: bool = True
    description: Description = ""


class WebhookUpdate(BaseModel):
    """Only the fields given change; none of them may be null."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [key for key, value in data.items() if value is None]
            if nulls:
                raise ValueError(f"{', '.join(map(str, nulls))} may not be null")
        return data

    url: Url | None = None
    events: Events | None = None
    enabled: bool | None = None
    description: Description | None = None


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    enabled: bool
    description: str
    secret_hint: str = Field(description="The last four characters of the signing secret.")
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation, until when the old secret also signs."
    )
    created_at: datetime
    updated_at: datetime
    last_status_code: int | None
    last_latency_ms: float | None
    last_delivery_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    failing_since: datetime | None = Field(
        description="First failed attempt since the last success."
    )
    disabled_reason: str | None = Field(
        description="Why the endpoint was disabled (by a user, 410 Gone, or failing too long)."
    )


class WebhookWithSecret(WebhookRead):
    secret: str = Field(description="The full signing secret: shown only now, keep it safe.")


class TestResult(BaseModel):
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: int
    event_type: str
    webhook_id: str = Field(
        validation_alias="message_id", description="The `webhook-id` header sent."
    )
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    attempts: list[AttemptRead]


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    total: int
    page: int
    page_size: int


class EventInfoRead(BaseModel):
    type: str
    description: str
    sample: dict[str, Any] = Field(description="A payload as receivers get it.")
