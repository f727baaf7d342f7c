"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per secret.

Small enough to write out from the specification; the tests verify what it produces with the
reference `standardwebhooks` library, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets_in_use: Iterable[str], message_id: str, timestamp: int, body: bytes
) -> str:
    """Space-separated signatures, one per secret, so a rotation never breaks a receiver."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets_in_use)


def hint(secret: str) -> str:
    """Enough of the secret to tell two apart, never enough to use it."""
    return secret[-4:]
