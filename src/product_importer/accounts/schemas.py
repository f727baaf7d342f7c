"""What the users, tokens and own-account API accepts and answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from product_importer.auth.roles import Role
from product_importer.auth.service import PASSWORD_MIN_LENGTH, USERNAME_MAX_LENGTH


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must not contain control characters")
    return value


Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=USERNAME_MAX_LENGTH),
    AfterValidator(_printable),
]
Password = Annotated[str, Field(min_length=PASSWORD_MIN_LENGTH, max_length=1024)]


def _in_utc(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-14:00 is a valid input that no UTC datetime can hold.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall between the years 1 and 9999 once converted to UTC") from None


Expiry = Annotated[AwareDatetime, AfterValidator(_in_utc)]
TokenName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=150),
    AfterValidator(_printable),
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    role: Role = Role.viewer


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    active: bool | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime
    last_sign_in_at: datetime | None
    password_changed_at: datetime | None


class UserWithPassword(UserRead):
    password: str = Field(description="The one-time password: shown this once, never again.")


class PasswordReset(BaseModel):
    password: str = Field(description="The new one-time password: shown this once.")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TokenName
    role: Role = Role.viewer
    expires_at: Expiry | None = Field(
        default=None, description="When the token stops working (with a time zone); none: never."
    )


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    role: Role
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    status: str = Field(description="active, expired or revoked")


class TokenWithSecret(TokenRead):
    token: str = Field(description="The token: shown this once, never again.")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, Field(max_length=1024)]
    new_password: Password
