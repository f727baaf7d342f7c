"""Our signatures, checked by the reference `standardwebhooks` library, not by our own code."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from product_importer.webhooks import signing

BODY = b'{"type":"product.created","timestamp":"2025-01-01T00:00:00+00:00","data":{"id":1}}'


def _headers(signature: str, timestamp: int, message_id: str = "msg_1") -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_a_signature_verifies_with_the_reference_library() -> None:
    secret = signing.new_secret()
    now = int(time.time())
    signature = signing.sign(secret, "msg_1", now, BODY)
    assert signature.startswith("v1,")
    assert Webhook(secret).verify(BODY, _headers(signature, now)) == {
        "type": "product.created",
        "timestamp": "2025-01-01T00:00:00+00:00",
        "data": {"id": 1},
    }


def test_non_ascii_bodies_verify() -> None:
    secret = signing.new_secret()
    body = '{"name":"Äpfel, Straße 🍎"}'.encode()
    now = int(time.time())
    Webhook(secret).verify(body, _headers(signing.sign(secret, "msg_2", now, body), now, "msg_2"))


@pytest.mark.parametrize(
    ("body", "message_id", "shift"),
    [
        (BODY + b" ", "msg_1", 0),  # body changed
        (BODY, "msg_other", 0),  # id changed
        (BODY, "msg_1", 1),  # timestamp changed
    ],
)
def test_any_change_breaks_the_signature(body: bytes, message_id: str, shift: int) -> None:
    secret = signing.new_secret()
    now = int(time.time())
    signature = signing.sign(secret, "msg_1", now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, _headers(signature, now + shift, message_id))


def test_another_secret_does_not_verify() -> None:
    now = int(time.time())
    signature = signing.sign(signing.new_secret(), "msg_1", now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, _headers(signature, now))


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    now = int(time.time())
    header = signing.signature_header([new, old], "msg_1", now, BODY)
    assert len(header.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, _headers(header, now))


def test_secrets_are_whsec_base64_of_32_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.new_secret() != secret
    assert signing.hint(secret) == secret[-4:]
