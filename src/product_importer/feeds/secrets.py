"""A feed's credentials (request headers, passwords, private keys), kept encrypted.

The key is derived from the server's secret key (`PRODUCT_IMPORTER_SECRET_KEY`, or the one
generated once under `PRODUCT_IMPORTER_HOME`), so every process of a fleet that shares the
secret can read them and a copy of the database alone cannot.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from product_importer.settings import Settings


class SecretsUnreadable(Exception):
    """The stored credentials were sealed with another secret key."""


def _fernet(settings: Settings) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"product-importer feeds"
    ).derive(settings.session_secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(settings: Settings, values: dict[str, Any]) -> bytes | None:
    """The credentials as a Fernet token; None when there are none."""
    kept = {key: value for key, value in values.items() if value}
    if not kept:
        return None
    return _fernet(settings).encrypt(json.dumps(kept).encode())


def unseal(settings: Settings, token: bytes | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        values: dict[str, Any] = json.loads(_fernet(settings).decrypt(bytes(token)))
    except InvalidToken:
        raise SecretsUnreadable(
            "The feed's credentials cannot be read: the server's secret key has changed since "
            "they were saved. Enter them again."
        ) from None
    return values
