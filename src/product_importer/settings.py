"""One settings object, read from the environment or a `.env` file."""

from __future__ import annotations

import re
import secrets
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, NonNegativeFloat, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_prefix="PRODUCT_IMPORTER_", extra="ignore", frozen=True
    )

    home: Path = Field(default=Path("var"), description="Embedded database, uploads, secrets.")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PRODUCT_IMPORTER_DATABASE_URL"),
        description="SQLAlchemy URL; default is a SQLite file products.db in `home`.",
    )
    api_token: SecretStr | None = Field(default=None, description="Extra accepted bearer token.")
    secret_key: SecretStr | None = Field(
        default=None, description="Signs session cookies; generated into `home` when unset."
    )
    cookie_secure: bool = Field(
        default=False, description="Send the session cookie over HTTPS only."
    )
    session_max_age_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    signin_limit_per_account: str = Field(
        default="5/15 minutes",
        description="Failed sign-ins allowed per account name (e.g. 5/15 minutes).",
    )
    signin_limit_per_address: str = Field(
        default="20/15 minutes", description="Failed sign-ins allowed per client address."
    )
    signin_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Passwords one web process checks at once; more sign-ins at once get 429.",
    )
    audit_retention_days: float = Field(
        default=180, gt=0, description="Audit log entries older than this are pruned."
    )
    max_upload_bytes: int = Field(default=GIB, ge=1)
    max_decompressed_bytes: int = Field(
        default=10 * GIB,
        ge=1,
        description="A .csv.gz is refused once it inflates past this (a 1 MB gzip can hold "
        "terabytes); CSV compresses 3-5x, so 10x the upload limit leaves room.",
    )
    upload_retention_days: float = Field(
        default=7,
        ge=0,
        description="Files of failed or cancelled imports are kept this long for Retry.",
    )
    worker_threads: int = Field(default=4, ge=1, le=64)

    # Distributed mode
    broker_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BROKER_URL", "PRODUCT_IMPORTER_BROKER_URL"),
        description="Celery broker (redis:// or amqp://); set, background work goes to workers.",
    )
    queue_prefix: str = Field(
        default="",
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="Prefix for the Celery queue names, to share one broker between installs.",
    )

    # Webhooks
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, le=300, description="Time allowed for one delivery attempt."
    )
    webhook_retry_schedule_seconds: tuple[NonNegativeFloat, ...] = Field(
        default=(5, 300, 1800, 7200, 18000, 36000, 36000),
        max_length=20,
        description="Delays before each retry (JSON list); one attempt more than delays.",
    )
    webhook_disable_after_days: float = Field(
        default=5, gt=0, description="Disable an endpoint whose deliveries fail this long."
    )
    webhook_allow_private: bool = Field(
        default=False, description="Allow loopback/private/link-local targets (dev, tests)."
    )
    webhook_log_retention_days: float = Field(
        default=30, gt=0, description="Finished deliveries older than this are pruned."
    )

    # Feeds
    feed_allow_private: bool = Field(
        default=False,
        description="Allow feeds from loopback/private/link-local addresses (any of them).",
    )
    feed_allowed_hosts: tuple[str, ...] = Field(
        default=(),
        max_length=100,
        description='Hosts, addresses and networks (JSON list, e.g. ["erp.office.lan", '
        '"10.0.0.0/8"]) feeds may reach although they are private.',
    )
    feed_connect_timeout_seconds: float = Field(
        default=15.0, gt=0, le=300, description="Time allowed to connect to a feed's server."
    )
    feed_read_timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Longest wait for any one read of a feed's file."
    )

    # Products
    products_exact_count_limit: int = Field(
        default=1_000,
        ge=100,
        description="List totals are counted exactly up to this many matches, estimated above.",
    )
    products_delete_batch_rows: int = Field(
        default=20_000,
        ge=100,
        description="Rows per transaction when a delete-all cannot TRUNCATE (PostgreSQL).",
    )
    search_catchup: bool = Field(
        default=True,
        description=(
            "Move written products into the search index in the background. Off, every search "
            "still finds them (by scanning the fresh set), only more slowly: for diagnosis."
        ),
    )

    # History and undo
    history_retention_days: float = Field(
        default=30,
        gt=0,
        description="Change records (history, undo) are kept this long, then pruned.",
    )

    # Backups
    backup_enabled: bool = Field(
        default=True,
        description="Embedded mode: write a backup into `home`/backups every day at `backup_time`.",
    )
    backup_time: time = Field(
        default=time(3, 0), description="Local time of the daily backup (HH:MM, 24-hour clock)."
    )
    backup_keep: int = Field(
        default=7, ge=1, le=1000, description="Backups kept in `home`/backups; older are removed."
    )

    # Workers
    heartbeat_seconds: float = Field(
        default=10.0,
        ge=0.2,
        le=3600,
        description="How often each worker records that it is alive (see GET /api/system).",
    )

    # Logs
    log_format: Literal["text", "json"] = Field(
        default="text", description="`text` for people, `json` (one object a line) for machines."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Least severe level logged."
    )

    @field_validator("signin_limit_per_account", "signin_limit_per_address")
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        from limits import parse

        try:
            if parse(value).amount < 1:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit; write it like '5/15 minutes' or '20 per hour'"
            ) from None
        return value

    @field_validator("backup_time", mode="before")
    @classmethod
    def _clock_time(cls, value: object) -> object:
        if isinstance(value, str):
            match = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", value.strip())
            if match is None:
                raise ValueError(f"{value!r} is not a time of day; write it like 03:00 or 23:30")
            return time(int(match.group(1)), int(match.group(2)))
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'products.db').resolve()}"

    @property
    def distributed(self) -> bool:
        return bool(self.broker_url)

    @cached_property
    def session_secret(self) -> str:
        """The configured secret, or one generated once and kept in `home`."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.home / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.ensure_home()
        key = secrets.token_urlsafe(48)
        # Create with owner-only permissions; a second process racing us keeps the first key.
        try:
            with path.open("x") as handle:
                path.chmod(0o600)
                handle.write(key)
        except FileExistsError:
            return path.read_text().strip()
        return key

    def ensure_home(self) -> None:
        # Owner only when we create it: it holds the database, the secret key and uploads.
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)


def get_settings() -> Settings:
    return Settings()


# A query parameter whose name holds one of these carries a credential (`password`,
# `sentinel_password`, `ssl_keyfile_password`, `ssl_keyfile`, `token`, `secret`, ...).
SECRET_WORDS = ("password", "passwd", "secret", "token", "key")


def _secret_name(name: str) -> bool:
    lowered = unquote_plus(name).lower()
    return any(word in lowered for word in SECRET_WORDS)


def _redact_query(query: str) -> str:
    """The query with the value of every credential parameter replaced, the rest as it was."""
    parts = []
    for part in re.split(r"([&;])", query):
        name, equals, _value = part.partition("=")
        parts.append(f"{name}=***" if equals and _secret_name(name) else part)
    return "".join(parts)


def redact_url(url: str) -> str:
    """The URL with its password (in the user part or the query) replaced, for showing to
    users."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            user = parts.username or ""
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            parts = parts._replace(netloc=f"{user}:***@{host}")
        # The fragment too: nothing reads it, but a mistyped `#password=` would show.
        parts = parts._replace(
            query=_redact_query(parts.query), fragment=_redact_query(parts.fragment)
        )
        return urlunsplit(parts)
    except ValueError:
        return "<unparseable URL>"
