"""What the feeds API accepts and answers. Credentials are write-only: never answered."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from product_importer.feeds import schedule

Missing = Literal["keep", "deactivate", "delete"]
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Headers the HTTP client sets itself; a feed may not change them.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "if-none-match"}
    | {"if-modified-since", "range", "accept-encoding", "te", "upgrade"}
)
MAX_PRIVATE_KEY = 16_384


def _plain_text(value: str) -> str:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 20:
        raise ValueError("at most 20 request headers")
    for name, text in value.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name[:40]!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"the {name} header is set by the server itself")
        if len(text) > 4000 or any(char in text for char in "\r\n\0"):
            raise ValueError(f"the value of {name} is too long or has line breaks")
    return value


def _private_key(value: str) -> str:
    if len(value) > MAX_PRIVATE_KEY or "PRIVATE KEY" not in value:
        raise ValueError(
            "must be a private key in OpenSSH or PEM form (-----BEGIN ... PRIVATE KEY-----)"
        )
    return value


def _fingerprint(value: str) -> str:
    if not re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}=?", value):
        raise ValueError("must be a SHA-256 key fingerprint as ssh-keygen -l prints it (SHA256:…)")
    return value.rstrip("=")


Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_plain_text)]
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        description="https://, http:// or sftp://user@host[:port]/path; the last part of an "
        "SFTP path may be a glob (products-*.csv: the newest match is taken).",
        examples=["https://erp.example.com/export/products.csv"],
    ),
]
Schedule = Annotated[
    str,
    Field(description="5-field cron expression.", examples=["0 2 * * *"]),
    AfterValidator(schedule.check_expression),
]
TimeZone = Annotated[
    str,
    Field(description="IANA time zone.", examples=["Europe/Berlin"]),
    AfterValidator(schedule.check_timezone),
]
Headers = Annotated[dict[str, str], AfterValidator(_headers)]
Secret = Annotated[str, Field(max_length=1000)]
PrivateKey = Annotated[str, AfterValidator(_private_key)]
Fingerprint = Annotated[str, AfterValidator(_fingerprint)]
Mapping = dict[str, Annotated[str, Field(max_length=255)]]
Percent = Annotated[float, Field(ge=0, le=100)]
AlertAfter = Annotated[int, Field(ge=1, le=1000)]


class _FeedFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mapping: Mapping | None = Field(
        default=None, description="Our field -> the file's column, as for an upload."
    )
    mapping_id: int | None = Field(default=None, ge=1, description="A saved mapping's id.")
    sheet: Annotated[str, Field(max_length=255)] | None = None
    encoding: Annotated[str, Field(max_length=40)] | None = None
    decimal_separator: Literal[".", ","] | None = None
    empty_cells: Literal["keep", "clear"] | None = None
    group_by: Annotated[str, Field(max_length=255)] | None = None
    variant_names: bool | None = None
    headers: Headers | None = Field(
        default=None, description="Extra HTTP request headers (write-only), e.g. Authorization."
    )
    username: Secret | None = Field(default=None, description="HTTP basic auth user.")
    password: Secret | None = Field(
        default=None, description="HTTP basic auth or SFTP password (write-only)."
    )
    private_key: PrivateKey | None = Field(
        default=None, description="SFTP private key, unencrypted (write-only)."
    )
    host_key: Fingerprint | None = Field(
        default=None, description="The SFTP server's key fingerprint you confirmed."
    )

    @model_validator(mode="after")
    def _one_mapping(self) -> _FeedFields:
        if self.mapping is not None and self.mapping_id is not None:
            raise ValueError("give mapping or mapping_id, not both")
        return self


class FeedCreate(_FeedFields):
    name: Name
    url: Url
    schedule: Schedule
    timezone: TimeZone = "UTC"
    missing: Missing = Field(
        default="keep",
        description="Products the file does not list: keep them, deactivate or delete them.",
    )
    max_missing_percent: Percent = Field(
        default=10.0, description="Refuse a run that would remove more of the catalogue."
    )
    failure_alert_after: AlertAfter = 3
    enabled: bool = True


class FeedTest(_FeedFields):
    """A source to try before it is saved: the form's other fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    url: Url


class FeedUpdate(_FeedFields):
    """Only the fields given change. Reading options, mapping, sheet, encoding, host_key and
    credentials may be null (removed); the others may not."""

    name: Name | None = None
    url: Url | None = None
    schedule: Schedule | None = None
    timezone: TimeZone | None = None
    missing: Missing | None = None
    max_missing_percent: Percent | None = None
    failure_alert_after: AlertAfter | None = None
    enabled: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        required = (
            "name", "url", "schedule", "timezone", "missing", "max_missing_percent",
            "failure_alert_after", "enabled",
        )  # fmt: skip
        if isinstance(data, dict):
            nulls = [key for key in required if key in data and data[key] is None]
            if nulls:
                raise ValueError(f"{', '.join(nulls)} may not be null")
        return data


class FeedRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    feed_id: int
    trigger: str
    due_at: datetime | None
    dry_run: bool
    status: str = Field(
        description="queued, fetching or importing while it runs; then imported, unchanged, "
        "failed or refused."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    filename: str | None
    bytes: int | None
    http_status: int | None
    host_key: str | None = Field(description="The SFTP server's key fingerprint seen.")
    reason: str | None
    import_job_id: int | None
    rows_created: int | None = None
    rows_updated: int | None = None
    rows_missing: int | None = None


class FeedRead(BaseModel):
    id: int
    name: str
    url: str
    schedule: str
    schedule_text: str = Field(description="The schedule in words, with its time zone.")
    timezone: str
    next_run_at: datetime | None
    enabled: bool
    mapping: dict[str, str] | None
    mapping_id: int | None
    sheet: str | None
    encoding: str | None
    options: dict[str, Any]
    missing: str
    max_missing_percent: float
    failure_alert_after: int
    consecutive_failures: int
    alerting: bool = Field(description="failure_alert_after runs or more failed in a row.")
    username: str | None
    credentials: list[str] = Field(
        description="Which credentials are set (header names, password, private_key); their "
        "values are never answered."
    )
    host_key: str | None
    last_run: FeedRunRead | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class ConnectionTest(BaseModel):
    ok: bool
    reason: str | None = None
    http_status: int | None = None
    host_key: str | None = Field(
        default=None,
        description="SFTP: the server's key fingerprint; confirm it by saving it as host_key.",
    )
    host_key_known: bool | None = None
    filename: str | None = None
    bytes_read: int | None = None
    preview: dict[str, Any] | None = Field(
        default=None, description="As the upload preview answers: columns, samples, mapping."
    )
